// SPDX-License-Identifier: MIT
/*
 * A program killed after `cowguardctl snapshot` comes back on its image
 * with `cowguard-run --restore IMAGE -- CMD`.  A child of the test keeps
 * an arena at a fixed address (tests/apps/fixed-arena.h: a pattern, holes
 * every 8 pages), registered with the suite's daemon; the operator's
 * command saves it, and the child is killed.  Then tests/apps/fixed-arena,
 * a program that knows nothing of cowguard, runs under cowguard-run
 * --restore: before its main() the shim maps the arena back and fills it
 * lazily, and the program finds it there, every byte as written (holes
 * zeros), even one that closes every descriptor it did not open; the
 * shim's log says the restore began (the line that says it is done may
 * come after the program exits).  An image with one byte
 * changed, or none at that path, and the program never runs; nor does a
 * program the shim is never loaded into (static, or set-user-ID).
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "apps/fixed-arena.h"
#include "harness.h"

#define SEED 0x5eedULL

struct owner {
	int ready;	/* the pipe's end to say "registered" on */
};

/* The child: the arena written and registered, then waits to be killed. */
static int own_arena(void *arg)
{
	const struct owner *o = arg;
	struct cg_options opt = { .mode = CG_MODE_DAEMON,
				  .socket_path = h_socket() };
	struct cg *cg;
	char *p = mmap(ARENA_ADDR, ARENA_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return 2;
	arena_fill(p, SEED);
	if (cg_open(&opt, sizeof(opt), &cg) ||
	    cg_register(cg, p, ARENA_LEN, 0))
		return 3;
	if (write(o->ready, "r", 1) != 1)
		return 4;
	for (int s = 0; s < 120; s++)
		sleep(1);
	return 5;
}

/* The child's arena saved to path by cowguardctl; the child killed. */
static bool snapshot_and_kill(const char *path, struct h_run *r)
{
	int fds[2];
	struct owner o;
	struct pollfd pfd;
	char c = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	o.ready = fds[1];
	pid = h_fork(own_arena, &o);
	close(fds[1]);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	ck_assert_msg(poll(&pfd, 1, 60 * 1000) == 1 && read(fds[0], &c, 1) == 1,
		      "the arena's owner never said it was registered (exit %d)",
		      (kill(pid, SIGKILL), h_wait(pid)));
	close(fds[0]);
	h_run_cmd(r, "%s --socket '%s' snapshot %d -o '%s' 2>&1", h_ctl_path(),
		  h_socket(), (int)pid, path);
	kill(pid, SIGKILL);
	ck_assert_int_eq(h_wait(pid), 128 + SIGKILL);
	ck_assert_msg(r->status == 0, "cowguardctl snapshot exited %d: %s",
		      r->status, r->out);
	printf("%s: %s", h_case_name(), r->out);
	return true;
}

struct saved {
	char path[256], run[300], args[64];
};

/* The arena of a killed child saved as what; cowguard-run's options. */
static void saved_arena(struct saved *x, const char *what, struct h_run *r)
{
	const char *dir = getenv("CG_TEST_SCRATCH");

	snprintf(x->path, sizeof(x->path), "%s/cg-run-restore-%d-%s.img",
		 dir ? dir : "/tmp", (int)getpid(), what);
	unlink(x->path);
	snapshot_and_kill(x->path, r);
	snprintf(x->run, sizeof(x->run), "--restore '%s'", x->path);
	snprintf(x->args, sizeof(x->args), "check %#llx", SEED);
}

START_TEST(a_killed_program_comes_back_on_its_snapshot)
{
	struct h_run *r = malloc(sizeof(*r));
	struct saved x;

	ck_assert(r);
	if (!h_preload_possible())
		goto out;
	saved_arena(&x, "whole", r);
	h_app_checked(&(struct h_app){ .app = "fixed-arena", .args = x.args,
				       .run = x.run, .status = 0,
				       .logged = { "restoring" } },
		      r);
	ck_assert_msg(strstr(r->out, "is back"), "%s", r->out);
	printf("%s: %s", h_case_name(), r->out);
	unlink(x.path);
out:
	free(r);
}
END_TEST

/*
 * A program that drops every descriptor it did not open as it starts (a
 * daemon's habit) would close the restore's uffd and image before the
 * fill is done, and read zeros where it had not come: the shim keeps
 * them open, whichever way the program closes them.
 */
START_TEST(a_program_that_closes_every_descriptor_still_finds_its_memory)
{
	static const char *const ways[] = { "close-loop", "close-range",
					    "closefrom", "dup2-over" };
	struct h_run *r = malloc(sizeof(*r));
	struct saved x;
	char args[96];

	ck_assert(r);
	if (!h_preload_possible())
		goto out;
	saved_arena(&x, "closer", r);
	for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
		snprintf(args, sizeof(args), "%s %s", x.args, ways[i]);
		h_app_checked(&(struct h_app){ .app = "fixed-arena", .args = args,
					       .run = x.run, .status = 0,
					       .logged = { "restoring" } },
			      r);
		ck_assert_msg(strstr(r->out, "is back"), "%s: %s", ways[i], r->out);
		printf("%s: %s: %s", h_case_name(), ways[i], r->out);
	}
	unlink(x.path);
out:
	free(r);
}
END_TEST

/*
 * One byte of the first saved run changed (its bytes start at 4096,
 * docs/image-format.md): its CRC-32C fails the check of the whole image.
 */
static void spoil(const char *path)
{
	int fd = open(path, O_RDWR);
	char c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, 4096 + 100), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, 4096 + 100), 1);
	close(fd);
}

START_TEST(a_program_whose_image_is_unsound_never_runs)
{
	struct h_run *r = malloc(sizeof(*r));
	struct saved x;

	ck_assert(r);
	if (!h_preload_possible())
		goto out;
	saved_arena(&x, "spoilt", r);
	spoil(x.path);
	h_app_checked(&(struct h_app){ .app = "fixed-arena", .args = x.args,
				       .run = x.run, .status = 126 }, r);
	ck_assert_msg(strstr(r->out, "cannot restore") &&
		      strstr(r->out, "corrupt") &&
		      !strstr(r->out, "fixed-arena:"), "%s", r->out);
	printf("%s: %s", h_case_name(), r->out);
	unlink(x.path);
	/* No image there at all: cowguard-run says so before it starts. */
	h_app_checked(&(struct h_app){ .app = "fixed-arena", .args = x.args,
				       .run = x.run, .status = 2 }, r);
	ck_assert_msg(strstr(r->out, "--restore") &&
		      !strstr(r->out, "fixed-arena:"), "%s", r->out);
out:
	free(r);
}
END_TEST

/* The check of the image never comes: any readable file stands for it. */
START_TEST(a_program_the_shim_cannot_enter_is_refused_before_it_runs)
{
	struct h_run *r = malloc(sizeof(*r));
	char suid[256];

	ck_assert(r);
	snprintf(suid, sizeof(suid), "/tmp/cg-run-restore-%d-suid", (int)getpid());
	h_run_cmd(r, "%s/cowguard-run --restore %s/tests/apps/static-true -- "
		  "%s/tests/apps/static-true 2>&1", h_builddir(), h_builddir(),
		  h_builddir());
	ck_assert_msg(r->status == 1 && strstr(r->out, "static binary"),
		      "exit %d: %s", r->status, r->out);
	h_run_cmd(r, "cp %s/tests/apps/fixed-arena %s && chmod 4755 %s && "
		  "%s/cowguard-run --restore %s -- %s check 0 2>&1",
		  h_builddir(), suid, suid, h_builddir(), suid, suid);
	unlink(suid);
	ck_assert_msg(r->status == 1 && strstr(r->out, "set-user-ID") &&
		      !strstr(r->out, "fixed-arena:"), "exit %d: %s",
		      r->status, r->out);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguard-run restores a killed program lazily");
	TCase *tc = tcase_create("restore");

	h_timeout(tc, 120);
	h_add(tc, a_killed_program_comes_back_on_its_snapshot);
	h_add(tc, a_program_that_closes_every_descriptor_still_finds_its_memory);
	h_add(tc, a_program_whose_image_is_unsound_never_runs);
	h_add(tc, a_program_the_shim_cannot_enter_is_refused_before_it_runs);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
