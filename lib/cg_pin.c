// SPDX-License-Identifier: MIT
/*
 * cg_pin() and cg_unpin(), in either mode.  The parts that must run in the
 * application's own process run here: populating holes (a read-only pin of
 * a hole would map the shared zero page; a write fault that changes no
 * byte gives a page of our own and races with nobody), the write
 * faults the engine asks for where a read-only pin cannot unshare, the
 * copy and drop of the THPs it unshares whole by a move (lib/move_unshare.c),
 * and MADV_DONTFORK for consumers that hold plain page references.  Unsharing
 * and the records are the engine's (lib/engine/pins.c), here or in cowguardd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"
#include "kernel/sys.h"
#include "move_unshare.h"
#include "write_unshare.h"

#define TRIES 3

/* The engine's answer to a PIN or UNPIN (the reply's u.pinned). */
struct pin_answer {
	uint64_t id;
	uint64_t bad_addr;	/* the page that failed */
	uint64_t bad_len;	/* -EAGAIN: the span to write-unshare */
	uint64_t move_len;	/* -EAGAIN: [bad_addr, +move_len) to move */
};

/*
 * Populate the pages of [addr, addr+len) that pagemap shows absent.  An
 * undumpable process cannot open its own pagemap (root's, 0400, then):
 * every page is write-faulted instead, which populates the holes as well.
 */
static int populate_holes(uint64_t addr, uint64_t len)
{
	int ret = cg__populate_holes(addr, len);

	return ret == -EACCES ? cg__write_fault(addr, len) : ret;
}

static int engine_pin(struct cg *cg, uint64_t addr, uint64_t len, unsigned flags,
		      const char *consumer, struct pin_answer *res)
{
	struct cg__req req;
	struct cg__rep rep = { 0 };	/* read even when the call failed */
	int ret;

	cg__req_init(&req, CG_OP_PIN);
	req.addr = addr;
	req.len = len;
	req.flags = flags;
	strncpy(req.name, consumer, sizeof(req.name) - 1);
	ret = cg__call(cg, &req, &rep);
	res->id = rep.u.pinned.id;
	res->bad_addr = rep.u.pinned.bad_addr;
	res->bad_len = rep.u.pinned.bad_len;
	res->move_len = rep.u.pinned.move_len;
	return ret;
}

/*
 * The engine handed over THP chunks to unshare whole: replace them with
 * copies of their own, then hand them back, whatever happened (the engine
 * judges them by the kernel).  Nonzero: pin without moves from now on.
 */
static int move_armed(struct cg *cg, uint64_t addr, uint64_t len)
{
	struct cg__req req;
	struct cg__rep rep = { 0 };
	int ret = cg__move_unshare(addr, len);
	int dret;

	cg__req_init(&req, CG_OP_MOVE);
	req.addr = addr;
	req.len = len;
	dret = cg__call(cg, &req, &rep);
	return ret ? ret : dret;
}

static int engine_unpin(struct cg *cg, uint64_t id, struct pin_answer *res)
{
	struct cg__req req;
	struct cg__rep rep = { 0 };	/* read even when the call failed */
	int ret;

	cg__req_init(&req, CG_OP_UNPIN);
	req.id = id;
	ret = cg__call(cg, &req, &rep);
	res->bad_addr = rep.u.pinned.bad_addr;
	return ret;
}

/* Whether a pin keeps its range out of children (MADV_DONTFORK). */
static bool dontfork(unsigned flags)
{
	return !(flags & (CG_PIN_FOLL_PIN | CG__PIN_FORKABLE));
}

/* Where the pins that keep a from forking stop keeping it (a: none do). */
static uint64_t kept_to(const struct cg *cg, uint64_t a)
{
	uint64_t to = a;

	for (int grew = 1; grew;) {
		grew = 0;
		for (const struct cg_pin *p = cg->pins; p; p = p->next)
			if (dontfork(p->flags) && to >= p->addr &&
			    to - p->addr < p->len) {
				to = p->addr + p->len;
				grew = 1;
			}
	}
	return to;
}

/* The first address in (a, end) a pin keeps from forking, or end. */
static uint64_t next_kept(const struct cg *cg, uint64_t a, uint64_t end)
{
	for (const struct cg_pin *p = cg->pins; p; p = p->next)
		if (dontfork(p->flags) && p->addr > a && p->addr < end)
			end = p->addr;
	return end;
}

/*
 * Undo MADV_DONTFORK where no other such pin of ours still covers, one call
 * per uncovered run: hugetlb VMAs refuse (EINVAL) a 4 KiB madvise inside a
 * huge page, so page by page would leave a hugetlb range MADV_DONTFORK.
 * Found run by run, not page by page against every pin: an unpin of 64 MiB
 * did 16384 such lookups.
 */
static void dofork_uncovered(struct cg *cg, uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len;

	for (uint64_t a = kept_to(cg, addr); a < end; a = kept_to(cg, a)) {
		uint64_t to = next_kept(cg, a, end);

		cg__sys_madvise((void *)(uintptr_t)a, to - a, MADV_DOFORK);
		a = to;
	}
}

static int check_args(struct cg *cg, uint64_t addr, size_t len, unsigned flags,
		      unsigned allowed, struct cg_pin **out)
{
	if (!cg || !out || !len || (addr | len) & (CG_PAGE_SIZE - 1))
		return -EINVAL;
	if (!(flags & (CG_PIN_RO | CG_PIN_RW)) || (flags & ~allowed))
		return -EINVAL;
	return addr + len < addr ? -EOVERFLOW : 0;
}

/*
 * Pin, populating any page the engine found absent, and write-unsharing
 * what it asks for (lib/write_unshare.c).  A retry is needed only when a
 * fork or a munmap races with the pin.
 */
static int pin_retrying(struct cg *cg, uint64_t addr, uint64_t len,
			unsigned flags, const char *consumer,
			struct pin_answer *res)
{
	int ret = populate_holes(addr, len);
	/* Each move unshares a run of chunks for good: not a retry. */
	uint64_t moves = (len >> CG_PMD_SHIFT) + 1;

	for (int i = 0; !ret || ret == -EAGAIN; i++) {
		ret = engine_pin(cg, addr, len, flags, consumer, res);
		if (ret == -EAGAIN && res->move_len) {
			if (move_armed(cg, res->bad_addr, res->move_len) ||
			    !--moves)
				flags |= CG__PIN_NO_MOVE;
			i--;
			continue;
		}
		if (ret != -EAGAIN || i == TRIES)
			break;
		if (res->bad_len)
			ret = cg__write_unshare(res->bad_addr, res->bad_len);
		else
			ret = cg__write_fault(res->bad_addr & ~(CG_PAGE_SIZE - 1),
					      CG_PAGE_SIZE);
		if (ret)
			break;
	}
	return ret;
}

#define PUBLIC_FLAGS (CG_PIN_RO | CG_PIN_RW | CG_PIN_FOLL_PIN)

static int pin_named(struct cg *cg, void *addr, size_t len, unsigned flags,
		     unsigned allowed, const char *consumer,
		     struct cg_pin **out)
{
	uint64_t a = (uintptr_t)addr;
	struct pin_answer res;
	struct cg_pin *pin;
	int ret = check_args(cg, a, len, flags, allowed, out);

	if (ret)
		return ret;
	pin = calloc(1, sizeof(*pin));
	if (!pin)
		return -ENOMEM;
	*pin = (struct cg_pin){ .cg = cg, .addr = a, .len = len, .flags = flags };
	pthread_mutex_lock(&cg->pins_lock);
	/* Before the pages become exclusive, so no fork can share them after. */
	if (dontfork(flags) && cg__sys_madvise(addr, len, MADV_DONTFORK))
		ret = errno == ENOMEM ? -ENOENT : -errno;
	/* The engine is told what the consumer does, not how we fork. */
	if (!ret)
		ret = pin_retrying(cg, a, len, flags & PUBLIC_FLAGS, consumer,
				   &res);
	if (ret && dontfork(flags))
		dofork_uncovered(cg, a, len);
	if (!ret) {
		pin->id = res.id;
		pin->next = cg->pins;
		cg->pins = pin;
		*out = pin;
	}
	pthread_mutex_unlock(&cg->pins_lock);
	if (ret)
		free(pin);
	return ret;
}

int cg__pin(struct cg *cg, void *addr, size_t len, unsigned flags,
	    const char *consumer, struct cg_pin **out)
{
	return pin_named(cg, addr, len, flags, PUBLIC_FLAGS | CG__PIN_FORKABLE,
			 consumer, out);
}

int cg_pin(struct cg *cg, void *addr, size_t len, unsigned flags,
	   struct cg_pin **out)
{
	return pin_named(cg, addr, len, flags, PUBLIC_FLAGS, "application",
			 out);
}

int cg_unpin(struct cg_pin *pin)
{
	struct pin_answer res = { 0 };
	struct cg *cg;
	int ret;

	if (!pin)
		return -EINVAL;
	cg = pin->cg;
	ret = engine_unpin(cg, pin->id, &res);
	pthread_mutex_lock(&cg->pins_lock);
	for (struct cg_pin **p = &cg->pins; *p; p = &(*p)->next)
		if (*p == pin) {
			*p = pin->next;
			break;
		}
	if (dontfork(pin->flags))
		dofork_uncovered(cg, pin->addr, pin->len);
	pthread_mutex_unlock(&cg->pins_lock);
	/* Loud, like the kernel's unpin check: the consumer read stale data. */
	if (ret == -ENOTRECOVERABLE)
		fprintf(stderr, "cowguard: pin %#llx+%#llx violated: the page at "
			"%#llx was replaced while pinned\n",
			(unsigned long long)pin->addr, (unsigned long long)pin->len,
			(unsigned long long)res.bad_addr);
	free(pin);
	return ret;
}
