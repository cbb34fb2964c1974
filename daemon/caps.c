// SPDX-License-Identifier: MIT
/*
 * Capabilities and the user cowguardd runs as.  It keeps only:
 *  - CAP_SYS_PTRACE (effective): read /proc/PID/{pagemap,smaps} of clients
 *    of other users, process_vm_readv into them to unshare pages, and
 *    negotiate UFFD_FEATURE_EVENT_FORK on a client's uffd.
 *  - CAP_DAC_READ_SEARCH (effective): /proc/PID/pagemap is mode 0400 and
 *    owned by the client's user.
 *  - CAP_SYS_ADMIN (permitted only): raised for the moment of opening a
 *    client's pagemap, so that it shows page frame numbers to the audit.
 *    The numbers never leave the daemon.
 * Everything else is dropped from every set and the bounding set.
 *
 * Under systemd it starts as the user cowguard with these three as ambient
 * capabilities (cowguardd.service), and only trims them.  Started as root
 * by hand, --user NAME makes it that user once its socket is made: a uid 0
 * that keeps CAP_SYS_PTRACE still owns every root file and may signal every
 * process, which a service user does not.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon.h"
#include "kernel/procfs.h"

static const cap_value_t effective[] = { CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH };
static const cap_value_t permitted[] = { CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH,
					 CAP_SYS_ADMIN };

static bool kept(cap_value_t v)
{
	for (size_t i = 0; i < sizeof(permitted) / sizeof(*permitted); i++)
		if (permitted[i] == v)
			return true;
	return false;
}

/* Under systemd the bounding set may be trimmed already. */
static int drop_bound(void)
{
	for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
		if (!kept(v) && cap_get_bound(v) > 0 && cap_drop_bound(v))
			return -errno;
	return 0;
}

/*
 * Exactly our three, none inheritable: clearing the inheritable set also
 * clears the ambient one, which is only how systemd handed them to us.
 */
static int keep_only_ours(void)
{
	cap_t caps = cap_init();
	int ret = 0;

	if (!caps)
		return -errno;
	if (cap_set_flag(caps, CAP_PERMITTED, 3, permitted, CAP_SET) ||
	    cap_set_flag(caps, CAP_EFFECTIVE, 2, effective, CAP_SET) ||
	    cap_set_proc(caps))
		ret = -errno;
	cap_free(caps);
	if (!ret && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		ret = -errno;
	return ret;
}

int caps_drop(void)
{
	int ret = drop_bound();

	return ret ? ret : keep_only_ours();
}

/*
 * Leave uid 0 for uid/gid with no supplementary group.  PR_SET_KEEPCAPS
 * keeps the permitted set across setresuid(), which otherwise empties it
 * (the effective set is emptied either way: keep_only_ours() raises it).
 */
static int become(uid_t uid, gid_t gid)
{
	int ret = 0;

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
		return -errno;
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) ||
	    setresuid(uid, uid, uid))
		ret = -errno;
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	return ret;
}

/* Whether every id is the one asked for and uid 0 cannot come back. */
static bool became(uid_t uid, gid_t gid)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (getresuid(&r, &e, &s) || getresgid(&rg, &eg, &sg) ||
	    getgroups(0, NULL) != 0)
		return false;
	if (r != uid || e != uid || s != uid || rg != gid || eg != gid ||
	    sg != gid)
		return false;
	return setresuid(0, 0, 0) != 0;
}

int caps_become(uid_t uid, gid_t gid)
{
	/* The bounding set first: trimming it needs CAP_SETPCAP, which goes. */
	int ret = drop_bound();

	if (!ret)
		ret = become(uid, gid);
	if (!ret)
		ret = keep_only_ours();
	if (!ret && !became(uid, gid))
		ret = -EPERM;
	return ret;
}

static int set_admin(cap_flag_value_t v)
{
	cap_value_t admin = CAP_SYS_ADMIN;
	cap_t caps = cap_get_proc();
	int ret = 0;

	if (!caps)
		return -errno;
	if (cap_set_flag(caps, CAP_EFFECTIVE, 1, &admin, v) || cap_set_proc(caps))
		ret = -errno;
	cap_free(caps);
	return ret;
}

int open_pagemap_privileged(pid_t pid)
{
	bool raised = set_admin(CAP_SET) == 0;
	int fd = cg__pagemap_open(pid);

	if (raised)
		set_admin(CAP_CLEAR);
	return fd;
}
