// SPDX-License-Identifier: MIT
/*
 * Unsharing 4 KiB pages by copy and fill, where the engine runs in the
 * process that owns them (the embedded mode).
 *
 * The kernel unshares a page a fork left shared with a fault per page (a
 * read-only FOLL_PIN, a write): 1.0-1.25x MADV_POPULATE_WRITE.  Copying a
 * run into scratch memory, dropping it and filling it back with
 * UFFDIO_COPY allocates and copies the same pages with neither a fault
 * nor a flush per page: about 0.75x (docs/benchmarks.md).  And the pages
 * are exclusive by construction: UFFDIO_COPY maps a page it has just
 * allocated, which nobody else maps.  A proof page by page afterwards
 * (page flags, a read-only pin) costs more than the copy saves: the same
 * copy done by a client, for a daemon that must prove it, was no faster.
 *
 * Only the process can drop its own pages, and a drop of memory the
 * engine's uffd watches raises a REMOVE event that the drop waits on, here
 * for the engine itself.  So the run is handed to a private uffd for the
 * moment, as a THP run is to the client for a move (lib/move_unshare.c):
 *   1. unregistered from the engine's uffd, its waiting writers woken (the
 *      kernel copies a page for them, and the copy below takes their
 *      write along);
 *   2. registered on a private uffd (WP_UNPOPULATED) and protected: from
 *      now on a write there waits, on a hole too;
 *   3. copied into scratch;
 *   4. MODE_MISSING added, then dropped: a read there waits too;
 *   5. filled by UFFDIO_COPY, a page the drop did not reach (mlocked)
 *      kept as it was;
 *   6. the waiting threads woken, unregistered there, registered and
 *      protected on the engine's uffd again.
 * A write between 6's unregister and its protect is unseen, so the run is
 * reported dirty, as a moved THP run is.  No fork runs meanwhile: fork()
 * waits for the engine (lib/fork.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/sys.h"
#include "kernel/uffd.h"

/* Tries of a fill that copied nothing and met an event or a shortage. */
#define TRIES 8

/* COWGUARD_FILL=off unshares 4 KiB pages as the kernel does, for comparison. */
static bool fill_wanted(void)
{
	const char *s = getenv("COWGUARD_FILL");

	return !s || strcmp(s, "off");
}

bool cg__mm_fill_usable(const struct cg__mm *mm)
{
	/* A fill passes content through a hole: not while a snapshot runs. */
	return mm->pid == getpid() && !mm->wp_async && !mm->snap &&
	       mm->pagemap_fd >= 0 &&
	       cg__kernel_read_pin_unshares() && fill_wanted();
}

/* A private uffd that protects holes too, or -errno. */
static int private_uffd(void)
{
	uint64_t got = 0;
	int fd = cg__uffd_create(), ret;

	if (fd < 0)
		return fd;
	ret = cg__uffd_api(fd, UFFD_FEATURE_WP_UNPOPULATED, &got);
	if (!ret && !(got & UFFD_FEATURE_WP_UNPOPULATED))
		ret = -EOPNOTSUPP;
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* Scratch memory for one window, kept warm: a fresh map costs a fault a page. */
static int scratch(struct cg__mm *mm, uint64_t len, void **out)
{
	if (!mm->fill_scratch) {
		void *p = mmap(NULL, CG_PMD_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED)
			return -errno;
		/* Ours alone: a child would share it, and the copy with it. */
		madvise(p, CG_PMD_SIZE, MADV_DONTFORK);
		madvise(p, CG_PMD_SIZE, MADV_NOHUGEPAGE);
		mm->fill_scratch = p;
	}
	if (len > CG_PMD_SIZE)
		return -E2BIG;
	*out = mm->fill_scratch;
	return 0;
}

void cg__mm_fill_free(struct cg__mm *mm)
{
	if (mm->fill_scratch)
		munmap(mm->fill_scratch, CG_PMD_SIZE);
	mm->fill_scratch = NULL;
}

/*
 * Fill the hole [dst, dst+len) from src.  A page still mapped (the drop
 * stopped at an mlocked VMA) is the original: kept.  Where the kernel
 * will not allocate, the scratch pages themselves are moved in (mremap):
 * ours alone too, and the scratch is made anew next time.
 */
static int fill_hole(struct cg__mm *mm, int ufd, uint64_t dst, uint64_t src,
		     uint64_t len)
{
	uint64_t off = 0, done;
	int ret, tries = 0;

	while (off < len) {
		ret = cg__uffd_copy(ufd, dst + off, src + off, len - off, &done);
		off += done;
		if (!ret || done)
			continue;
		if (ret == -EEXIST)
			off += CG_PAGE_SIZE;
		else if ((ret == -EAGAIN || ret == -ENOMEM) && ++tries < TRIES)
			continue;
		else if (mremap((void *)(uintptr_t)(src + off), len - off,
				len - off, MREMAP_MAYMOVE | MREMAP_FIXED,
				(void *)(uintptr_t)(dst + off)) != MAP_FAILED) {
			cg__mm_fill_free(mm);
			return 0;
		} else {
			return -errno;
		}
	}
	return 0;
}

/* Steps 2 to 5 on the private uffd ufd, registered over the run. */
static int copy_drop_fill(struct cg__mm *mm, int ufd, uint64_t start,
			  uint64_t len, void *buf)
{
	int ret = cg__uffd_wp(ufd, start, len, true), dropped;

	if (ret)
		return ret;
	memcpy(buf, (const void *)(uintptr_t)start, len);
	ret = cg__uffd_register_mode(ufd, start, len,
				     UFFDIO_REGISTER_MODE_MISSING |
					     UFFDIO_REGISTER_MODE_WP);
	if (ret)
		return ret;
	/* Refused part-way (mlocked): what was dropped is filled all the same. */
	dropped = cg__sys_madvise((void *)(uintptr_t)start, len, MADV_DONTNEED)
			  ? -errno : 0;
	ret = fill_hole(mm, ufd, start, (uint64_t)(uintptr_t)buf, len);
	return ret ? ret : dropped;
}

/* The run's state (one region's): clear, then set, state bits. */
static void run_state(struct cg__mm *mm, uint64_t start, uint64_t len,
		      unsigned clear, unsigned set)
{
	struct cg__region *r = cg__mm_find(mm, start);

	if (r)
		cg__region_update(r, start, len, clear, set);
}

int cg__mm_fill(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	void *buf = NULL;
	int ufd, ret, back;

	ret = scratch(mm, len, &buf);
	if (ret)
		return ret;
	ufd = private_uffd();
	if (ufd < 0)
		return ufd;
	ret = cg__mm_ioctl_unregister(mm, start, len);
	/* Away, and after: unprotected, maybe written. */
	run_state(mm, start, len, CG_ST_WP, CG_ST_DIRTY);
	/* Not all kernels wake write-protect faults on unregister. */
	cg__uffd_wake(mm->uffd, start, len);
	if (!ret)
		ret = cg__uffd_register(ufd, start, len);
	if (!ret)
		ret = copy_drop_fill(mm, ufd, start, len, buf);
	cg__uffd_wake(ufd, start, len);
	cg__uffd_unregister(ufd, start, len);
	close(ufd);
	/* Ours again whatever happened; the caller judges by the kernel. */
	back = cg__mm_ioctl_register(mm, start, len);
	if (!back)
		back = cg__mm_ioctl_wp(mm, start, len, true);
	if (!back)
		run_state(mm, start, len, 0, CG_ST_WP);
	if (!ret && !back)
		mm->stats.unshare_fills += len >> CG_PAGE_SHIFT;
	return ret ? ret : back;
}
