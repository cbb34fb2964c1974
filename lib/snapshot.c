// SPDX-License-Identifier: MIT
/*
 * cg_snapshot(): a live snapshot of this process's registered regions
 * into an image file.  lib/snapshot_write.c does the saving; here is the
 * source it saves from: the handle's requests, and this process's own
 * memory, saved by pwrite() straight from it (a page unmapped meanwhile
 * gives EFAULT, not a crash) and read back from the file, so that the
 * checksum is of the bytes the image holds.
 */
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "handle.h"
#include "image/image.h"
#include "snapshot_write.h"

static int ask_handle(void *ctx, enum cg__op op, uint64_t start, uint64_t len,
		      unsigned flags, struct cg__snap_window *win)
{
	struct cg__rep rep = { 0 };
	int ret = cg__range_op(ctx, op, (const void *)(uintptr_t)start, len,
			       flags, &rep);

	*win = rep.u.snap;
	return ret;
}

static int save_own(void *ctx, int fd, uint64_t off, uint64_t addr,
		    void *bounce, size_t len)
{
	int ret = cg__img_pwrite(fd, (const void *)(uintptr_t)addr, len, off);

	(void)ctx;
	/* Gone from under us: the engine has the event and says -ESTALE. */
	if (ret == -EFAULT)
		return -ESTALE;
	return ret ? ret : cg__img_pread(fd, bounce, len, off);
}

int cg_snapshot(struct cg *cg, int fd, unsigned flags,
		struct cg_snapshot_info *info, size_t size)
{
	const struct cg__snap_src src = {
		.ask = ask_handle, .save = save_own, .ctx = cg, .pid = getpid(),
	};
	struct cg__snap_result res;
	uint64_t parent = 0;
	int ret;

	if (!cg || fd < 0 || (info && size < CG_SNAPSHOT_INFO_SIZE_VER0) ||
	    flags & ~CG_SNAPSHOT_INCREMENTAL)
		return -EINVAL;
	if (flags & CG_SNAPSHOT_INCREMENTAL) {
		parent = atomic_load(&cg->last_image);
		if (!parent)
			return -ENOENT;
	}
	ret = cg__snapshot_write(&src, fd, parent, &res);
	if (ret)
		return ret;
	atomic_store(&cg->last_image, res.id);
	if (info)
		cg__copy_out(info, size, &res.info, sizeof(res.info));
	return 0;
}
