// SPDX-License-Identifier: MIT
/*
 * Who may hand cowguardd a uffd to track.  The daemon negotiates
 * UFFD_FEATURE_EVENT_FORK with its own CAP_SYS_PTRACE, and daemon mode
 * needs fork events (they are how a fork marks the parent's pages shared).
 * The kernel gives a full userfaultfd, and through /dev/userfaultfd a uffd
 * that may follow forks, to root and to the users the device is opened to:
 * the group cowguard once installed (systemd/cowguard-tmpfiles.conf).
 * Everyone else could only send a user-mode-only uffd, which turns the
 * kernel's own accesses to protected memory into EFAULT, or a uffd whose
 * fork events the kernel would refuse them.  So hello is accepted from
 * root and from members of the device's group only; the others get -EPERM
 * and their library's embedded mode, which uses what they may have.
 *
 * The peer's groups are the ones it had when it connected (SO_PEERGROUPS),
 * not /proc's, which a later exec could change; the device is the one in
 * the peer's mount namespace (peer_device()).  All are read as the kernel
 * knows them, in our namespaces: a peer in a user namespace has the uid
 * and groups it had outside, which are what opening the device checked,
 * though it may see the device as nobody's and nogroup's.  So it is served
 * as that outer user would be.
 *
 * The peer must still be the process bound at connect, as dumpable as it
 * was (lib/kernel/process.h), before and after its /proc/PID/root is looked at.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "daemon.h"

#define DEVICE "/dev/userfaultfd"
#define GROUPS_ON_STACK 64

/* Whether gid is among the peer's supplementary groups. */
static bool peer_in_group(int sock, gid_t gid)
{
	gid_t small[GROUPS_ON_STACK], *v = small;
	socklen_t len = sizeof(small);
	bool found = false;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, v, &len)) {
		if (errno != ERANGE || !(v = malloc(len)) ||
		    getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, v, &len)) {
			if (v != small)
				free(v);
			return false;
		}
	}
	for (size_t i = 0; i < len / sizeof(*v) && !found; i++)
		found = v[i] == gid;
	if (v != small)
		free(v);
	return found;
}

/*
 * The device as the peer sees it: its mount namespace may give a group a
 * node of its own (root made it: nobody else may mknod one), which is what
 * the kernel granted it a full uffd through.  Only a character device with
 * our /dev/userfaultfd's number counts: a bind mount of anything else, or
 * of the device, changes no owner or mode.
 */
static int peer_device(const struct conn *c, struct stat *st)
{
	char path[64];
	struct stat ours;

	if (stat(DEVICE, &ours) || !S_ISCHR(ours.st_mode))
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/root" DEVICE, (int)c->cred.pid);
	if (stat(path, st) || !S_ISCHR(st->st_mode) || st->st_rdev != ours.st_rdev)
		return -ENOENT;
	return 0;
}

/* 0, or the errno and why when the peer is no longer the process bound. */
static int still_bound(const struct conn *c, char *why, size_t n)
{
	int ret = cg__proc_check(&c->proc, -1);

	if (ret == -ESRCH)
		snprintf(why, n, "its process exited since it connected");
	else if (ret)
		snprintf(why, n, "its process changed its owner or became "
			 "undumpable since it connected");
	return ret;
}

/*
 * What the daemon opens of the client's, its /proc files, the client may
 * open itself only while dumpable (they are root's, 0400, else): the
 * kernel's own check, made for it.
 */
static int dumpable(const struct conn *c, char *why, size_t n)
{
	if (c->proc.owner_uid == c->cred.uid)
		return 0;
	snprintf(why, n, "its process is not dumpable (or not its own user's): "
		 "the kernel would not let it read its /proc files");
	return -EPERM;
}

int gate_hello(const struct conn *c, char *why, size_t n)
{
	struct stat st;
	int ret = still_bound(c, why, n), dev;

	if (ret)
		return ret;
	if (c->cred.uid == 0)
		return 0;
	dev = peer_device(c, &st);
	ret = still_bound(c, why, n);
	if (ret)
		return ret;
	if (dev) {
		snprintf(why, n, "only root may say hello: there is no %s to "
			 "open to a group", DEVICE);
		return -EPERM;
	}
	if ((st.st_mode & (S_IROTH | S_IWOTH)) != (S_IROTH | S_IWOTH) &&
	    ((st.st_mode & (S_IRGRP | S_IWGRP)) != (S_IRGRP | S_IWGRP) ||
	     (c->cred.gid != st.st_gid && !peer_in_group(c->sock, st.st_gid)))) {
		snprintf(why, n, "not root, nor in group %u that %s is opened "
			 "to", (unsigned)st.st_gid, DEVICE);
		return -EPERM;
	}
	return dumpable(c, why, n);
}
