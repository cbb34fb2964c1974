/* SPDX-License-Identifier: MIT */
/*
 * Snapshot tests' common steps: an image in a temporary file, and the
 * memory it holds for a range, rebuilt through the image reader
 * (lib/image/image.h).
 */
#ifndef CG_TESTS_SNAPSHOT_UTIL_H
#define CG_TESTS_SNAPSHOT_UTIL_H

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "image/image.h"

/* An empty temporary file, already unlinked. */
static inline int su_tmpfile(void)
{
	char path[] = "/tmp/cg-snapshot-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	return fd;
}

/*
 * The memory the image in fd holds for [addr, addr+len) into out (holes:
 * zeros; kept runs of an incremental image: as in parent, the memory its
 * parent image holds); every run checked.  Returns the region's kind
 * (enum cg_page_kind) for the region starting at addr, 0 if none.
 */
static inline unsigned su_rebuild(int fd, const char *addr, size_t len,
				  char *out, const char *parent)
{
	struct cg__img img;
	unsigned kind = 0;
	int ret = cg__img_open(&img, fd);
	char *buf = mmap(NULL, CG__IMG_RUN_MAX, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_msg(!ret, "image refused (%d): %s", ret, img.err);
	ck_assert(buf != MAP_FAILED);
	memset(out, 0, len);
	for (uint64_t i = 0; i < img.h.nregions; i++)
		if (img.regions[i].start == (uintptr_t)addr)
			kind = img.regions[i].kind;
	for (uint64_t i = 0; i < img.h.nruns; i++) {
		const struct cg__img_run *x = &img.runs[i];

		if (x->addr < (uintptr_t)addr || x->addr >= (uintptr_t)addr + len)
			continue;
		if (x->flags & CG__IMG_KEPT) {
			ck_assert_msg(parent, "a kept run in a full image");
			memcpy(out + (x->addr - (uintptr_t)addr),
			       parent + (x->addr - (uintptr_t)addr), x->len);
			continue;
		}
		ret = cg__img_read_run(&img, i, buf);
		ck_assert_msg(!ret, "run %llu: %s", (unsigned long long)i, img.err);
		memcpy(out + (x->addr - (uintptr_t)addr), buf, x->len);
	}
	munmap(buf, CG__IMG_RUN_MAX);
	cg__img_close(&img);
	return kind;
}

#endif
