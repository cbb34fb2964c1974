// SPDX-License-Identifier: MIT
/*
 * The caller's structures can grow without breaking a binary ("Structures
 * that grow" in include/cowguard.h): cg_query, cg_audit and cg_stats write
 * exactly the size they are given, and zero what a newer header has beyond
 * the library's own structure; cg_open reads the options of any size from
 * CG_OPTIONS_SIZE_VER0 on, and refuses an option it does not know.  And
 * cg_version() is the version of the header the library was built with.
 *
 * Bugs this catches: a result copied with the library's sizeof into an
 * older, smaller structure (a write past the caller's memory); the tail of
 * a newer, larger structure left as it was (garbage read as a new field);
 * a size below the first release's accepted (sizeof of a pointer, say); an
 * unknown option silently ignored; the version string and the macros drifting
 * apart (the Makefile reads VERSION from those macros).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define PG 4096UL
#define POISON 0xa5
/* Room past the largest structure: "a newer header" and then untouched. */
#define EXTRA 64
#define SLACK 64

_Static_assert(CG_OPTIONS_SIZE_VER0 <= sizeof(struct cg_options), "VER0 too big");
_Static_assert(CG_PAGE_INFO_SIZE_VER0 <= sizeof(struct cg_page_info), "VER0 too big");
_Static_assert(CG_AUDIT_REPORT_SIZE_VER0 <= sizeof(struct cg_audit_report), "VER0 too big");
_Static_assert(CG_STATS_SIZE_VER0 <= sizeof(struct cg_stats), "VER0 too big");

/* A caller's buffer of any size, aligned as the structures are. */
union buf {
	unsigned char b[512];
	uint64_t align;
};

/* One of cg_query, cg_audit, cg_stats on a fixed range, with a size. */
struct getter {
	const char *name;
	size_t ours;		/* sizeof the structure in this header */
	size_t ver0;		/* the least size accepted */
	int (*call)(struct cg *cg, void *p, void *out, size_t size);
};

static int get_page_info(struct cg *cg, void *p, void *out, size_t size)
{
	return cg_query(cg, p, out, size);
}

static int get_audit(struct cg *cg, void *p, void *out, size_t size)
{
	return cg_audit(cg, p, 2 * PG, out, size);
}

static int get_stats(struct cg *cg, void *p, void *out, size_t size)
{
	(void)p;
	return cg_stats(cg, out, size);
}

static const struct getter getters[] = {
	{ "cg_query", sizeof(struct cg_page_info), CG_PAGE_INFO_SIZE_VER0, get_page_info },
	{ "cg_audit", sizeof(struct cg_audit_report), CG_AUDIT_REPORT_SIZE_VER0, get_audit },
	{ "cg_stats", sizeof(struct cg_stats), CG_STATS_SIZE_VER0, get_stats },
};

/* The first byte of [from, to) that is not v, or -1. */
static long first_not(const union buf *u, size_t from, size_t to, unsigned char v)
{
	for (size_t i = from; i < to; i++)
		if (u->b[i] != v)
			return (long)i;
	return -1;
}

/*
 * Call g with size into a poisoned buffer; assert the return, that the
 * first min(size, ours) bytes are ref's, that [ours, size) is zero, and
 * that nothing from size on was written.
 */
static void check_size(struct cg *cg, void *p, const struct getter *g,
		       const union buf *ref, size_t size, int want)
{
	union buf u;
	size_t filled = size < g->ours ? size : g->ours;
	long at;
	int ret;

	memset(u.b, POISON, sizeof(u.b));
	ret = g->call(cg, p, u.b, size);
	ck_assert_msg(ret == want, "%s(size %zu): %d (%s), want %d", g->name, size,
		      ret, cg_strerror(ret), want);
	if (ret) {
		at = first_not(&u, 0, sizeof(u.b), POISON);
		ck_assert_msg(at < 0, "%s(size %zu) failed but wrote byte %ld",
			      g->name, size, at);
		return;
	}
	ck_assert_msg(!memcmp(u.b, ref->b, filled),
		      "%s(size %zu): the first %zu bytes differ from a full-size call",
		      g->name, size, filled);
	if (size > g->ours) {
		at = first_not(&u, g->ours, size, 0);
		ck_assert_msg(at < 0, "%s(size %zu): byte %ld, past our %zu, not zeroed",
			      g->name, size, at, g->ours);
	}
	at = first_not(&u, size, sizeof(u.b), POISON);
	ck_assert_msg(at < 0, "%s(size %zu): wrote byte %ld, past the caller's size",
		      g->name, size, at);
}

/*
 * Sizes an older header gives (from VER0 up, 4 bytes at a time: every field
 * ends on such a boundary), this header's, a newer header's; and sizes
 * below VER0 are refused with nothing written.
 */
START_TEST(results_fill_exactly_the_size_the_caller_gives)
{
	struct cg *cg = h_open(_i);
	char *p = h_map(H_4K, 2 * PG, 'x');

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(cg_register(cg, p, 2 * PG, 0), 0);
	for (size_t k = 0; k < sizeof(getters) / sizeof(*getters); k++) {
		const struct getter *g = &getters[k];
		union buf ref;

		ck_assert_uint_le(g->ours + EXTRA + SLACK, sizeof(ref.b));
		memset(ref.b, 0, sizeof(ref.b));
		ck_assert_int_eq(g->call(cg, p, ref.b, g->ours), 0);
		for (size_t size = g->ver0; size < g->ours; size += 4)
			check_size(cg, p, g, &ref, size, 0);
		check_size(cg, p, g, &ref, g->ours, 0);
		check_size(cg, p, g, &ref, g->ours + 1, 0);
		check_size(cg, p, g, &ref, g->ours + EXTRA, 0);
		check_size(cg, p, g, &ref, g->ver0 - 1, -EINVAL);
		check_size(cg, p, g, &ref, sizeof(void *), -EINVAL);
		check_size(cg, p, g, &ref, 0, -EINVAL);
	}
	ck_assert_int_eq(cg_unregister(cg, p, 2 * PG), 0);
	munmap(p, 2 * PG);
	cg_close(cg);
}
END_TEST

/* Options as this header's mode says: the test daemon, or embedded. */
static void options_for(int mode, struct cg_options *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = mode == H_DAEMON ? CG_MODE_DAEMON : CG_MODE_EMBEDDED;
	o->socket_path = mode == H_DAEMON ? h_socket() : NULL;
}

/*
 * A newer header's options, all zero beyond ours, open a handle; one with
 * an option we lack set is -E2BIG; a size below VER0 is -EINVAL.  No
 * handle is made when refused.
 */
START_TEST(options_of_another_size_are_read_or_refused)
{
	union buf u;
	struct cg_options o;
	struct cg *cg;

	options_for(_i, &o);
	memset(u.b, 0, sizeof(u.b));
	memcpy(u.b, &o, sizeof(o));

	cg = NULL;
	ck_assert_int_eq(cg_open((struct cg_options *)u.b, sizeof(o) + EXTRA, &cg), 0);
	ck_assert_int_eq(cg_mode(cg), o.mode);
	cg_close(cg);

	cg = NULL;
	ck_assert_int_eq(cg_open((struct cg_options *)u.b, CG_OPTIONS_SIZE_VER0, &cg), 0);
	ck_assert_int_eq(cg_mode(cg), o.mode);
	cg_close(cg);

	u.b[sizeof(o) + EXTRA - 1] = 1;
	cg = NULL;
	ck_assert_int_eq(cg_open((struct cg_options *)u.b, sizeof(o) + EXTRA, &cg), -E2BIG);
	ck_assert_ptr_null(cg);
	/* The same byte beyond the size given is not the library's business. */
	ck_assert_int_eq(cg_open((struct cg_options *)u.b, sizeof(o) + EXTRA - 1, &cg), 0);
	cg_close(cg);

	cg = NULL;
	ck_assert_int_eq(cg_open(&o, CG_OPTIONS_SIZE_VER0 - 1, &cg), -EINVAL);
	ck_assert_int_eq(cg_open(&o, 0, &cg), -EINVAL);
	ck_assert_ptr_null(cg);
	ck_assert_str_ne(cg_strerror(-E2BIG), cg_strerror(-EINVAL));
}
END_TEST

START_TEST(cg_version_is_the_headers_version)
{
	char want[64];

	snprintf(want, sizeof(want), "%d.%d.%d", CG_VERSION_MAJOR, CG_VERSION_MINOR,
		 CG_VERSION_PATCH);
	ck_assert_str_eq(cg_version(), want);
	ck_assert_int_eq(cg_version_major(), CG_VERSION_MAJOR);
	ck_assert_int_eq(cg_version_minor(), CG_VERSION_MINOR);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ABI: structures can grow");
	TCase *sizes = tcase_create("sizes");
	TCase *version = tcase_create("version");

	h_timeout(sizes, 20);
	h_add_modes(sizes, results_fill_exactly_the_size_the_caller_gives);
	h_add_modes(sizes, options_of_another_size_are_read_or_refused);
	suite_add_tcase(s, sizes);
	h_add(version, cg_version_is_the_headers_version);
	suite_add_tcase(s, version);
	return h_main(s, H_NEED_DAEMON);
}
