// SPDX-License-Identifier: MIT
/*
 * A buffer that was only read pins like any other: read every page of
 * fresh anonymous memory (a calloc'd buffer checked before use), register
 * it, pin it read-only.  Where the kernel has a zero page, every page of
 * it then maps that one page: a read-only pin takes the zero page as it
 * is (it is not anonymous memory), so only a write fault in the process
 * can give each page a frame of its own.  Afterwards every page is mapped
 * once in the kernel, exclusive with one pin in the engine, still reads
 * zeros, and the audit is clean.
 *
 * Machines of this kind differ: some boot without a zero page
 * (pvm_no_zero_page=1), where a read maps a page of its own.  The case
 * runs on both and says which it saw; where the zero page was mapped it
 * also asserts that cowguard asked for the write-unshare (its counter),
 * so that the pass proves cowguard did it -- or, for THP where cowguard
 * moves copies in (6.8+), that it replaced the huge zero page whole, or
 * that it copied the pages out and filled them back (embedded, 6.4+).
 *
 * Bugs this catches: -EAGAIN from cg_pin() on a read-only buffer (it fixed
 * one page per retry and gave up after three), a pin that leaves a page
 * on the zero page (the consumer would read zeros after the next write),
 * the engine calling such a page exclusive (unsafe), content changed.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"


static char *map_read_only_touched(enum h_kind kind, size_t len)
{
	size_t align = kind == H_THP ? 2 * MIB : PG;
	char *raw = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;
	volatile char sum = 0;

	ck_assert(raw != MAP_FAILED);
	p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (kind == H_THP)
		ck_assert_int_eq(madvise(p, len, MADV_HUGEPAGE), 0);
	for (size_t off = 0; off < len; off += PG)
		sum += p[off];
	(void)sum;
	return p;
}

/* Pages of [p, p+len) the kernel maps shared right after the reads. */
static size_t pages_mapped_shared(const char *p, size_t len)
{
	size_t n = 0;

	for (size_t off = 0; off < len; off += PG) {
		struct h_kpage k = h_kpage(p + off);

		ck_assert_msg(k.present, "page %zu not present after a read",
			      off / PG);
		n += !k.mapped_once;
	}
	return n;
}

START_TEST(a_buffer_that_was_only_read_pins_like_any_other)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = 4 * MIB;
	char *p = map_read_only_touched(kind, len);
	size_t shared = pages_mapped_shared(p, len);
	struct cg_stats s0, s1;
	struct cg_pin *pin = NULL;
	struct cg *cg = h_open(H_MODE(_i));
	int ret;

	printf("%s %s: %zu of %zu pages read map the zero page%s\n",
	       h_mode_name(H_MODE(_i)), h_kind_name(kind), shared, len / PG,
	       shared ? "" : " (this machine has none)");
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	s0 = ph_stats(cg);
	ret = cg_pin(cg, p, len, CG_PIN_RO, &pin);
	ck_assert_msg(ret == 0, "cg_pin of a buffer only read: %s",
		      cg_strerror(ret));
	s1 = ph_stats(cg);
	for (size_t off = 0; off < len; off += PG) {
		struct cg_page_info q = ph_query(cg, p + off);
		struct h_kpage k = h_kpage(p + off);

		ck_assert_msg(k.present && k.mapped_once,
			      "page %zu after the pin: present %d mapped once %d",
			      off / PG, k.present, k.mapped_once);
		ck_assert_msg(q.present && q.exclusive && q.pins == 1,
			      "page %zu after the pin: present %d exclusive %d "
			      "pins %u", off / PG, q.present, q.exclusive, q.pins);
		ck_assert_int_eq(p[off], 0);
		ck_assert_int_eq(p[off + PG - 1], 0);
	}
	/* The huge zero page is replaced whole where THPs are moved in. */
	if (shared && kind == H_THP && h_thp_moves(cg))
		ck_assert_uint_ge(s1.unshare_moves - s0.unshare_moves, shared);
	/* Or copied out and filled back, in embedded mode (6.4+). */
	else if (shared && s1.unshare_fills > s0.unshare_fills)
		ck_assert_uint_ge(s1.unshare_fills - s0.unshare_fills +
					  s1.unshare_writes - s0.unshare_writes,
				  shared);
	else if (shared)
		ck_assert_uint_ge(s1.unshare_writes - s0.unshare_writes, shared);
	h_audit_clean(cg, p, len);
	ck_assert_int_eq(cg_unpin(pin), 0);
	h_audit_clean(cg, p, len);
	cg_close(cg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pin of a buffer only read succeeds");
	TCase *tc = tcase_create("zero page");

	h_timeout(tc, 30);
	h_add_test(tc, a_buffer_that_was_only_read_pins_like_any_other, H_MODES, H_KINDS_SMALL);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
