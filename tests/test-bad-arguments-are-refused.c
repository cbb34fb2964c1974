// SPDX-License-Identifier: MIT
/*
 * Every bad argument is refused with the errno include/cowguard.h
 * documents for it, and a refused call changes nothing: no region, no
 * registered bytes, no uffd registration (smaps "uw"), no uffd-wp bit,
 * no output written, no counter moved.
 *
 * Bugs this catches: a check missing or reordered (a wrapping length taken
 * for a huge one, a hole or a file mapping registered, a hugetlb page cut
 * in two), a generic errno where the header promises a specific one, a
 * failed registration that leaves the range write-protected or registered
 * with the kernel, an unregister that removes a region it was not given
 * exactly, and a failed call that scribbles on its output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/procfs.h"

#define PG 4096UL
/* A page-aligned length that makes any user address wrap. */
#define WRAPPING_LEN ((size_t)0 - 16 * PG)

#define REFUSED(call, err)                                                     \
	do {                                                                   \
		int r_ = (call);                                               \
		ck_assert_msg(r_ == (err), "%s: %d (%s), want %d (%s)", #call, \
			      r_, cg_strerror(r_), (err), cg_strerror(err));   \
	} while (0)

/* What cg_stats says is registered: exactly this. */
static void assert_registered(struct cg *cg, uint64_t regions, uint64_t bytes)
{
	struct cg_stats s;

	ck_assert_int_eq(cg_stats(cg, &s, sizeof(s)), 0);
	ck_assert_msg(s.regions == regions && s.registered_bytes == bytes,
		      "stats: %llu regions, %llu bytes; want %llu, %llu",
		      (unsigned long long)s.regions,
		      (unsigned long long)s.registered_bytes,
		      (unsigned long long)regions, (unsigned long long)bytes);
}

/* Nothing of cowguard's at addr: no region, no uffd, no uffd-wp bit. */
static void assert_untouched(struct cg *cg, const void *addr)
{
	struct cg_page_info info;

	REFUSED(cg_query(cg, addr, &info, sizeof(info)), -ENOENT);
	ck_assert_msg(h_vma_flag(addr, "uw") != 1,
		      "%p: left registered with userfaultfd", addr);
	ck_assert_msg(!h_kpage(addr).uffd_wp, "%p: left write-protected", addr);
}

/* Still registered and protected, as before the refused call. */
static void assert_protected(struct cg *cg, const void *addr)
{
	struct cg_page_info info;

	ck_assert_int_eq(cg_query(cg, addr, &info, sizeof(info)), 0);
	ck_assert(info.present && info.wp);
	ck_assert(!h_pagemap_shows_uffd_wp() || h_kpage(addr).uffd_wp);
}

/* n pages of populated 4 KiB memory. */
static char *map_pages(size_t n)
{
	char *p = h_map(H_4K, n * PG, 'A');

	ck_assert_ptr_nonnull(p);
	return p;
}

static void *map_hugetlb(size_t len, int size_flag, void *at)
{
	void *p;

	/* Not registrable at all before 5.19: the callers skip, saying why. */
	if (!h_hugetlb_trackable()) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | size_flag |
			       (at ? MAP_FIXED : 0),
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Why map_hugetlb() gave nothing, right after it did. */
static const char *hugetlb_why(void)
{
	return errno == EOPNOTSUPP
		       ? "needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM (5.19+): this "
			 "kernel cannot write-protect hugetlb pages"
		       : strerror(errno);
}

/* ---- cg_open ------------------------------------------------------------ */

START_TEST(open_refuses_a_null_out_pointer_and_a_mode_out_of_range)
{
	struct cg_options o = { .mode = _i == H_DAEMON ? CG_MODE_DAEMON
						       : CG_MODE_EMBEDDED,
				.socket_path = h_socket() };
	static const int bad_modes[] = { CG_MODE_EMBEDDED + 1, 100, -1 };
	struct cg *sentinel = (struct cg *)(uintptr_t)0x5a5a, *cg = sentinel;

	REFUSED(cg_open(&o, sizeof(o), NULL), -EINVAL);
	REFUSED(cg_open(NULL, 0, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(*bad_modes); i++) {
		o.mode = (enum cg_mode)bad_modes[i];
		REFUSED(cg_open(&o, sizeof(o), &cg), -EINVAL);
		ck_assert_ptr_eq(cg, sentinel);
	}
	/* The same options with a good mode open, so the mode was the fault. */
	o.mode = _i == H_DAEMON ? CG_MODE_DAEMON : CG_MODE_EMBEDDED;
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	ck_assert_int_eq(cg_mode(cg), o.mode);
	cg_close(cg);
}
END_TEST

START_TEST(open_in_daemon_mode_where_no_daemon_listens_is_econnrefused)
{
	char dir[] = "/tmp/cgbad.XXXXXX", missing[64], silent[64], longp[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cg_options o = { .mode = _i == H_DAEMON ? CG_MODE_DAEMON
						       : CG_MODE_EMBEDDED };
	struct cg *sentinel = (struct cg *)(uintptr_t)0x5a5a, *cg = sentinel;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(missing, sizeof(missing), "%s/no-such.sock", dir);
	/* A socket file bound but never listened on: connect is refused. */
	snprintf(silent, sizeof(silent), "%s/silent.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", silent);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;

	if (_i == H_DAEMON) {
		o.socket_path = missing;
		REFUSED(cg_open(&o, sizeof(o), &cg), -ECONNREFUSED);
		o.socket_path = silent;
		REFUSED(cg_open(&o, sizeof(o), &cg), -ECONNREFUSED);
		o.socket_path = longp;
		REFUSED(cg_open(&o, sizeof(o), &cg), -ENAMETOOLONG);
		ck_assert_ptr_eq(cg, sentinel);
	} else {
		/* Embedded mode never looks at the socket. */
		o.socket_path = silent;
		ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
		ck_assert_int_eq(cg_mode(cg), CG_MODE_EMBEDDED);
		cg_close(cg);
		/* Nor does AUTO fail: it falls back to embedded. */
		o.mode = CG_MODE_AUTO;
		ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
		ck_assert_int_eq(cg_mode(cg), CG_MODE_EMBEDDED);
		cg_close(cg);
	}
	close(fd);
	unlink(silent);
	rmdir(dir);
}
END_TEST

/* ---- NULL handles and outputs ------------------------------------------- */

START_TEST(a_null_handle_or_a_null_output_is_einval_and_changes_nothing)
{
	char *p = map_pages(4);
	struct cg_page_info info;
	struct cg_audit_report a;
	struct cg_stats s;
	struct cg *cg = h_open(_i);

	ck_assert_int_eq(cg_register(cg, p, 2 * PG, 0), 0);
	REFUSED(cg_register(NULL, p + 2 * PG, 2 * PG, 0), -EINVAL);
	REFUSED(cg_unregister(NULL, p, 2 * PG), -EINVAL);
	REFUSED(cg_query(NULL, p, &info, sizeof(info)), -EINVAL);
	REFUSED(cg_audit(NULL, p, 2 * PG, &a, sizeof(a)), -EINVAL);
	REFUSED(cg_stats(NULL, &s, sizeof(s)), -EINVAL);
	REFUSED(cg_query(cg, p, NULL, sizeof(struct cg_page_info)), -EINVAL);
	REFUSED(cg_audit(cg, p, 2 * PG, NULL, sizeof(struct cg_audit_report)), -EINVAL);
	REFUSED(cg_stats(cg, NULL, sizeof(struct cg_stats)), -EINVAL);
	ck_assert_uint_eq(cg_features(NULL), 0);
	cg_close(NULL);

	assert_registered(cg, 1, 2 * PG);
	assert_protected(cg, p);
	assert_untouched(cg, p + 2 * PG);
	ck_assert_int_eq(cg_stats(cg, &s, sizeof(s)), 0);
	ck_assert_uint_eq(s.audits, 0);
	cg_close(cg);
	munmap(p, 4 * PG);
}
END_TEST

/* ---- cg_register --------------------------------------------------------- */

START_TEST(register_refuses_zero_length_unaligned_ranges_and_flags_with_einval)
{
	char *p = map_pages(4);
	struct cg *cg = h_open(_i);

	REFUSED(cg_register(cg, p, 0, 0), -EINVAL);
	REFUSED(cg_register(cg, p + 1, PG, 0), -EINVAL);
	REFUSED(cg_register(cg, p + PG / 2, 2 * PG, 0), -EINVAL);
	REFUSED(cg_register(cg, p, PG - 1, 0), -EINVAL);
	REFUSED(cg_register(cg, p, PG + 1, 0), -EINVAL);
	REFUSED(cg_register(cg, p, 4 * PG, 1), -EINVAL);
	REFUSED(cg_register(cg, p, 4 * PG, 1u << 31), -EINVAL);
	REFUSED(cg_register(cg, p, 4 * PG, ~0u), -EINVAL);
	assert_registered(cg, 0, 0);
	for (int i = 0; i < 4; i++)
		assert_untouched(cg, p + i * PG);
	/* The memory itself was fine: only the arguments were bad. */
	ck_assert_int_eq(cg_register(cg, p, 4 * PG, 0), 0);
	assert_registered(cg, 1, 4 * PG);
	cg_close(cg);
	munmap(p, 4 * PG);
}
END_TEST

START_TEST(register_refuses_a_range_that_wraps_with_eoverflow)
{
	char *p = map_pages(2);
	struct cg *cg = h_open(_i);

	REFUSED(cg_register(cg, p, WRAPPING_LEN, 0), -EOVERFLOW);
	REFUSED(cg_register(cg, (void *)(uintptr_t)-PG, 2 * PG, 0), -EOVERFLOW);
	assert_registered(cg, 0, 0);
	assert_untouched(cg, p);
	cg_close(cg);
	munmap(p, 2 * PG);
}
END_TEST

START_TEST(register_refuses_unmapped_and_partly_mapped_ranges_with_enomem)
{
	char *hole = map_pages(3), *tail = map_pages(4), *head = map_pages(4);
	struct cg *cg = h_open(_i);

	/* A hole in the middle. */
	ck_assert_int_eq(munmap(hole + PG, PG), 0);
	REFUSED(cg_register(cg, hole, 3 * PG, 0), -ENOMEM);
	/* Mapped, then not: the range runs off the end. */
	ck_assert_int_eq(munmap(tail + 2 * PG, 2 * PG), 0);
	REFUSED(cg_register(cg, tail, 4 * PG, 0), -ENOMEM);
	REFUSED(cg_register(cg, tail + 2 * PG, 2 * PG, 0), -ENOMEM);
	/* Not mapped, then mapped. */
	ck_assert_int_eq(munmap(head, 2 * PG), 0);
	REFUSED(cg_register(cg, head, 4 * PG, 0), -ENOMEM);
	REFUSED(cg_register(cg, NULL, PG, 0), -ENOMEM);

	assert_registered(cg, 0, 0);
	assert_untouched(cg, hole);
	assert_untouched(cg, hole + 2 * PG);
	assert_untouched(cg, tail);
	assert_untouched(cg, head + 2 * PG);
	/* The mapped parts alone are fine. */
	ck_assert_int_eq(cg_register(cg, hole, PG, 0), 0);
	ck_assert_int_eq(cg_register(cg, tail, 2 * PG, 0), 0);
	ck_assert_int_eq(cg_register(cg, head + 2 * PG, 2 * PG, 0), 0);
	assert_registered(cg, 3, 5 * PG);
	cg_close(cg);
	munmap(hole, 3 * PG);
	munmap(tail, 4 * PG);
	munmap(head, 4 * PG);
}
END_TEST

START_TEST(register_refuses_file_backed_and_shared_memory_with_einval)
{
	struct cg *cg = h_open(_i);
	char *priv, *shared_file, *shared_anon, *memfd_priv;
	int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	int mfd = memfd_create("cowguard-test", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(mfd, 0);
	ck_assert_int_eq(ftruncate(fd, 4 * PG), 0);
	ck_assert_int_eq(ftruncate(mfd, 4 * PG), 0);
	priv = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	shared_file = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	shared_anon = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memfd_priv = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	ck_assert(priv != MAP_FAILED && shared_file != MAP_FAILED &&
		  shared_anon != MAP_FAILED && memfd_priv != MAP_FAILED);
	/* Written, so a private file mapping holds anonymous COW pages. */
	memset(priv, 'A', 4 * PG);
	memset(shared_file, 'B', 4 * PG);
	memset(shared_anon, 'C', 4 * PG);
	memset(memfd_priv, 'D', 4 * PG);

	REFUSED(cg_register(cg, priv, 4 * PG, 0), -EINVAL);
	REFUSED(cg_register(cg, shared_file, 4 * PG, 0), -EINVAL);
	REFUSED(cg_register(cg, shared_anon, 4 * PG, 0), -EINVAL);
	REFUSED(cg_register(cg, memfd_priv, 4 * PG, 0), -EINVAL);
	assert_registered(cg, 0, 0);
	assert_untouched(cg, priv);
	assert_untouched(cg, shared_file);
	assert_untouched(cg, shared_anon);
	assert_untouched(cg, memfd_priv);
	ck_assert_int_eq(shared_anon[0], 'C');
	cg_close(cg);
	munmap(priv, 4 * PG);
	munmap(shared_file, 4 * PG);
	munmap(shared_anon, 4 * PG);
	munmap(memfd_priv, 4 * PG);
	close(fd);
	close(mfd);
}
END_TEST

/* A 2 MiB-aligned stretch of 2n MiB of 4 KiB memory, unpopulated. */
static char *map_2m_aligned(size_t n)
{
	char *p = h_map(H_THP, n * 2 * MIB, -1);

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(madvise(p, n * 2 * MIB, MADV_NOHUGEPAGE), 0);
	return p;
}

START_TEST(register_refuses_a_range_mixing_page_kinds_with_einval)
{
	struct cg *cg = h_open(_i);
	char *p = map_2m_aligned(2), *q;

	/* THP-enabled next to 4 KiB: two VMAs, each fine alone. */
	ck_assert_int_eq(madvise(p, 2 * MIB, MADV_HUGEPAGE), 0);
	memset(p, 'A', 4 * MIB);
	REFUSED(cg_register(cg, p, 4 * MIB, 0), -EINVAL);
	assert_registered(cg, 0, 0);
	assert_untouched(cg, p);
	assert_untouched(cg, p + 2 * MIB);
	ck_assert_int_eq(cg_register(cg, p, 2 * MIB, 0), 0);
	ck_assert_int_eq(cg_register(cg, p + 2 * MIB, 2 * MIB, 0), 0);
	ck_assert_int_eq(cg_unregister(cg, p, 2 * MIB), 0);
	ck_assert_int_eq(cg_unregister(cg, p + 2 * MIB, 2 * MIB), 0);

	/* 4 KiB next to hugetlb: the second half becomes a hugetlb VMA. */
	q = map_2m_aligned(2);
	memset(q, 'A', 2 * MIB);
	if (!map_hugetlb(2 * MIB, MAP_HUGE_2MB, q + 2 * MIB)) {
		h_skip("no 2 MiB hugetlb page for the mixed-kinds case (%s)",
		       hugetlb_why());
	} else {
		memset(q + 2 * MIB, 'H', 2 * MIB);
		REFUSED(cg_register(cg, q, 4 * MIB, 0), -EINVAL);
		assert_registered(cg, 0, 0);
		assert_untouched(cg, q);
		assert_untouched(cg, q + 2 * MIB);
		ck_assert_int_eq(cg_register(cg, q + 2 * MIB, 2 * MIB, 0), 0);
		ck_assert_int_eq(cg_register(cg, q, 2 * MIB, 0), 0);
		assert_registered(cg, 2, 4 * MIB);
	}
	cg_close(cg);
	munmap(p, 4 * MIB);
	munmap(q, 4 * MIB);
}
END_TEST

START_TEST(register_refuses_hugetlb_ranges_not_aligned_to_the_huge_page)
{
	struct cg *cg = h_open(_i);
	char *p = map_hugetlb(4 * MIB, MAP_HUGE_2MB, NULL), *g;

	if (!p) {
		h_skip("no 2 MiB hugetlb pages (%s)", hugetlb_why());
		cg_close(cg);
		return;
	}
	memset(p, 'H', 4 * MIB);
	REFUSED(cg_register(cg, p, PG, 0), -EINVAL);
	REFUSED(cg_register(cg, p, 3 * MIB, 0), -EINVAL);
	REFUSED(cg_register(cg, p + PG, 2 * MIB, 0), -EINVAL);
	REFUSED(cg_register(cg, p + MIB, 2 * MIB, 0), -EINVAL);
	REFUSED(cg_register(cg, p + 2 * MIB, 2 * MIB - PG, 0), -EINVAL);
	assert_registered(cg, 0, 0);
	assert_untouched(cg, p);
	assert_untouched(cg, p + 2 * MIB);
	ck_assert_int_eq(cg_register(cg, p + 2 * MIB, 2 * MIB, 0), 0);
	assert_registered(cg, 1, 2 * MIB);

	/* 1 GiB: reserved by mmap, never touched (nothing to copy). */
	g = map_hugetlb(GIB, MAP_HUGE_1GB, NULL);
	if (!g) {
		h_skip("no 1 GiB hugetlb page to map (%s)", strerror(errno));
	} else {
		REFUSED(cg_register(cg, g, 2 * MIB, 0), -EINVAL);
		REFUSED(cg_register(cg, g + 2 * MIB, GIB - 2 * MIB, 0), -EINVAL);
		REFUSED(cg_register(cg, g, GIB - PG, 0), -EINVAL);
		assert_registered(cg, 1, 2 * MIB);
		ck_assert_int_eq(h_vma_flag(g, "uw"), 0);
		munmap(g, GIB);
	}
	cg_close(cg);
	munmap(p, 4 * MIB);
}
END_TEST

START_TEST(register_refuses_a_registered_or_overlapping_range_with_eexist)
{
	char *p = map_pages(8);
	struct cg *cg = h_open(_i);

	ck_assert_int_eq(cg_register(cg, p + 2 * PG, 4 * PG, 0), 0);
	REFUSED(cg_register(cg, p + 2 * PG, 4 * PG, 0), -EEXIST);
	REFUSED(cg_register(cg, p, 3 * PG, 0), -EEXIST);
	REFUSED(cg_register(cg, p + 5 * PG, 3 * PG, 0), -EEXIST);
	REFUSED(cg_register(cg, p + 3 * PG, PG, 0), -EEXIST);
	REFUSED(cg_register(cg, p, 8 * PG, 0), -EEXIST);
	assert_registered(cg, 1, 4 * PG);
	assert_untouched(cg, p);
	assert_untouched(cg, p + PG);
	assert_untouched(cg, p + 6 * PG);
	assert_untouched(cg, p + 7 * PG);
	for (int i = 2; i < 6; i++)
		assert_protected(cg, p + i * PG);
	/* Adjacent is not overlapping. */
	ck_assert_int_eq(cg_register(cg, p, 2 * PG, 0), 0);
	ck_assert_int_eq(cg_register(cg, p + 6 * PG, 2 * PG, 0), 0);
	assert_registered(cg, 3, 8 * PG);
	cg_close(cg);
	munmap(p, 8 * PG);
}
END_TEST

/* ---- cg_unregister ------------------------------------------------------- */

START_TEST(unregister_refuses_anything_but_exactly_a_registered_range)
{
	char *p = map_pages(8);
	struct cg *cg = h_open(_i);

	ck_assert_int_eq(cg_register(cg, p + 2 * PG, 2 * PG, 0), 0);
	ck_assert_int_eq(cg_register(cg, p + 4 * PG, 2 * PG, 0), 0);
	REFUSED(cg_unregister(cg, p + 2 * PG, PG), -ENOENT);		/* shorter */
	REFUSED(cg_unregister(cg, p + 2 * PG, 3 * PG), -ENOENT);	/* longer */
	REFUSED(cg_unregister(cg, p + 2 * PG, 4 * PG), -ENOENT);	/* both */
	REFUSED(cg_unregister(cg, p + 3 * PG, PG), -ENOENT);		/* inside */
	REFUSED(cg_unregister(cg, p + PG, 2 * PG), -ENOENT);		/* before */
	REFUSED(cg_unregister(cg, p, 8 * PG), -ENOENT);		/* around */
	REFUSED(cg_unregister(cg, p + 2 * PG, 0), -ENOENT);		/* empty */
	REFUSED(cg_unregister(cg, p + 2 * PG + 1, 2 * PG), -ENOENT);	/* unaligned */
	REFUSED(cg_unregister(cg, p, 2 * PG), -ENOENT);		/* never */
	REFUSED(cg_unregister(cg, NULL, PG), -ENOENT);
	assert_registered(cg, 2, 4 * PG);
	for (int i = 2; i < 6; i++)
		assert_protected(cg, p + i * PG);
	ck_assert_int_eq(h_vma_flag(p + 2 * PG, "uw"), 1);

	ck_assert_int_eq(cg_unregister(cg, p + 2 * PG, 2 * PG), 0);
	REFUSED(cg_unregister(cg, p + 2 * PG, 2 * PG), -ENOENT);
	assert_registered(cg, 1, 2 * PG);
	assert_untouched(cg, p + 2 * PG);
	assert_protected(cg, p + 4 * PG);
	cg_close(cg);
	munmap(p, 8 * PG);
}
END_TEST

/* ---- cg_query ------------------------------------------------------------ */

START_TEST(query_outside_every_region_is_enoent_and_leaves_the_output_alone)
{
	char *p = map_pages(8);
	struct cg_page_info info, poison;
	const void *outside[] = { p, p + 2 * PG - 1, p + 6 * PG, p + 7 * PG,
				  NULL, (void *)(uintptr_t)-1 };
	struct cg *cg = h_open(_i);

	ck_assert_int_eq(cg_register(cg, p + 2 * PG, 4 * PG, 0), 0);
	memset(&poison, 0x5a, sizeof(poison));
	for (size_t i = 0; i < sizeof(outside) / sizeof(*outside); i++) {
		info = poison;
		REFUSED(cg_query(cg, outside[i], &info, sizeof(info)), -ENOENT);
		ck_assert_msg(memcmp(&info, &poison, sizeof(info)) == 0,
			      "cg_query(%p) failed but wrote its output",
			      outside[i]);
	}
	ck_assert_int_eq(cg_query(cg, p + 6 * PG - 1, &info, sizeof(info)), 0);
	ck_assert_uint_eq(info.addr, (uintptr_t)(p + 5 * PG));
	assert_registered(cg, 1, 4 * PG);
	cg_close(cg);
	munmap(p, 8 * PG);
}
END_TEST

/* ---- cg_audit ------------------------------------------------------------ */

START_TEST(audit_refuses_bad_ranges_and_ranges_not_fully_registered)
{
	char *p = map_pages(8);
	struct cg_audit_report a, poison;
	struct cg_stats before, after;
	struct cg *cg = h_open(_i);

	/* Two adjacent regions (pages 2-5), a gap (6), a third region (7). */
	ck_assert_int_eq(cg_register(cg, p + 2 * PG, 2 * PG, 0), 0);
	ck_assert_int_eq(cg_register(cg, p + 4 * PG, 2 * PG, 0), 0);
	ck_assert_int_eq(cg_register(cg, p + 7 * PG, PG, 0), 0);
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);
	memset(&poison, 0x5a, sizeof(poison));
	a = poison;

	REFUSED(cg_audit(cg, p + 2 * PG, 0, &a, sizeof(a)), -EINVAL);
	REFUSED(cg_audit(cg, p + 2 * PG + 1, PG, &a, sizeof(a)), -EINVAL);
	REFUSED(cg_audit(cg, p + 2 * PG, PG + 1, &a, sizeof(a)), -EINVAL);
	REFUSED(cg_audit(cg, p + 2 * PG, WRAPPING_LEN, &a, sizeof(a)), -EOVERFLOW);
	REFUSED(cg_audit(cg, p, 4 * PG, &a, sizeof(a)), -ENOENT);		/* starts before */
	REFUSED(cg_audit(cg, p + 4 * PG, 3 * PG, &a, sizeof(a)), -ENOENT);	/* runs past */
	REFUSED(cg_audit(cg, p + 2 * PG, 6 * PG, &a, sizeof(a)), -ENOENT);	/* over the gap */
	REFUSED(cg_audit(cg, p + 6 * PG, PG, &a, sizeof(a)), -ENOENT);		/* in the gap */
	REFUSED(cg_audit(cg, p + 7 * PG, 2 * PG, &a, sizeof(a)), -ENOENT);	/* past the end */
	ck_assert_msg(memcmp(&a, &poison, sizeof(a)) == 0,
		      "a refused cg_audit wrote its report");
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.audits, before.audits);
	ck_assert_uint_eq(after.mismatches, before.mismatches);
	assert_registered(cg, 3, 5 * PG);

	/* Across adjacent regions is within registered memory. */
	a = h_audit_clean(cg, p + 2 * PG, 4 * PG);
	ck_assert_uint_eq(a.pages, 4);
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.audits, before.audits + 1);
	cg_close(cg);
	munmap(p, 8 * PG);
}
END_TEST

/* ---- cg_strerror --------------------------------------------------------- */

START_TEST(strerror_gives_distinct_text_for_every_errno_cowguard_returns)
{
	static const int errs[] = {
		EINVAL, EOVERFLOW, ENOMEM, EEXIST, ENOENT, EDQUOT, ENOSPC, EPERM,
		ENOSYS, ECONNREFUSED, ENAMETOOLONG, EACCES, ENOTCONN, EPROTO,
		EPROTONOSUPPORT, ETIMEDOUT, ESRCH, EBADF,
	};
	size_t n = sizeof(errs) / sizeof(*errs);
	const char *text[sizeof(errs) / sizeof(*errs)];
	const char *unknown = cg_strerror(-123456);

	ck_assert_ptr_nonnull(unknown);
	ck_assert_ptr_nonnull(cg_strerror(0));
	ck_assert_ptr_nonnull(cg_strerror(123456));
	for (size_t i = 0; i < n; i++) {
		text[i] = cg_strerror(-errs[i]);
		ck_assert_msg(text[i] && *text[i] && strcmp(text[i], unknown),
			      "cg_strerror(-%d) has no text of its own", errs[i]);
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(strcmp(text[i], text[j]) != 0,
				      "cg_strerror(-%d) and (-%d) both say \"%s\"",
				      errs[i], errs[j], text[i]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bad arguments are refused");
	TCase *open_tc = tcase_create("open");
	TCase *reg = tcase_create("register");
	TCase *other = tcase_create("unregister query audit");
	TCase *text = tcase_create("strerror");

	h_timeout(open_tc, 10);
	h_add_modes(open_tc, open_refuses_a_null_out_pointer_and_a_mode_out_of_range);
	h_add_modes(open_tc, open_in_daemon_mode_where_no_daemon_listens_is_econnrefused);
	h_add_modes(open_tc, a_null_handle_or_a_null_output_is_einval_and_changes_nothing);
	suite_add_tcase(s, open_tc);

	h_timeout(reg, 20);
	h_add_modes(reg, register_refuses_zero_length_unaligned_ranges_and_flags_with_einval);
	h_add_modes(reg, register_refuses_a_range_that_wraps_with_eoverflow);
	h_add_modes(reg, register_refuses_unmapped_and_partly_mapped_ranges_with_enomem);
	h_add_modes(reg, register_refuses_file_backed_and_shared_memory_with_einval);
	h_add_modes(reg, register_refuses_a_range_mixing_page_kinds_with_einval);
	h_add_modes(reg, register_refuses_hugetlb_ranges_not_aligned_to_the_huge_page);
	h_add_modes(reg, register_refuses_a_registered_or_overlapping_range_with_eexist);
	suite_add_tcase(s, reg);

	h_timeout(other, 10);
	h_add_modes(other, unregister_refuses_anything_but_exactly_a_registered_range);
	h_add_modes(other, query_outside_every_region_is_enoent_and_leaves_the_output_alone);
	h_add_modes(other, audit_refuses_bad_ranges_and_ranges_not_fully_registered);
	suite_add_tcase(s, other);

	h_add(text, strerror_gives_distinct_text_for_every_errno_cowguard_returns);
	suite_add_tcase(s, text);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
