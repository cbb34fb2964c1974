// SPDX-License-Identifier: MIT
/*
 * Reading a snapshot image: nothing in it is trusted until checked, and a
 * refusal says what was wrong in a sentence (img->err), since the person
 * reading it holds a file that is not what they think.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowguard.h"
#include "image.h"

static int refuse(struct cg__img *img, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(img->err, sizeof(img->err), fmt, ap);
	va_end(ap);
	return err;
}

static bool all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static int check_magic(struct cg__img *img, uint64_t size)
{
	const struct cg__img_header *h = &img->h;

	if (size >= sizeof(h->magic) && all_zero(h->magic, sizeof(h->magic)))
		return refuse(img, -ENOEXEC, "no header: the snapshot writing it "
				  "did not finish");
	if (size < sizeof(h->magic) ||
	    memcmp(h->magic, CG__IMG_MAGIC, sizeof(h->magic)))
		return refuse(img, -ENOEXEC, "not a cowguard snapshot image");
	if (h->version != CG__IMG_VERSION)
		return refuse(img, -EPROTONOSUPPORT, "image version %" PRIu32
			      ", this reader knows %d", h->version,
			      CG__IMG_VERSION);
	if (size < sizeof(*h))
		return refuse(img, -ENODATA, "truncated: %" PRIu64 " bytes, "
			      "shorter than its header", size);
	return 0;
}

/* The header block past the record: zeros, or something was written there. */
static int check_padding(struct cg__img *img)
{
	char pad[CG__IMG_HEADER_SIZE - sizeof(struct cg__img_header)];
	int ret = cg__img_pread(img->fd, pad, sizeof(pad), sizeof(img->h));

	if (ret)
		return refuse(img, ret, "cannot read the header: %s",
			      strerror(-ret));
	return all_zero(pad, sizeof(pad))
		       ? 0
		       : refuse(img, -EBADMSG, "bytes in the header's padding");
}

static int check_header(struct cg__img *img, uint64_t size)
{
	const struct cg__img_header *h = &img->h;
	uint64_t rec;

	if (h->header_len != sizeof(*h) ||
	    cg__crc32c(0, h, offsetof(struct cg__img_header, header_crc)) !=
		    h->header_crc)
		return refuse(img, -EBADMSG, "header checksum mismatch");
	if (h->page_size != 4096 || h->flags & ~CG__IMG_INCREMENTAL ||
	    !(h->flags & CG__IMG_INCREMENTAL) != !h->parent_id)
		return refuse(img, -EBADMSG, "page size %" PRIu32 " or flags "
			      "%#" PRIx32 " unknown", h->page_size, h->flags);
	if (size < h->file_len)
		return refuse(img, -ENODATA, "truncated: %" PRIu64 " bytes, "
			      "the header says %" PRIu64, size, h->file_len);
	if (size > h->file_len)
		return refuse(img, -EBADMSG, "%" PRIu64 " bytes after the end "
			      "the header names", size - h->file_len);
	if (h->nregions > size / sizeof(struct cg__img_region) ||
	    h->nruns > size / sizeof(struct cg__img_run))
		return refuse(img, -EBADMSG, "more records than the file holds");
	rec = h->nregions * sizeof(struct cg__img_region) +
	      h->nruns * sizeof(struct cg__img_run);
	if (h->data_off != CG__IMG_HEADER_SIZE ||
	    h->data_off + h->data_len < h->data_off ||
	    h->data_off + h->data_len != h->index_off ||
	    h->index_len != rec || h->index_off + rec != h->file_len)
		return refuse(img, -EBADMSG, "sections do not add up to the file");
	return check_padding(img);
}

static int load_index(struct cg__img *img)
{
	const struct cg__img_header *h = &img->h;
	size_t rlen = h->nregions * sizeof(*img->regions);
	int ret;

	img->regions = malloc(rlen ? rlen : 1);
	img->runs = malloc(h->nruns ? h->nruns * sizeof(*img->runs) : 1);
	if (!img->regions || !img->runs)
		return refuse(img, -ENOMEM, "no memory for an index of %" PRIu64
			      " bytes", h->index_len);
	ret = cg__img_pread(img->fd, img->regions, rlen, h->index_off);
	if (!ret)
		ret = cg__img_pread(img->fd, img->runs, h->index_len - rlen,
			      h->index_off + rlen);
	if (ret)
		return refuse(img, ret, "cannot read the index: %s",
			      strerror(-ret));
	if (cg__crc32c(cg__crc32c(0, img->regions, rlen), img->runs,
		       h->index_len - rlen) != h->index_crc)
		return refuse(img, -EBADMSG, "index checksum mismatch");
	return 0;
}

static bool kind_known(uint32_t kind)
{
	return kind == CG_PAGE_4K || kind == CG_PAGE_THP ||
	       kind == CG_PAGE_HUGETLB_2M || kind == CG_PAGE_HUGETLB_1G;
}

/* A kept run: no bytes, and only where a parent holds them. */
static bool kept_ok(const struct cg__img *img, const struct cg__img_run *x)
{
	return (img->h.flags & CG__IMG_INCREMENTAL) && !x->off && !x->crc;
}

static bool saved_ok(const struct cg__img *img, const struct cg__img_run *x)
{
	const struct cg__img_header *h = &img->h;

	return x->len <= CG__IMG_RUN_MAX && !(x->off & 4095) &&
	       x->off >= h->data_off && x->len <= h->index_off - x->off;
}

static int check_run(struct cg__img *img, const struct cg__img_region *g,
		     const struct cg__img_run *x, uint64_t *at)
{
	bool kept = x->flags & CG__IMG_KEPT;

	if (!x->len || (x->addr | x->len) & 4095 || x->flags & ~CG__IMG_KEPT ||
	    x->addr < *at || x->addr < g->start ||
	    x->len > g->start + g->len - x->addr ||
	    !(kept ? kept_ok(img, x) : saved_ok(img, x)))
		return refuse(img, -EBADMSG, "run at %#" PRIx64 " out of place",
			      x->addr);
	*at = x->addr + x->len;
	return 0;
}

static int check_records(struct cg__img *img)
{
	const struct cg__img_header *h = &img->h;
	uint64_t at = 0, run = 0, bytes = 0;

	for (uint64_t i = 0; i < h->nregions; i++) {
		const struct cg__img_region *g = &img->regions[i];
		uint64_t rat = 0;

		if (!g->len || (g->start | g->len) & 4095 || g->start < at ||
		    g->start + g->len < g->start || !kind_known(g->kind) ||
		    g->first_run != run || g->nruns > h->nruns - run)
			return refuse(img, -EBADMSG, "region %" PRIu64 " out of "
				      "place", i);
		for (uint64_t k = 0; k < g->nruns; k++, run++) {
			int ret = check_run(img, g, &img->runs[run], &rat);

			if (ret)
				return ret;
			if (!(img->runs[run].flags & CG__IMG_KEPT))
				bytes += img->runs[run].len;
		}
		at = g->start + g->len;
	}
	if (run != h->nruns || bytes != h->saved_bytes || bytes != h->data_len)
		return refuse(img, -EBADMSG, "runs do not add up to the data");
	return 0;
}

int cg__img_open(struct cg__img *img, int fd)
{
	struct stat st;
	int ret;

	memset(img, 0, sizeof(*img));
	img->fd = fd;
	if (fstat(fd, &st))
		return refuse(img, -errno, "cannot stat: %s", strerror(errno));
	ret = cg__img_pread(fd, &img->h, sizeof(img->h), 0);
	if (ret && ret != -ENODATA)
		return refuse(img, ret, "cannot read: %s", strerror(-ret));
	ret = check_magic(img, (uint64_t)st.st_size);
	if (!ret)
		ret = check_header(img, (uint64_t)st.st_size);
	if (!ret)
		ret = load_index(img);
	if (!ret)
		ret = check_records(img);
	if (ret)
		cg__img_close(img);
	return ret;
}

int cg__img_read_run(struct cg__img *img, uint64_t i, void *buf)
{
	const struct cg__img_run *x;
	int ret;

	if (i >= img->h.nruns)
		return refuse(img, -EINVAL, "no run %" PRIu64, i);
	x = &img->runs[i];
	if (x->flags & CG__IMG_KEPT)
		return refuse(img, -EINVAL, "the run at %#" PRIx64 " is kept: "
			      "its bytes are the parent image's", x->addr);
	ret = cg__img_pread(img->fd, buf, x->len, x->off);
	if (ret)
		return refuse(img, ret, "cannot read the run at %#" PRIx64 ": %s",
			      x->addr, strerror(-ret));
	if (cg__crc32c(0, buf, x->len) != x->crc)
		return refuse(img, -EBADMSG, "checksum mismatch in the run at "
			      "%#" PRIx64, x->addr);
	return 0;
}

int cg__img_verify(struct cg__img *img)
{
	void *buf = mmap(NULL, CG__IMG_RUN_MAX, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret = 0;

	if (buf == MAP_FAILED)
		return refuse(img, -ENOMEM, "no memory to read runs");
	for (uint64_t i = 0; !ret && i < img->h.nruns; i++)
		if (!(img->runs[i].flags & CG__IMG_KEPT))
			ret = cg__img_read_run(img, i, buf);
	munmap(buf, CG__IMG_RUN_MAX);
	return ret;
}

void cg__img_close(struct cg__img *img)
{
	free(img->regions);
	free(img->runs);
	img->regions = NULL;
	img->runs = NULL;
}
