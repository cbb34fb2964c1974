// SPDX-License-Identifier: MIT
/*
 * Binding a client to its process, and checking that it still is.
 *
 * The pidfd is the anchor.  While the process it refers to has not exited,
 * its pid names it and no other, so a path under /proc/PID opened, or a
 * process_vm_readv(PID) made, before poll() finds the pidfd still quiet
 * reached that process.  SO_PEERPIDFD (6.5) gives the pidfd of the very
 * process that connected.  Where the kernel lacks it (6.1, 5.10) the pidfd
 * is pidfd_open()'d from SO_PEERCRED's pid, which names the connecter
 * unless it exited in the microseconds since it connected and its pid was
 * reused; the process bound then is the one that owns that pid.  Neither
 * way lets a client aim the daemon at a process that is not its own: what
 * the daemon reads of a client is proven to be its uffd's address space
 * before it acts on it (lib/engine/mm.c register_proven(), daemon/adopt.c), and
 * only the process itself can make a uffd of its own memory.
 *
 * What the check reads, and why each:
 *  - pagemap, opened at hello: it stays on that address space and reads
 *    nothing once the process exec'd or exited;
 *  - the owner of /proc/PID/stat: the kernel makes a process's /proc files
 *    root's once it is not dumpable (setuid(), a set-user-ID or unreadable
 *    program exec'd, PR_SET_DUMPABLE 0), and its euid's otherwise.  Looked
 *    up by path: an fstat() of an fd opened earlier shows the owner of
 *    then (measured on 6.18);
 *  - the pidfd, last: polled, it is readable once the process exited.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "process.h"
#include "procfs.h"

void cg__proc_init(struct cg__proc *p)
{
	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
}

void cg__proc_release(struct cg__proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	cg__proc_init(p);
}

void cg__proc_move(struct cg__proc *to, struct cg__proc *from)
{
	cg__proc_release(to);
	*to = *from;
	cg__proc_init(from);
}

/* The process's own pidfd, or its pid's where the kernel cannot say. */
static int peer_pidfd(int sock, pid_t pid)
{
	socklen_t len = sizeof(int);
	int fd = -1;

	if (sock >= 0 && !getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len))
		return fd;
	/* Only ENOPROTOOPT says the kernel lacks it; anything else, the peer. */
	if (sock >= 0 && errno != ENOPROTOOPT)
		return -errno;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

static bool exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) != 0;
}

static int owner(pid_t pid, uid_t *uid, gid_t *gid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (stat(path, &st))
		return errno == ENOENT ? -ESRCH : -errno;
	*uid = st.st_uid;
	*gid = st.st_gid;
	return 0;
}

/* Its pid in its own namespace: the last of NSpid's (5.10 has the line). */
static int ns_pid(pid_t pid, pid_t *out)
{
	char path[64], line[256];
	int ret = -ESRCH;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;	/* EMFILE: ours */
	while (ret && fgets(line, sizeof(line), f)) {
		char *last = strrchr(line, '\t');

		if (strncmp(line, "NSpid:", 6) == 0 && last &&
		    sscanf(last, "%d", out) == 1)
			ret = 0;
	}
	fclose(f);
	return ret;
}

static int pidns(pid_t pid, uint64_t *out)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	if (stat(path, &st))
		return errno == ENOENT ? -ESRCH : -errno;
	*out = st.st_ino;
	return 0;
}

int cg__proc_bind(struct cg__proc *p, int sock, pid_t pid)
{
	int ret;

	cg__proc_init(p);
	if (pid <= 0)
		return -ESRCH;	/* its pid is not in our namespace */
	p->pid = pid;
	p->pidfd = peer_pidfd(sock, pid);
	if (p->pidfd < 0) {
		ret = p->pidfd;
		cg__proc_init(p);
		return ret;
	}
	ret = owner(pid, &p->owner_uid, &p->owner_gid);
	if (!ret)
		ret = ns_pid(pid, &p->ns_pid);
	if (!ret)
		ret = pidns(pid, &p->pidns);
	/* Read by pid: only the pidfd, still quiet, says they were its own. */
	if (!ret && exited(p->pidfd))
		ret = -ESRCH;
	if (ret)
		cg__proc_release(p);
	return ret;
}

int cg__proc_check(const struct cg__proc *p, int pagemap_fd)
{
	uint64_t pme;
	uid_t uid;
	gid_t gid;
	int ret;

	if (pagemap_fd >= 0 && cg__pagemap_read(pagemap_fd, 0, 1, &pme))
		return -ESRCH;
	if (p->pidfd < 0)
		return pagemap_fd >= 0 ? 0 : -ESRCH;
	ret = owner(p->pid, &uid, &gid);
	if (exited(p->pidfd))
		return -ESRCH;
	if (ret)
		return ret;
	return uid == p->owner_uid && gid == p->owner_gid ? 0 : -EPERM;
}
