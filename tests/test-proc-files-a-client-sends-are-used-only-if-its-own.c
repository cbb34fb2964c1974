// SPDX-License-Identifier: MIT
/*
 * A client that is not root sends, with its hello, its own
 * /proc/self/pagemap and smaps (CG_HELLO_PROCFS): opened by it, what the
 * daemon reads of it through them is what the kernel lets it read
 * (daemon/client_files.c).  The daemon keeps them only if they are the
 * files of the process that said hello.
 *
 * Here a client (the unprivileged lane's user, or nobody in the group of
 * /dev/userfaultfd when run as root) sends instead the files of a child of
 * its own, which it may open, and in which its buffer is not mapped.  The
 * daemon must not read the client through them: it opens the client's
 * own, logs why, and the client's buffer registers and queries as
 * present.  Every libcowguard client of the unprivileged lane
 * takes the other path, its own files kept.
 *
 * Bug this catches: the daemon trusting the files a client sends, and so
 * judging one process by another's pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

#define NOBODY 65534
#define LEN (16 * 4096)
#define NO_GROUP 77	/* the child's status: /dev/userfaultfd is no group's */

/* A child with buf unmapped, its /proc files opened into files[]. */
static pid_t other_process(char *buf, int files[2])
{
	int ready[2];
	pid_t pid;
	char path[64], c;

	if (pipe(ready))
		return -1;
	pid = fork();
	if (pid == 0) {
		munmap(buf, LEN);
		_exit(write(ready[1], "r", 1) == 1 ? (pause(), 0) : 1);
	}
	close(ready[1]);
	if (pid < 0 || read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		return -1;
	}
	close(ready[0]);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	files[0] = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	files[1] = open(path, O_RDONLY | O_CLOEXEC);
	return pid;
}

/* A hello with uffd and the given files as ours: its status. */
static int hello_with(int s, int uffd, const int files[2])
{
	int fds[3] = { uffd, files[0], files[1] };
	struct cg__req req;
	struct cg__rep rep;

	cg__req_init(&req, CG_OP_HELLO);
	req.flags = CG_HELLO_PROCFS;
	if (cg__send_fds(s, &req, sizeof(req), fds, 3) ||
	    cg__recv(s, &rep, sizeof(rep), NULL))
		return -EPIPE;
	return rep.status;
}

/* The daemon's page info of addr, by the wire: its status. */
static int query(int s, void *addr, struct cg_page_info *info)
{
	struct cg__req req;
	struct cg__rep rep;

	cg__req_init(&req, CG_OP_QUERY);
	req.addr = (uintptr_t)addr;
	if (wire_call(s, &req, -1, &rep))
		return -EPIPE;
	*info = rep.u.page;
	return rep.status;
}

/* In a child, as nobody in the uffd group: 0, NO_GROUP, or 100 + step. */
static int sends_another_process_s_files(void *arg)
{
	const char *path = arg;
	char *buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct cg_options o = { CG_MODE_DAEMON, path };
	struct cg_page_info info;
	int s, uffd, files[2], ret;
	struct cg *cg;
	struct stat dev;
	pid_t other;

	if (buf == MAP_FAILED)
		return 101;
	if (geteuid() == 0) {
		if (stat("/dev/userfaultfd", &dev) || !dev.st_gid ||
		    (dev.st_mode & 060) != 060)
			return NO_GROUP;
		if (setgroups(1, &dev.st_gid) ||
		    setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY) ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			return 101;
	}
	memset(buf, 'b', LEN);
	other = other_process(buf, files);
	if (other < 0 || files[0] < 0 || files[1] < 0)
		return 102;
	s = wire_connect(path);
	uffd = cg__uffd_create();
	if (s < 0 || uffd < 0)
		return 103;
	ret = hello_with(s, uffd, files);
	if (!ret)
		ret = wire_request(s, CG_OP_REGISTER, (uintptr_t)buf, LEN, -1);
	kill(other, SIGKILL);
	if (ret)
		return 104;
	/* Read through the other process's files, buf would be unmapped. */
	if (query(s, buf, &info) || !info.present)
		return 105;
	/* The control: libcowguard's hello, with its own files. */
	if (cg_open(&o, sizeof(o), &cg))
		return 106;
	cg_close(cg);
	return 0;
}

START_TEST(proc_files_a_client_sends_are_used_only_if_its_own)
{
	int status;

	status = h_wait(h_fork(sends_another_process_s_files,
			       (void *)h_socket()));
	if (status == NO_GROUP) {
		h_skip("/dev/userfaultfd is open to no group here: nobody "
		       "could not say hello (the unprivileged lane runs this)");
		return;
	}
	ck_assert_msg(status == 0, "a client sending another process's /proc "
		      "files: step %d failed (101 becoming nobody, 102 the "
		      "other process, 103 connecting, 104 hello and register, "
		      "105 its page not present, 106 libcowguard's hello)",
		      status);
	/* The lane's daemon logs where this lane cannot read. */
	if (h_daemon_pid()) {
		ck_assert_int_ge(h_log_lines(h_socket(), "the /proc files it "
					     "sent are not its own here"), 1);
		ck_assert_int_ge(h_log_lines(h_socket(), "read through the "
					     "/proc files it opened"), 1);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proc files a client sends are used only if "
				"its own");
	TCase *tc = tcase_create("client files");

	h_timeout(tc, 20);
	h_add(tc, proc_files_a_client_sends_are_used_only_if_its_own);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
