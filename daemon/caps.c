// SPDX-License-Identifier: MIT
/*
 * Capabilities.  cowguardd starts as root and keeps only:
 *  - CAP_SYS_PTRACE (effective): read /proc/PID/{pagemap,smaps} of clients
 *    of other users, process_vm_readv into them to unshare pages, and
 *    negotiate UFFD_FEATURE_EVENT_FORK on a client's uffd.
 *  - CAP_DAC_READ_SEARCH (effective): /proc/PID/pagemap is mode 0400 and
 *    owned by the client's user.
 *  - CAP_SYS_ADMIN (permitted only): raised for the moment of opening a
 *    client's pagemap, so that it shows page frame numbers to the audit.
 *    The numbers never leave the daemon.
 * Everything else is dropped from every set and the bounding set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon.h"
#include "procfs.h"

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

int caps_drop(void)
{
	cap_t caps;
	int ret = 0;

	/* Under systemd the bounding set may be trimmed already. */
	for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
		if (!kept(v) && cap_get_bound(v) > 0 && cap_drop_bound(v))
			return -errno;
	caps = cap_init();
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
