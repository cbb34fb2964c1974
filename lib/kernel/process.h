/* SPDX-License-Identifier: MIT */
/*
 * A client is a process, not a pid.  cowguardd binds each connection to
 * its peer's process when it connects (a pidfd), and before every act that
 * names the process by pid (opening /proc/PID/..., process_vm_readv(PID))
 * and after it, checks that the process is still that one, still runs the
 * address space it was bound on, and is still as dumpable as it was.  The
 * engine (lib/engine/unshare.c, lib/engine/dispatch.c) and the daemon call the one check
 * below.
 */
#ifndef CG_PROCESS_H
#define CG_PROCESS_H

#include <stdint.h>
#include <sys/types.h>

struct cg__proc {
	pid_t pid;		/* in the daemon's pid namespace */
	int pidfd;		/* -1: unbound (embedded mode: the engine's own) */
	/*
	 * The owner of /proc/PID/stat when bound: the process's euid and
	 * egid while it is dumpable, root once it is not (the kernel's
	 * task_dump_owner()).  A change means a setuid, a set-user-ID exec
	 * or PR_SET_DUMPABLE: what its user could read of it, it may not now.
	 */
	uid_t owner_uid;
	gid_t owner_gid;
	/* Who it is to itself: its pid in its own namespace, and that one. */
	pid_t ns_pid;
	uint64_t pidns;
};

/* Unbound: the check then asks only whether pagemap_fd still reads. */
void cg__proc_init(struct cg__proc *p);

/*
 * Bind p to the peer of the connected socket sock, whose SO_PEERCRED pid
 * is pid.  Returns 0, -ESRCH (it is gone already), or -errno.
 */
int cg__proc_bind(struct cg__proc *p, int sock, pid_t pid);

/*
 * Whether p is still the process it was bound to: 0; -ESRCH when it exited
 * or no longer runs the address space pagemap_fd was opened on (it exec'd;
 * pagemap_fd -1: not asked); -EPERM when its owner or dumpability changed.
 * A /proc/PID path opened or a pid-based call made before a check that
 * returns 0 reached p's process (the pid cannot name another while p's
 * lives), though maybe on a later address space: see cg__unshare().
 */
int cg__proc_check(const struct cg__proc *p, int pagemap_fd);

/* Give the binding to another owner; from is left unbound. */
void cg__proc_move(struct cg__proc *to, struct cg__proc *from);
void cg__proc_release(struct cg__proc *p);

#endif
