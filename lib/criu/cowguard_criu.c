// SPDX-License-Identifier: MIT
/*
 * cowguard.so, a CRIU plugin: lets `criu dump` take a process that uses
 * cowguard, in either mode, and `criu restore` bring it back tracked.
 *
 * What CRIU cannot dump, it asks its plugins about:
 *  - daemon mode: the client's stream socket to cowguardd, whose other end
 *    is outside the dumped tree.  We take it when its peer is cowguardd,
 *    and restore it as a connection already hung up: the library's next
 *    call meets the hang-up and comes back as after a daemon restart (a
 *    new uffd, every region registered again, their history unknown).
 *  - embedded mode: the engine's userfaultfd, known by its mark
 *    (CG_UFFD_MARK_SIG).  We restore it as a uffd never set up, which polls
 *    POLLERR: the engine's thread, or its next call, starts the engine
 *    afresh on a new uffd with the same regions (lib/embedded.c).
 * Nothing of the engine's state is saved: the restored memory was mapped
 * anew by CRIU, unprotected and maybe shared with a restored child, so
 * what was known of it is void either way.
 *
 * What we took is remembered by a file per CRIU id in the image directory
 * ("cowguard-sk-ID", "cowguard-uffd-ID"): on restore, CRIU asks every
 * plugin about every such file, and ours are only those.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criu/criu-plugin.h>

#include "kernel/uffd.h"

/* The daemon's process name (daemon/main.c never changes it). */
#define DAEMON_COMM "cowguardd"

/* Remember (create) or look up that we took CRIU's object id of a kind. */
static int note(const char *kind, int id, bool create)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "cowguard-%s-%d", kind, id);
	if (!create)
		return faccessat(criu_get_image_dir(), name, F_OK, 0) ? -ENOTSUP : 0;
	fd = openat(criu_get_image_dir(), name,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static bool is_daemon(pid_t pid)
{
	char path[64], comm[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return n > 0 && !strcmp(comm, DAEMON_COMM "\n");
}

static int dump_unix_sk(int fd, int id)
{
	struct ucred peer;
	socklen_t len = sizeof(peer);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) ||
	    !is_daemon(peer.pid))
		return -ENOTSUP;
	return note("sk", id, true);
}

/* A stream socket whose peer is gone: the library's calls see a hang-up. */
static int restore_unix_sk(int id)
{
	int sv[2];

	if (note("sk", id, false))
		return -ENOTSUP;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	close(sv[1]);
	return sv[0];
}

static bool is_marked_uffd(int fd)
{
	return cg__is_uffd(fd) && fcntl(fd, F_GETSIG) == CG_UFFD_MARK_SIG;
}

static int dump_ext_file(int fd, int id)
{
	if (!is_marked_uffd(fd))
		return -ENOTSUP;
	return note("uffd", id, true);
}

/* A uffd never set up (no UFFDIO_API): it polls POLLERR. */
static int restore_ext_file(int id)
{
	if (note("uffd", id, false))
		return -ENOTSUP;
	return cg__uffd_create();
}

__attribute__((visibility("default"))) CR_PLUGIN_REGISTER_DUMMY("cowguard")
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__DUMP_UNIX_SK, dump_unix_sk)
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__RESTORE_UNIX_SK, restore_unix_sk)
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__DUMP_EXT_FILE, dump_ext_file)
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__RESTORE_EXT_FILE, restore_ext_file)
