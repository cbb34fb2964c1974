// SPDX-License-Identifier: MIT
/*
 * A client's /proc/PID/pagemap and smaps, opened with the client's
 * credentials where the kernel can decide.
 *
 * libcowguard opens its own /proc/self/pagemap and smaps and sends them
 * with its hello (CG_HELLO_PROCFS): the kernel's own checks (ptrace access
 * in read mode: ids, dumpability, the LSMs' policy) then decided, with the
 * client's credentials, that it may read them, and the daemon reads
 * nothing of the client that the client could not.  They are kept only if
 * they are the files of the process that said hello: the same file as the
 * daemon's /proc/PID/NAME (device and inode: one proc mount, and one
 * dentry while the client's open file holds it), open for reading.
 * Anything else is closed and the daemon opens the files itself, with
 * gate_hello()'s dumpability check standing for the kernel's: an older
 * libcowguard, a client in a container whose /proc is another mount, or a
 * client that sent another process's files.
 *
 * Root's clients: always the daemon's own open, raised to CAP_SYS_ADMIN,
 * so that pagemap shows the frame numbers the engine checks pins by.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "kernel/procfs.h"

void client_files_close(struct client_files *f)
{
	if (f->pagemap >= 0)
		close(f->pagemap);
	if (f->smaps >= 0)
		close(f->smaps);
	*f = (struct client_files){ -1, -1 };
}

size_t client_files_keep(struct client_files *f, const struct cg__req *req,
			 const int *fds, size_t n)
{
	bool hello = req->op == CG_OP_HELLO || req->op == CG_OP_CHILD_HELLO;

	if (!hello || !(req->flags & CG_HELLO_PROCFS) || n < 2)
		return n;
	client_files_close(f);
	f->pagemap = fds[n - 2];
	f->smaps = fds[n - 1];
	return n - 2;
}

/*
 * Whether fd is pid's /proc/PID/name, open for reading: not O_PATH, which
 * opens without the kernel's check, and read from once to be sure.
 */
static bool is_proc_file(int fd, pid_t pid, const char *name)
{
	int flags = fcntl(fd, F_GETFL);
	struct stat sent, ours;
	uint64_t word;	/* pagemap reads whole entries only */
	char path[48];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	return flags >= 0 && !(flags & O_PATH) &&
	       (flags & O_ACCMODE) != O_WRONLY && !fstat(fd, &sent) &&
	       !stat(path, &ours) && sent.st_dev == ours.st_dev &&
	       sent.st_ino == ours.st_ino && pread(fd, &word, sizeof(word), 0) == sizeof(word);
}

int client_files_open(struct conn *c, struct client_files *out)
{
	struct client_files *sent = &c->files;
	pid_t pid = c->cred.pid;
	int smaps;

	if (c->cred.uid != 0 && sent->pagemap >= 0 &&
	    is_proc_file(sent->pagemap, pid, "pagemap") &&
	    is_proc_file(sent->smaps, pid, "smaps")) {
		*out = *sent;
		*sent = (struct client_files){ -1, -1 };
		conn_log(LOG_DEBUG, c, "read through the /proc files it opened");
		return 0;
	}
	if (c->cred.uid != 0)
		conn_log(LOG_DEBUG, c, "%s: the daemon opens its /proc files",
			 sent->pagemap >= 0 ? "the /proc files it sent are not "
					      "its own here" : "sent no /proc files");
	client_files_close(sent);
	out->pagemap = open_pagemap_privileged(pid);
	if (out->pagemap < 0)
		return out->pagemap;
	smaps = cg__smaps_open(pid);
	out->smaps = smaps >= 0 ? smaps : -1;
	return 0;
}
