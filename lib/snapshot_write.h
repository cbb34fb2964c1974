/* SPDX-License-Identifier: MIT */
/*
 * A live snapshot's saving half: lib/snapshot_write.c.  It asks the engine
 * for windows (SNAPSHOT_BEGIN, STEP, END) and saves the pages they name
 * into an image, through a source that says how to ask and how to copy:
 * cg_snapshot() asks its own handle and copies its own memory
 * (lib/snapshot.c); cowguardctl asks the daemon about another process and
 * reads that process's memory (daemon/ctl/snapshot.c).
 */
#ifndef CG_SNAPSHOT_WRITE_H
#define CG_SNAPSHOT_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "cowguard.h"
#include "wire/protocol.h"

struct cg__snap_src {
	/*
	 * Send op (CG_OP_SNAPSHOT_BEGIN, _STEP or _END) with start, len and
	 * flags; a step's window into *win.  0, -errno, or the engine's status.
	 */
	int (*ask)(void *ctx, enum cg__op op, uint64_t start, uint64_t len,
		   unsigned flags, struct cg__snap_window *win);
	/*
	 * The len bytes of memory at addr, at off in fd, and into bounce: the
	 * checksum is of them.  -ESTALE where the memory is gone.
	 */
	int (*save)(void *ctx, int fd, uint64_t off, uint64_t addr,
		    void *bounce, size_t len);
	/* After each window, if set: bytes saved and kept so far. */
	void (*progress)(void *ctx, uint64_t saved, uint64_t kept);
	void *ctx;
	int64_t pid;		/* the header's: whose memory */
};

/* What a snapshot wrote, for struct cg_snapshot_info and the caller. */
struct cg__snap_result {
	struct cg_snapshot_info info;
	uint64_t id;		/* the image's */
};

/*
 * Write a snapshot into the regular file fd: a full image, or incremental
 * on the image parent (its id; 0: full).  The engine's snapshot is ended
 * whatever happens once begun.  Nothing here calls malloc while writes
 * wait (a parked thread may hold the allocator's lock): buffers are
 * mmap'ed.  Returns 0 or -errno (-ESPIPE: fd is not a regular file).
 */
int cg__snapshot_write(const struct cg__snap_src *src, int fd, uint64_t parent,
		       struct cg__snap_result *res);

#endif
