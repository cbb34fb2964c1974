// SPDX-License-Identifier: MIT
/*
 * cg_ibv_reg_mr() pins the pages through cowguard before the kernel pins
 * them for the device, as the kernel will (read-only unless the access
 * flags let the device write), and cg_ibv_dereg_mr() deregisters before it
 * unpins and checks.
 *
 * There is no RDMA device on the build machines, so most cases run against
 * a fake provider: this file defines ibv_reg_mr_iova2() and ibv_dereg_mr(),
 * which the static libcowguard-verbs binds to instead of libibverbs'.  For
 * the fake PD they record the call and what cowguard and the kernel said
 * about every page at that moment; for any other PD they forward to
 * libibverbs.  A fake registration pins nothing in the kernel, so what the
 * pages look like then is cowguard's doing alone: these cases prove
 * cowguard's part, not the kernel's (which unshares read-only pins itself
 * since 5.19).  The device cases, which the QEMU soft-RoCE lane runs, skip
 * here saying why.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cowguard/verbs.h>

#include "harness.h"
#include "pin-util.h"
#include "verbs-util.h"
#include "verbs/verbs_internal.h"
#include "wire/protocol.h"

#define FAKE_LKEY 0x1234u

/* Loop tests over mode and the three kinds that make sense here. */

/* ---- the fake provider ---------------------------------------------------- */

static struct ibv_pd fake_pd;

static struct {
	struct cg *cg;		/* to ask at registration */
	int fail_reg;		/* errno for the next registration, or 0 */
	int fail_dereg;		/* return of the next deregistration, or 0 */
	int regs, deregs;
	void *addr;
	size_t length;
	unsigned access;
	size_t pages;		/* 4 KiB pages the registration covered */
	size_t unpinned;	/* of which the engine had no pin on */
	size_t shared;		/* of which the kernel or the engine shared */
	size_t clean;		/* of which the engine had not marked dirty */
	size_t unregistered;	/* of which cowguard does not track */
	uint32_t pins_at_dereg;	/* the engine's pins on addr at dereg */
	uint64_t pfn;		/* the first page's frame at registration */
} fake;

static void fake_reset(struct cg *cg)
{
	memset(&fake, 0, sizeof(fake));
	fake.cg = cg;
}

/* The page states the device would see, recorded at its registration. */
static void fake_look(void *addr, size_t length)
{
	uintptr_t lo = (uintptr_t)addr & ~(PG - 1), hi = (uintptr_t)addr + length;

	for (uintptr_t a = lo; a < hi; a += PG) {
		struct cg_page_info q = { 0 };

		fake.pages++;
		/* Allowed only where cowguard pins nothing: ODP. */
		if (cg_query(fake.cg, (void *)a, &q, sizeof(q)) == -ENOENT) {
			fake.unregistered++;
			fake.unpinned++;
			continue;
		}
		fake.unpinned += q.pins == 0;
		fake.shared += !q.exclusive ||
			       ph_kernel_exclusive((void *)a, H_4K) == 0;
		fake.clean += !q.dirty;
	}
	fake.pfn = ph_pfn(addr);
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
				uint64_t iova, unsigned int access)
{
	struct ibv_mr *(*real)(struct ibv_pd *, void *, size_t, uint64_t,
			       unsigned int);
	struct ibv_mr *mr;

	if (pd != &fake_pd) {
		real = (struct ibv_mr *(*)(struct ibv_pd *, void *, size_t,
					   uint64_t, unsigned int))
			dlsym(RTLD_NEXT, "ibv_reg_mr_iova2");
		ck_assert_ptr_nonnull(real);
		return real(pd, addr, length, iova, access);
	}
	fake.regs++;
	fake.addr = addr;
	fake.length = length;
	fake.access = access;
	ck_assert_uint_eq(iova, (uintptr_t)addr);
	if (fake.fail_reg) {
		errno = fake.fail_reg;
		return NULL;
	}
	fake_look(addr, length);
	mr = calloc(1, sizeof(*mr));
	ck_assert_ptr_nonnull(mr);
	*mr = (struct ibv_mr){ .pd = pd, .addr = addr, .length = length,
			       .lkey = FAKE_LKEY, .rkey = FAKE_LKEY + 1 };
	return mr;
}

int ibv_dereg_mr(struct ibv_mr *mr)
{
	int (*real)(struct ibv_mr *);
	struct cg_page_info q;

	if (mr->pd != &fake_pd) {
		real = (int (*)(struct ibv_mr *))dlsym(RTLD_NEXT, "ibv_dereg_mr");
		ck_assert_ptr_nonnull(real);
		return real(mr);
	}
	fake.deregs++;
	if (cg_query(fake.cg, mr->addr, &q, sizeof(q)) == 0)
		fake.pins_at_dereg = q.pins;
	if (fake.fail_dereg)
		return fake.fail_dereg;
	free(mr);
	return 0;
}

/* ---- cases without a device ---------------------------------------------- */

/*
 * The kernel's ib_umem_get() pins for writing exactly when
 * ib_access_writable(): LOCAL_WRITE, REMOTE_WRITE, REMOTE_ATOMIC, MW_BIND.
 * Catches a read-only pin where the kernel breaks COW by writing (the
 * engine would keep a page clean that the device dirties) or the reverse,
 * and a FOLL_PIN pin for ODP, which the kernel does not pin (the engine
 * would then believe fork() copies pages it shares).
 */
START_TEST(access_flags_map_to_the_pin_the_kernel_takes)
{
	static const struct {
		int access;
		unsigned flags;
	} map[] = {
		{ 0, CG_PIN_RO | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_REMOTE_READ, CG_PIN_RO | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_REMOTE_READ | IBV_ACCESS_ZERO_BASED |
		  IBV_ACCESS_HUGETLB | IBV_ACCESS_RELAXED_ORDERING,
		  CG_PIN_RO | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_LOCAL_WRITE, CG_PIN_RW | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
		  CG_PIN_RW | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_ATOMIC,
		  CG_PIN_RW | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_REMOTE_WRITE, CG_PIN_RW | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_REMOTE_ATOMIC, CG_PIN_RW | CG_PIN_FOLL_PIN },
		/* Binding a window may grant remote writes. */
		{ IBV_ACCESS_MW_BIND, CG_PIN_RW | CG_PIN_FOLL_PIN },
		{ IBV_ACCESS_ON_DEMAND, 0 },
		{ IBV_ACCESS_ON_DEMAND | IBV_ACCESS_LOCAL_WRITE, 0 },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		ck_assert_msg(cg__ibv_pin_flags(map[i].access) == map[i].flags,
			      "access %#x: pin flags %#x, expected %#x",
			      map[i].access, cg__ibv_pin_flags(map[i].access),
			      map[i].flags);
}
END_TEST

/* A region (h_region_open()) with the fake provider reset for it. */
static bool setup(struct h_region *f, int mode, enum h_kind kind, size_t len,
		  unsigned long copies)
{
	if (!h_region_open(f, mode, kind, len, 'A', copies))
		return false;
	fake_reset(f->cg);
	return true;
}

/* Refused before anything is pinned or registered (the provider unused). */
START_TEST(bad_arguments_are_refused_before_the_provider_is_called)
{
	struct cg_mr *mr = NULL;
	struct h_region f;
	char *q;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	q = h_map(H_4K, PG, 'A');	/* not registered */
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(cg_ibv_reg_mr(NULL, &fake_pd, f.p, PG, 0, &mr), -EINVAL);
	/* No protection domain, no device: -EINVAL, not a crash in libibverbs. */
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, NULL, f.p, PG, 0, &mr), -EINVAL);
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p, PG, 0, NULL), -EINVAL);
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p, 0, 0, &mr), -EINVAL);
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, (void *)(UINTPTR_MAX - 10), 20,
				       0, &mr), -EOVERFLOW);
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, q, PG, 0, &mr), -ENOENT);
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p + f.len - 8, 16, 0, &mr), -ENOENT);
	ck_assert_ptr_null(mr);
	ck_assert_int_eq(fake.regs, 0);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 0);
	ck_assert_int_eq(cg_ibv_dereg_mr(NULL), -EINVAL);
	ck_assert_ptr_null(cg_ibv_mr(NULL));
	h_region_close(&f);
	munmap(q, PG);
}
END_TEST

static size_t mr_map_len(enum h_kind kind)
{
	return kind == H_4K ? 64 * PG : 2 * MIB;
}

/*
 * The main case, per kind: fork leaves the buffer COW-shared; a read-only
 * MR of it, unaligned at both ends.  Catches: registration before the pin
 * (the provider sees pages without a pin, still shared), a page left out
 * of the rounded range, a read-write pin for a read-only MR (pages marked
 * dirty), MADV_DONTFORK set for a FOLL_PIN consumer, the parent's write
 * moving off the registered frame, the child's data touched, the unpin
 * before the deregistration, a false violation.
 */
START_TEST(a_read_only_mr_of_a_cow_shared_buffer_is_pinned_before_registration)
{
	enum h_kind kind = H_KIND(_i);
	struct cg_stats s0, s1;
	struct cg_mr *mr = NULL;
	struct h_waiter w;
	struct h_region f;

	/* The pin copies the one shared hugetlb page. */
	if (!setup(&f, H_MODE(_i), kind, mr_map_len(kind), 1))
		return;
	w = h_fork_waiting(f.p + f.len - 1, 'A');
	ck_assert_int_eq(ph_kernel_exclusive(f.p, kind), 0);
	s0 = ph_stats(f.cg);

	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p + 100, f.len - 200,
				       IBV_ACCESS_REMOTE_READ, &mr), 0);
	ck_assert_ptr_nonnull(mr);
	ck_assert_int_eq(fake.regs, 1);
	ck_assert_ptr_eq(fake.addr, f.p + 100);
	ck_assert_uint_eq(fake.length, f.len - 200);
	ck_assert_uint_eq(fake.access, IBV_ACCESS_REMOTE_READ);
	ck_assert_uint_eq(cg_ibv_mr(mr)->lkey, FAKE_LKEY);
	s1 = ph_stats(f.cg);
	ck_assert_msg(fake.pages == f.len / PG && fake.unpinned == 0 &&
		      fake.unregistered == 0 &&
		      fake.shared == 0 &&
		      /*
		       * Before 5.19 the pin writes every page (lib/engine/pins.c);
		       * a THP moved in whole, 4 KiB pages copied out and
		       * filled back (embedded), are dirty for all cowguard
		       * can see.
		       */
		      fake.clean == (h_read_pins_unshare(NULL) &&
				     !(kind == H_THP && h_thp_moves(f.cg))
				     ? fake.pages - (s1.unshare_fills -
						     s0.unshare_fills)
				     : 0),
		      "at registration: %zu pages, %zu without a pin, %zu shared, "
		      "%zu clean", fake.pages, fake.unpinned, fake.shared,
		      fake.clean);
	ck_assert_uint_eq(s1.pins, 1);
	ck_assert_uint_eq(s1.unshare_copies - s0.unshare_copies, f.len / PG);
	/* A FOLL_PIN consumer: fork copies for the child, no MADV_DONTFORK. */
	ck_assert_int_eq(h_vma_flag(f.p, "dc"), 0);
	if (H_MODE(_i) == H_DAEMON) {
		struct cg__status_pin sp;

		/* The pin is the MR's pages, rounded out, as cowguardctl shows. */
		ck_assert_int_eq(h_daemon_pin(getpid(), 0, &sp), 1);
		ck_assert_str_eq(sp.consumer, "rdma");
		ck_assert(sp.start == (uintptr_t)f.p && sp.len == f.len &&
			  sp.flags == (CG_PIN_RO | CG_PIN_FOLL_PIN));
	}
	h_audit_clean(f.cg, f.p, f.len);

	memset(f.p, 'B', PG);
	ck_assert_uint_eq(ph_pfn(f.p), fake.pfn);
	ck_assert_uint_eq(ph_stats(f.cg).unshare_copies, s1.unshare_copies);
	ck_assert_msg(h_release(&w) == 0, "the child lost its own data");

	ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
	ck_assert_int_eq(fake.deregs, 1);
	ck_assert_msg(fake.pins_at_dereg == 1, "unpinned before deregistering");
	s1 = ph_stats(f.cg);
	ck_assert_uint_eq(s1.pins, 0);
	ck_assert_uint_eq(s1.pin_violations, s0.pin_violations);
	h_audit_clean(f.cg, f.p, f.len);
	h_region_close(&f);
}
END_TEST

/* A writable MR is a read-write pin: every page dirty for the engine. */
START_TEST(a_writable_mr_is_pinned_read_write)
{
	struct cg_mr *mr = NULL;
	struct h_region f;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p, f.len,
				       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
				       &mr), 0);
	ck_assert_msg(fake.unpinned == 0 && fake.shared == 0 && fake.clean == 0,
		      "at registration: %zu without a pin, %zu shared, %zu clean",
		      fake.unpinned, fake.shared, fake.clean);
	ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 0);
	h_region_close(&f);
}
END_TEST

/* ODP: the kernel pins nothing, neither does cowguard; no region needed. */
START_TEST(an_on_demand_mr_is_registered_without_a_pin)
{
	char *p = h_map(H_4K, 16 * PG, 'A');
	struct cg *cg = h_open(_i);
	struct cg_mr *mr = NULL;

	fake_reset(cg);
	ck_assert_int_eq(cg_register(cg, p, 8 * PG, 0), 0);
	ck_assert_int_eq(cg_ibv_reg_mr(cg, &fake_pd, p, 8 * PG,
				       IBV_ACCESS_ON_DEMAND | IBV_ACCESS_LOCAL_WRITE,
				       &mr), 0);
	ck_assert_uint_eq(fake.unpinned, 8);
	ck_assert_uint_eq(ph_stats(cg).pins, 0);
	ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
	ck_assert_int_eq(cg_ibv_reg_mr(cg, &fake_pd, p + 8 * PG, 8 * PG,
				       IBV_ACCESS_ON_DEMAND, &mr), 0);
	ck_assert_uint_eq(fake.unregistered, 8);
	ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
	cg_close(cg);
	munmap(p, 16 * PG);
}
END_TEST

/* ibv_reg_mr() fails: its errno comes back and the pin is gone. */
START_TEST(a_failed_registration_leaves_nothing_pinned)
{
	struct cg_mr *mr = NULL;
	struct h_region f;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	fake.fail_reg = EOPNOTSUPP;
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p, f.len, 0, &mr), -EOPNOTSUPP);
	ck_assert_int_eq(fake.regs, 1);
	ck_assert_ptr_null(mr);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 0);
	ck_assert_uint_eq(ph_query(f.cg, f.p).pins, 0);
	h_region_close(&f);
}
END_TEST

/* ibv_dereg_mr() fails (windows bound): still registered, still pinned. */
START_TEST(a_failed_deregistration_keeps_the_region_and_its_pin)
{
	struct cg_mr *mr = NULL;
	struct h_region f;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p, f.len, 0, &mr), 0);
	fake.fail_dereg = EBUSY;
	ck_assert_int_eq(cg_ibv_dereg_mr(mr), -EBUSY);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 1);
	ck_assert_uint_eq(cg_ibv_mr(mr)->lkey, FAKE_LKEY);
	fake.fail_dereg = 0;
	ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
	ck_assert_int_eq(fake.deregs, 2);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 0);
	h_region_close(&f);
}
END_TEST

/*
 * The opposite must be loud.  cowguard trusts a FOLL_PIN consumer's kernel
 * pin to make fork() copy the pages for the child; the fake holds none, so
 * the fork shares them and the parent's write replaces one behind the
 * "device": cg_ibv_dereg_mr() reports it and the violation is counted.
 */
START_TEST(a_page_replaced_while_registered_is_a_violation_at_dereg)
{
	struct cg_mr *mr = NULL;
	struct h_region f;
	struct cg_stats s0;
	struct h_waiter w;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	s0 = ph_stats(f.cg);
	ck_assert_int_eq(cg_ibv_reg_mr(f.cg, &fake_pd, f.p, f.len, IBV_ACCESS_REMOTE_READ,
				       &mr), 0);
	w = h_fork_waiting(f.p, 'A');
	memset(f.p, 'B', PG);
	if (ph_pfn(f.p))	/* root: the write moved the page off the MR's frame */
		ck_assert_uint_ne(ph_pfn(f.p), fake.pfn);
	ck_assert_int_eq(cg_ibv_dereg_mr(mr), -ENOTRECOVERABLE);
	ck_assert_uint_eq(ph_stats(f.cg).pin_violations, s0.pin_violations + 1);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 0);
	ck_assert_int_eq(h_release(&w), 0);
	h_region_close(&f);
}
END_TEST

/* ---- cases on a device (the QEMU soft-RoCE lane) --------------------------- */

/*
 * Per mode, read-only then writable: fork, register the COW-shared buffer
 * on the device, every page exclusive in the kernel and the engine, and
 * cowguard's own counters show it did the unsharing (on 5.19+ the kernel
 * would have unshared a read-only pin too: the counters tell us apart);
 * the parent's write lands in the registered frame; dereg finds no
 * violation; the child keeps its data.
 */
START_TEST(on_a_device_an_mr_of_a_cow_shared_buffer_keeps_the_parents_pages)
{
	static const int access[] = { IBV_ACCESS_REMOTE_READ,
				      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE };
	size_t len = 64 * PG;
	struct vu_device d;
	struct cg *cg;

	if (!vu_open(&d))
		return;
	cg = h_open(_i);
	for (size_t i = 0; i < 2; i++) {
		char *p = h_map(H_4K, len, 'A');
		struct cg_mr *mr = NULL;
		struct cg_stats s0, s1;
		struct h_waiter w;
		uint64_t pfn;

		ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
		w = h_fork_waiting(p, 'A');
		s0 = ph_stats(cg);
		ck_assert_int_eq(cg_ibv_reg_mr(cg, d.pd, p, len, access[i], &mr), 0);
		s1 = ph_stats(cg);
		ck_assert_uint_eq(s1.pins, 1);
		ck_assert_uint_eq(s1.unshare_copies - s0.unshare_copies, len / PG);
		ph_for_each_page(off, H_4K, len) {
			struct cg_page_info q = ph_query(cg, p + off);

			ck_assert_int_eq(ph_kernel_exclusive(p + off, H_4K), 1);
			ck_assert(q.exclusive && q.pins == 1);
		}
		h_audit_clean(cg, p, len);
		pfn = ph_pfn(p);
		memset(p, 'B', len);
		ck_assert_uint_eq(ph_pfn(p), pfn);
		ck_assert_int_eq(h_release(&w), 0);
		ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
		ck_assert_uint_eq(ph_stats(cg).pin_violations, s0.pin_violations);
		h_audit_clean(cg, p, len);
		ck_assert_int_eq(cg_unregister(cg, p, len), 0);
		munmap(p, len);
	}
	cg_close(cg);
	vu_close(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("verbs pins before registering");
	TCase *nodev = tcase_create("fake provider");
	TCase *dev = tcase_create("device");

	h_timeout(nodev, 30);
	h_timeout(dev, 30);
	h_add(nodev, access_flags_map_to_the_pin_the_kernel_takes);
	h_add_modes(nodev, bad_arguments_are_refused_before_the_provider_is_called);
	h_add_test(nodev,
		   a_read_only_mr_of_a_cow_shared_buffer_is_pinned_before_registration,
		   H_MODES, H_KINDS_SHARED);
	h_add_modes(nodev, a_writable_mr_is_pinned_read_write);
	h_add_modes(nodev, an_on_demand_mr_is_registered_without_a_pin);
	h_add_modes(nodev, a_failed_registration_leaves_nothing_pinned);
	h_add_modes(nodev, a_failed_deregistration_keeps_the_region_and_its_pin);
	h_add_modes(nodev, a_page_replaced_while_registered_is_a_violation_at_dereg);
	h_add_modes(dev, on_a_device_an_mr_of_a_cow_shared_buffer_keeps_the_parents_pages);
	suite_add_tcase(s, nodev);
	suite_add_tcase(s, dev);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
