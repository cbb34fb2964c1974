// SPDX-License-Identifier: MIT
/*
 * What a CRIU restore does to an embedded engine, on any kernel: CRIU's
 * plugin (lib/criu/) puts a uffd never set up where the engine's was.
 * Here the test does the same with dup3() over the engine's marked uffd
 * (its F_SETSIG signal, CG_UFFD_MARK_SIG), and the engine starts afresh on
 * a uffd of its own: every region tracked again, its history unknown (the
 * first collect reports every page, the next only what was written), the
 * audit clean, a pin from before answered as after a daemon restart.
 * tests/test-criu-brings-a-client-back-tracked runs CRIU itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/uffd.h"

#define PG 4096UL
#define PAGES 128
#define LEN (PAGES * PG)

static size_t collected(struct cg *cg, char *p, size_t len, char *must_have);

/* The engine's uffd: the one descriptor of ours that bears the mark. */
static int marked_uffd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1, n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd != dirfd(d) && cg__is_uffd(fd) &&
		    fcntl(fd, F_GETSIG) == CG_UFFD_MARK_SIG) {
			found = fd;
			n++;
		}
	}
	closedir(d);
	ck_assert_int_eq(n, 1);
	return found;
}

static void *drop_kick_page(void *page)
{
	madvise(page, PG, MADV_DONTNEED);
	return NULL;
}

/*
 * As the plugin restores it: a fresh uffd, no UFFDIO_API.  In a restored
 * process the handler thread's poll() starts again on the new file; here
 * it sleeps on the old one, which its poll holds alive (and with it the
 * old registrations).  An event wakes it (a page dropped: the engine
 * asks for UFFD_EVENT_REMOVE, which even asynchronous write protection
 * sends): its poll ends, the old uffd is released (which lets madvise()
 * return), and the thread finds the new one.
 */
static void replace_uffd(char *kick)
{
	int slot = marked_uffd(), fresh = cg__uffd_create();
	pthread_t t;

	ck_assert_int_ge(fresh, 0);
	ck_assert_int_eq(dup3(fresh, slot, O_CLOEXEC), slot);
	close(fresh);
	ck_assert_int_eq(pthread_create(&t, NULL, drop_kick_page, kick), 0);
	pthread_join(t, NULL);
}

/* A region of one page, for replace_uffd()'s wake-up. */
static char *kick_page(struct cg *cg)
{
	char *k = h_map(H_4K, PG, 'k');

	ck_assert_int_eq(cg_register(cg, k, PG, 0), 0);
	collected(cg, k, PG, NULL);
	return k;
}

static size_t collected(struct cg *cg, char *p, size_t len, char *must_have)
{
	struct cg_range out[PAGES];
	bool has = !must_have;
	size_t total = 0;
	void *next;
	int n = cg_track_collect(cg, p, len, out, PAGES, &next);

	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++) {
		total += out[i].len;
		has |= (char *)out[i].addr <= must_have &&
		       must_have < (char *)out[i].addr + out[i].len;
	}
	ck_assert_msg(has, "the write at %p is not reported", (void *)must_have);
	return total;
}

static void audit_clean(struct cg *cg, char *p, size_t len)
{
	struct cg_audit_report a;

	ck_assert_int_eq(cg_audit(cg, p, len, &a, sizeof(a)), 0);
	ck_assert_uint_eq(a.unsafe, 0);
	ck_assert_uint_eq(a.conservative, 0);
}

START_TEST(every_region_is_tracked_again_its_history_unknown)
{
	struct cg *cg = h_open(H_EMBEDDED);
	char *a = h_map(H_4K, LEN, 'a'), *b = h_map(H_4K, LEN, 'b');

	ck_assert_int_eq(cg_register(cg, a, LEN, 0), 0);
	ck_assert_int_eq(cg_register(cg, b, LEN, 0), 0);
	collected(cg, a, LEN, NULL);
	collected(cg, b, LEN, NULL);
	replace_uffd(kick_page(cg));
	/* The handler thread may be first, or this call: the same either way. */
	ck_assert_uint_eq(collected(cg, a, LEN, NULL), LEN);
	ck_assert_uint_eq(collected(cg, b, LEN, NULL), LEN);
	b[5 * PG] = 1;
	ck_assert_uint_lt(collected(cg, b, LEN, b + 5 * PG), LEN / 2);
	ck_assert_uint_eq(collected(cg, a, LEN, NULL), 0);
	audit_clean(cg, a, LEN);
	audit_clean(cg, b, LEN);
	cg_close(cg);
}
END_TEST

START_TEST(a_write_while_nothing_watched_is_reported)
{
	struct cg *cg = h_open(H_EMBEDDED);
	char *p = h_map(H_4K, LEN, 'p');

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	collected(cg, p, LEN, NULL);
	replace_uffd(kick_page(cg));
	p[9 * PG] = 2;	/* maybe before the engine is back */
	ck_assert_uint_eq(collected(cg, p, LEN, p + 9 * PG), LEN);
	ck_assert_uint_eq(collected(cg, p, LEN, NULL), 0);
	cg_close(cg);
}
END_TEST

START_TEST(a_pin_from_before_is_gone_and_new_pins_hold)
{
	struct cg *cg = h_open(H_EMBEDDED);
	char *p = h_map(H_4K, LEN, 'q');
	struct cg_pin *old, *pin;

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, 8 * PG, CG_PIN_RO, &old), 0);
	replace_uffd(kick_page(cg));
	ck_assert_int_eq(cg_pin(cg, p + 16 * PG, 8 * PG, CG_PIN_RO, &pin), 0);
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_int_eq(cg_unpin(old), -ENOENT);
	audit_clean(cg, p, LEN);
	cg_close(cg);
}
END_TEST

static void *close_later(void *fd)
{
	usleep(100 * 1000);
	close((int)(intptr_t)fd);
	return NULL;
}

/*
 * The old uffd may outlive its descriptor (the handler thread asleep in
 * poll() on it, a thread in read(), a release the kernel runs on the way
 * back to user space): while it lasts, the kernel refuses the memory to a
 * new uffd.  Here the handler thread sleeps on it, and a second
 * descriptor keeps it for 100 ms more.
 */
START_TEST(a_region_is_tracked_again_once_the_old_uffd_lets_go)
{
	struct cg *cg = h_open(H_EMBEDDED);
	char *p = h_map(H_4K, LEN, 'r');
	int slot, old, fresh = cg__uffd_create();
	pthread_t t;

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	collected(cg, p, LEN, NULL);
	usleep(20 * 1000);	/* past the handler's spin, into its poll() */
	slot = marked_uffd();
	old = dup(slot);
	ck_assert_int_ge(old, 0);
	ck_assert_int_ge(fresh, 0);
	ck_assert_int_eq(dup3(fresh, slot, O_CLOEXEC), slot);
	close(fresh);
	ck_assert_int_eq(pthread_create(&t, NULL, close_later, (void *)(intptr_t)old), 0);
	ck_assert_uint_eq(collected(cg, p, LEN, NULL), LEN);
	pthread_join(t, NULL);
	p[3 * PG] = 3;
	ck_assert_uint_lt(collected(cg, p, LEN, p + 3 * PG), LEN / 2);
	audit_clean(cg, p, LEN);
	cg_close(cg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("an engine whose uffd was replaced starts afresh");
	TCase *tc = tcase_create("renew");

	h_timeout(tc, 60);
	h_add(tc, every_region_is_tracked_again_its_history_unknown);
	h_add(tc, a_write_while_nothing_watched_is_reported);
	h_add(tc, a_pin_from_before_is_gone_and_new_pins_hold);
	h_add(tc, a_region_is_tracked_again_once_the_old_uffd_lets_go);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
