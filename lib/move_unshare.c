// SPDX-License-Identifier: MIT
/*
 * The client's half of a THP unshare by move (lib/engine/move.c): only the
 * process itself can drop its pages and UFFDIO_MOVE into its memory, so it
 * does it with a uffd of its own, on chunks the engine handed over:
 *   1. registered MODE_WP and protected: a write there waits from now on;
 *   2. copied into scratch memory advised MADV_HUGEPAGE (a fresh THP per
 *      chunk) -- a page dropped by a racing MADV_DONTNEED reads as zeros,
 *      as it would have;
 *   3. MODE_MISSING added, then dropped: a touch of the hole waits too;
 *   4. each copy moved into place (UFFDIO_MOVE: one PMD, no copy), or,
 *      should a move fail, copied in by UFFDIO_COPY (4 KiB pages), or,
 *      should that fail too, the copy's pages remapped there (mremap);
 *   5. unregistered, which wakes every access that waited: it finds the
 *      copy, ours alone.
 * The uffd has no events, so the engine's uffd sees no REMOVE, and the
 * range costs twice its memory meanwhile: the engine hands over a bounded
 * run at a time.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/compat.h"
#include "kernel/pages.h"
#include "kernel/sys.h"
#include "kernel/uffd.h"
#include "move_unshare.h"

struct scratch {
	void *map;
	size_t map_len;
	uint64_t addr;		/* 2 MiB aligned */
};

static int scratch_copy(struct scratch *sc, uint64_t addr, uint64_t len)
{
	void *map;

	sc->map_len = len + CG_PMD_SIZE;
	map = mmap(NULL, sc->map_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		return -errno;
	sc->map = map;
	sc->addr = ((uintptr_t)map + CG_PMD_SIZE - 1) & ~(uint64_t)(CG_PMD_SIZE - 1);
	/* Best effort: without THP the copy is moved in as 4 KiB pages. */
	madvise((void *)(uintptr_t)sc->addr, len, MADV_HUGEPAGE);
	/* A move needs its source ours alone: no child may share it. */
	madvise((void *)(uintptr_t)sc->addr, len, MADV_DONTFORK);
	memcpy((void *)(uintptr_t)sc->addr, (const void *)(uintptr_t)addr, len);
	return 0;
}

/* Tries of an ioctl that moved or copied part, or met an event. */
#define TRIES 8

/*
 * Fill [dst, dst+len), the hole of one chunk, from src: moved, or else
 * copied, or else the copy's pages remapped there.  A page found still
 * mapped (a drop that stopped at an mlocked VMA) is the original: kept.
 * Returns 0, or -errno with the rest unfilled: its contents lost.
 */
static int fill_chunk(int ufd, uint64_t dst, uint64_t src, uint64_t len)
{
	int (*fill)(int, uint64_t, uint64_t, uint64_t, uint64_t *) = cg__uffd_move;
	uint64_t off = 0, done;
	int ret = 0, tries = 0;

	while (off < len) {
		ret = fill(ufd, dst + off, src + off, len - off, &done);
		off += done;
		if (!ret || done)
			continue;
		if (ret == -EEXIST)
			off += CG_PAGE_SIZE;
		else if (ret == -EAGAIN && ++tries < TRIES)
			continue;
		else if (fill == cg__uffd_move)
			fill = cg__uffd_copy;
		else if (mremap((void *)(uintptr_t)(src + off), len - off, len - off,
				MREMAP_MAYMOVE | MREMAP_FIXED,
				(void *)(uintptr_t)(dst + off)) != MAP_FAILED)
			return 0;
		else
			return -errno;
	}
	return 0;
}

/* Each chunk moved in, or whatever keeps its content. */
static int fill(int ufd, uint64_t addr, uint64_t len, uint64_t src)
{
	int ret = 0;

	for (uint64_t off = 0; off < len; off += CG_PMD_SIZE) {
		int r = fill_chunk(ufd, addr + off, src + off, CG_PMD_SIZE);

		ret = ret ? ret : r;
	}
	return ret;
}

int cg__move_unshare(uint64_t addr, uint64_t len)
{
	struct scratch sc = { 0 };
	uint64_t got = 0;
	int ufd = cg__uffd_create(), ret;

	if (ufd < 0)
		return ufd;
	/* WP_UNPOPULATED: a hole in the run is protected too (a marker). */
	ret = cg__uffd_api(ufd, UFFD_FEATURE_MOVE | UFFD_FEATURE_WP_UNPOPULATED,
			   &got);
	if (!ret && !(got & UFFD_FEATURE_MOVE && got & UFFD_FEATURE_WP_UNPOPULATED))
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = cg__uffd_register(ufd, addr, len);
	if (!ret)
		ret = cg__uffd_wp(ufd, addr, len, true);
	if (!ret)
		ret = scratch_copy(&sc, addr, len);
	if (!ret)
		ret = cg__uffd_register_mode(ufd, addr, len,
					     UFFDIO_REGISTER_MODE_MISSING |
						     UFFDIO_REGISTER_MODE_WP);
	/*
	 * Refused part-way (an mlocked VMA): what was dropped is filled all
	 * the same, and what was not is kept.
	 */
	if (!ret) {
		int dropped = cg__sys_madvise((void *)(uintptr_t)addr, len,
					      MADV_DONTNEED) ? -errno : 0;

		ret = fill(ufd, addr, len, sc.addr);
		ret = ret ? ret : dropped;
	}
	/* Unregistering wakes missing faults only, on some kernels. */
	cg__uffd_wake(ufd, addr, len);
	cg__uffd_unregister(ufd, addr, len);
	close(ufd);
	if (sc.map)
		munmap(sc.map, sc.map_len);
	return ret;
}
