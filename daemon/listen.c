// SPDX-License-Identifier: MIT
/* The listening socket: inherited from systemd, or made at a path. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"

#define SD_LISTEN_FDS_START 3

/* sd_listen_fds() without libsystemd: LISTEN_PID must name us. */
static int inherited(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int type = 0;
	socklen_t len = sizeof(type);

	if (!pid || !fds || atoi(pid) != getpid() || atoi(fds) < 1)
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (getsockopt(SD_LISTEN_FDS_START, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_SEQPACKET) {
		log_err("inherited fd %d is not a SOCK_SEQPACKET socket "
			"(ListenSequentialPacket= in the .socket unit)",
			SD_LISTEN_FDS_START);
		return -EINVAL;
	}
	fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
	return SD_LISTEN_FDS_START;
}

static void make_parent_dir(const char *path)
{
	char *copy = strdup(path);

	if (copy) {
		mkdir(dirname(copy), 0755);
		free(copy);
	}
}

/* A stale socket of a previous run goes; anything else there stays. */
static void remove_stale(const char *path)
{
	struct stat st;

	if (!lstat(path, &st) && S_ISSOCK(st.st_mode))
		unlink(path);
}

/*
 * Anyone may connect: SO_PEERCRED decides what each one sees.  The mode
 * comes from the umask at bind(), which makes the file: a chmod(path)
 * after it would go by name, as root, and in a directory others can write
 * would follow a symlink swapped in for the socket (chmod-ing its target,
 * /etc/shadow say).  fchmod() of the socket fd after bind() is no way
 * out: on Linux it changes the socket's own inode, not the file.  Nor is
 * the path unlinked first unless it is a socket: a symlink or a file
 * there makes bind() fail (EADDRINUSE) rather than be removed.
 */
static int bind_open_to_all(int fd, const struct sockaddr_un *sa)
{
	mode_t old = umask(0111);	/* 0777 & ~0111: srw-rw-rw- */
	int ret = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));

	umask(old);
	return ret ? -errno : 0;
}

int listen_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = inherited(), ret;

	if (fd != -1)
		return fd;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	make_parent_dir(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	remove_stale(path);
	ret = bind_open_to_all(fd, &sa);
	if (!ret && listen(fd, 128))
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}
