// SPDX-License-Identifier: MIT
/*
 * `cowguardctl snapshot PID -o FILE` takes a live snapshot of a client of
 * cowguardd (daemon mode) from outside it: this process, with two writer
 * threads stamping every page round the range (tests/stamp-util.h), is
 * the client.  The image must hold, for each writer, a prefix of its
 * writes between those done before the command and those done after it:
 * the memory of one instant.  The client's own next incremental snapshot
 * is refused after it (-ENOENT: the record of writes went to our image).
 *
 * The daemon is attacked too, over a cowguardctl connection of its own:
 * a snapshot begun freezes the client (a writer stops), and closing the
 * connection ends it (the writer goes on, and the client can take its own
 * snapshot); a second begin, a step without one, an incremental begin
 * and an unknown pid are refused; a user who is not the client's (nobody)
 * may neither begin one (-EACCES) nor get a file out of the command, and
 * nor may the client's own user once it cannot be traced (not dumpable).
 *
 * Bugs this catches: a snapshot of another process that is not one
 * instant, a client left frozen by a cowguardctl that went away, a
 * snapshot anyone may take, an incremental snapshot of the client that
 * misses what our snapshot took from the record of writes.
 */
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"
#include "stamp-util.h"

#define LEN (8 * MIB)
#define WRITERS 2
#define NOBODY 65534

struct client {
	struct cg *cg;
	char *p;
	struct writer w[WRITERS];
	pthread_t t[WRITERS];
};

/* This process as a client in daemon mode; false (skipped) if async. */
static bool client_start(struct client *c, unsigned writers)
{
	c->p = h_map(H_4K, LEN, 0);
	ck_assert(c->p);
	for (size_t off = 0; off < LEN; off += 8 * PG)
		ck_assert_int_eq(madvise(c->p + off, PG, MADV_DONTNEED), 0);
	c->cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(c->cg, c->p, LEN, 0), 0);
	if (h_skip_if_async(c->cg, "asynchronous protection refuses snapshots"))
		return false;
	for (unsigned i = 0; i < writers; i++) {
		c->w[i] = (struct writer){ .p = c->p, .pages = LEN / PG, .id = i };
		ck_assert_int_eq(pthread_create(&c->t[i], NULL, writer_main,
						&c->w[i]), 0);
	}
	return true;
}

static void client_stop(struct client *c, unsigned writers)
{
	for (unsigned i = 0; i < writers; i++) {
		atomic_store(&c->w[i].stop, true);
		pthread_join(c->t[i], NULL);
	}
	cg_close(c->cg);
	munmap(c->p, LEN);
}

/* A fresh file name in the scratch directory; the file does not exist. */
static void scratch_name(char *path, size_t len)
{
	const char *dir = getenv("CG_TEST_SCRATCH");

	snprintf(path, len, "%s/cg-ctl-snapshot-%d.img", dir ? dir : "/tmp",
		 (int)getpid());
	unlink(path);
}

START_TEST(cowguardctl_snapshot_is_the_memory_of_one_instant_of_a_client)
{
	struct h_run *r = malloc(sizeof(*r));
	uint64_t before[WRITERS], after[WRITERS];
	char path[256], *img = malloc(LEN);
	struct client c;
	int fd;

	ck_assert(r && img);
	if (!client_start(&c, WRITERS))
		goto out;
	fd = su_tmpfile();
	ck_assert_int_eq(cg_snapshot(c.cg, fd, 0, NULL, 0), 0);
	close(fd);
	scratch_name(path, sizeof(path));
	h_sleep_ms(5);
	for (unsigned i = 0; i < WRITERS; i++)
		before[i] = atomic_load(&c.w[i].done);
	h_run_cmd(r, "%s --socket '%s' snapshot %d -o '%s' 2>&1", h_ctl_path(),
		  h_socket(), (int)getpid(), path);
	for (unsigned i = 0; i < WRITERS; i++)
		after[i] = atomic_load(&c.w[i].done);
	ck_assert_msg(r->status == 0, "cowguardctl snapshot exited %d: %s",
		      r->status, r->out);
	ck_assert_msg(strstr(r->out, "saved to"), "%s", r->out);
	printf("%s", r->out);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	su_rebuild(fd, c.p, LEN, img, NULL);
	for (unsigned i = 0; i < WRITERS; i++)
		check_prefix(img, LEN / PG, i, before[i], after[i]);
	close(fd);
	unlink(path);
	/* The record of writes went to our image: no parent for the client. */
	fd = su_tmpfile();
	ck_assert_int_eq(cg_snapshot(c.cg, fd, CG_SNAPSHOT_INCREMENTAL, NULL, 0),
			 -ENOENT);
	close(fd);
	client_stop(&c, WRITERS);
out:
	free(img);
	free(r);
}
END_TEST

/* One request over ctl; the reply's status, or the call's -errno. */
static int ask(struct cg__client *ctl, enum cg__op op, pid_t pid,
	       unsigned flags)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret;

	cg__req_init(&req, op);
	req.pid = pid;
	req.flags = flags;
	ret = cg__client_call(ctl, &req, &rep);
	return ret ? ret : rep.status;
}

/* Whether writer w gets at least one write done within ms. */
static bool writes_within(struct writer *w, int ms)
{
	uint64_t was = atomic_load(&w->done);

	for (int i = 0; i < ms; i++) {
		if (atomic_load(&w->done) > was + 1)
			return true;
		h_sleep_ms(1);
	}
	return false;
}

START_TEST(a_snapshot_whose_cowguardctl_goes_away_lets_the_client_write)
{
	struct cg__client ctl = { .sock = -1 };
	struct client c;
	int fd;

	if (!client_start(&c, 0))
		return;
	ck_assert_int_eq(cg__client_open_ctl(&ctl, h_socket()), 0);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_STEP, 0, 0), -ENOENT);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_BEGIN, 1, 0), -ESRCH);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_BEGIN, getpid(),
			     CG__SNAP_INCREMENTAL), -EINVAL);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_BEGIN, getpid(), 0), 0);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_BEGIN, getpid(), 0), -EBUSY);
	/* Frozen: the writer waits on its first page. */
	c.w[0] = (struct writer){ .p = c.p, .pages = LEN / PG };
	ck_assert_int_eq(pthread_create(&c.t[0], NULL, writer_main, &c.w[0]), 0);
	ck_assert_msg(!writes_within(&c.w[0], 200),
		      "a write went through a snapshot nobody saved");
	cg__client_close(&ctl);
	ck_assert_msg(writes_within(&c.w[0], 5000),
		      "the writer still waits after cowguardctl went away");
	fd = su_tmpfile();
	ck_assert_int_eq(cg_snapshot(c.cg, fd, 0, NULL, 0), 0);
	close(fd);
	client_stop(&c, 1);
}
END_TEST

/* As nobody: a begin over a ctl connection of its own; its result. */
static int begin_as_nobody(pid_t target)
{
	int pipefd[2], result = -EIO, status;
	pid_t pid;

	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		struct cg__client ctl = { .sock = -1 };
		int ret = -EPERM;

		if (!setgroups(0, NULL) && !setresgid(NOBODY, NOBODY, NOBODY) &&
		    !setresuid(NOBODY, NOBODY, NOBODY)) {
			ret = cg__client_open_ctl(&ctl, h_socket());
			if (!ret)
				ret = ask(&ctl, CG_OP_SNAPSHOT_BEGIN, target, 0);
		}
		_exit(write(pipefd[1], &ret, sizeof(ret)) == sizeof(ret) ? 0 : 1);
	}
	close(pipefd[1]);
	ck_assert_int_eq(read(pipefd[0], &result, sizeof(result)),
			 (ssize_t)sizeof(result));
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return result;
}

START_TEST(another_user_may_not_snapshot_a_client)
{
	struct h_run *r = malloc(sizeof(*r));
	char path[256];
	struct client c;
	struct stat st;

	ck_assert(r);
	if (geteuid() != 0) {
		h_skip("becomes nobody: needs root (the root lane runs it)");
		goto out;
	}
	if (!client_start(&c, WRITERS))
		goto out;
	ck_assert_int_eq(begin_as_nobody(getpid()), -EACCES);
	ck_assert_msg(writes_within(&c.w[0], 5000), "a refused snapshot froze "
		      "the client");
	snprintf(path, sizeof(path), "/tmp/cg-ctl-nobody-%d.img", (int)getpid());
	unlink(path);
	h_run_cmd(r, "setpriv --reuid=%d --regid=%d --clear-groups %s "
		  "--socket '%s' snapshot %d -o '%s' 2>&1", NOBODY, NOBODY,
		  h_ctl_path(), h_socket(), (int)getpid(), path);
	ck_assert_msg(r->status == 2, "cowguardctl as nobody exited %d: %s",
		      r->status, r->out);
	printf("as nobody: %s", r->out);
	ck_assert_msg(stat(path, &st) && errno == ENOENT,
		      "a refused snapshot left %s", path);
	client_stop(&c, WRITERS);
out:
	free(r);
}
END_TEST

/* The kernel would not let its own user trace it: nor may we. */
START_TEST(a_client_that_cannot_be_traced_is_not_its_users_to_snapshot)
{
	struct cg__client ctl = { .sock = -1 };
	struct client c;

	if (geteuid() == 0) {
		h_skip("root may snapshot any client (the unprivileged lane "
		       "runs this)");
		return;
	}
	if (!client_start(&c, 0))
		return;
	ck_assert_int_eq(cg__client_open_ctl(&ctl, h_socket()), 0);
	ck_assert_int_eq(prctl(PR_SET_DUMPABLE, 0), 0);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_BEGIN, getpid(), 0), -EACCES);
	ck_assert_int_eq(prctl(PR_SET_DUMPABLE, 1), 0);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_BEGIN, getpid(), 0), 0);
	ck_assert_int_eq(ask(&ctl, CG_OP_SNAPSHOT_END, 0, 0), 0);
	cg__client_close(&ctl);
	client_stop(&c, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl snapshots a running client");
	TCase *tc = tcase_create("snapshot");

	h_timeout(tc, 120);
	h_add(tc, cowguardctl_snapshot_is_the_memory_of_one_instant_of_a_client);
	h_add(tc, a_snapshot_whose_cowguardctl_goes_away_lets_the_client_write);
	h_add(tc, another_user_may_not_snapshot_a_client);
	h_add(tc, a_client_that_cannot_be_traced_is_not_its_users_to_snapshot);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
