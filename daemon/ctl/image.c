// SPDX-License-Identifier: MIT
/*
 * cowguardctl image FILE: what a snapshot image holds, every checksum
 * checked (lib/image/).  It needs no daemon: the file is the whole story.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "image/image.h"

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case CG_PAGE_4K:
		return "4 KiB";
	case CG_PAGE_THP:
		return "THP";
	case CG_PAGE_HUGETLB_2M:
		return "hugetlb 2 MiB";
	case CG_PAGE_HUGETLB_1G:
		return "hugetlb 1 GiB";
	}
	return "?";
}

/* The bytes of region i's runs, kept ones or saved ones. */
static uint64_t region_bytes(const struct cg__img *img, uint64_t i, bool kept)
{
	const struct cg__img_region *g = &img->regions[i];
	uint64_t bytes = 0;

	for (uint64_t k = 0; k < g->nruns; k++) {
		const struct cg__img_run *x = &img->runs[g->first_run + k];

		if (!(x->flags & CG__IMG_KEPT) == !kept)
			bytes += x->len;
	}
	return bytes;
}

static void text_image(const struct cg__img *img, const char *safe_path)
{
	time_t t = (time_t)(img->h.created_ns / 1000000000u);
	char when[64];
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC",
		 gmtime_r(&t, &tm));
	printf("%s: snapshot image version %" PRIu32 " of pid %" PRId64
	       ", taken %s\n", safe_path, img->h.version, img->h.pid, when);
	printf("id %016" PRIx64, img->h.id);
	if (img->h.flags & CG__IMG_INCREMENTAL)
		printf(", incremental: kept pages are in image %016" PRIx64,
		       img->h.parent_id);
	printf("\n");
	printf("%" PRIu64 " regions, %.1f MiB saved in %" PRIu64 " runs, "
	       "file %.1f MiB\n", img->h.nregions, img->h.saved_bytes / 1048576.0,
	       img->h.nruns, img->h.file_len / 1048576.0);
	printf("%-18s %-18s %-14s %12s %12s\n", "START", "END", "KIND", "SAVED",
	       "KEPT");
	for (uint64_t i = 0; i < img->h.nregions; i++) {
		const struct cg__img_region *g = &img->regions[i];

		printf("%#-18" PRIx64 " %#-18" PRIx64 " %-14s %8.1f MiB %8.1f MiB\n",
		       g->start, g->start + g->len, kind_name(g->kind),
		       region_bytes(img, i, false) / 1048576.0,
		       region_bytes(img, i, true) / 1048576.0);
	}
	printf("checksums good\n");
}

static void json_image(const struct cg__img *img)
{
	printf("{\"version\":%" PRIu32 ",\"pid\":%" PRId64 ",\"created_ns\":%"
	       PRIu64 ",\"id\":\"%016" PRIx64 "\",\"parent_id\":\"%016" PRIx64
	       "\",\"saved_bytes\":%" PRIu64 ",\"runs\":%" PRIu64
	       ",\"file_bytes\":%" PRIu64 ",\"regions\":[", img->h.version,
	       img->h.pid, img->h.created_ns, img->h.id, img->h.parent_id,
	       img->h.saved_bytes, img->h.nruns, img->h.file_len);
	for (uint64_t i = 0; i < img->h.nregions; i++)
		printf("%s{\"start\":%" PRIu64 ",\"len\":%" PRIu64
		       ",\"kind\":\"%s\",\"saved_bytes\":%" PRIu64
		       ",\"kept_bytes\":%" PRIu64 "}",
		       i ? "," : "", img->regions[i].start, img->regions[i].len,
		       kind_name(img->regions[i].kind),
		       region_bytes(img, i, false), region_bytes(img, i, true));
	printf("],\"checksums\":\"good\"}\n");
}

int ctl_image(const struct ctl_opts *o)
{
	char buf[CTL_TEXT_SAFE_LEN(1024)];
	const char *safe = ctl_text_safe(o->path, o->utf8, buf, sizeof(buf));
	struct cg__img img;
	int fd, ret;

	fd = open(o->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cowguardctl: %s: %s\n", safe, strerror(errno));
		return EXIT_ERROR;
	}
	ret = cg__img_open(&img, fd);
	if (!ret)
		ret = cg__img_verify(&img);
	if (ret) {
		fprintf(stderr, "cowguardctl: %s: %s\n", safe, img.err);
	} else if (o->json) {
		json_image(&img);
	} else {
		text_image(&img, safe);
	}
	cg__img_close(&img);
	close(fd);
	return ret ? EXIT_ERROR : EXIT_CLEAN;
}
