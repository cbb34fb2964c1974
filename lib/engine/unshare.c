// SPDX-License-Identifier: MIT
/*
 * Unsharing another process's pages without touching them: a read through
 * process_vm_readv pins each page read-only (FOLL_PIN), and since 5.19 the
 * kernel unshares a COW-shared anonymous page before such a pin
 * (FAULT_FLAG_UNSHARE).  The uffd-wp bit survives and no WP fault is raised,
 * so the handler thread can do this itself without deadlocking.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "kernel/procfs.h"
#include "touch.h"

/*
 * Whether pid is still the process that said hello, on the address space
 * we track, as dumpable as it was (lib/kernel/process.h): once it has exec'd or
 * exited, process_vm_readv(pid) would read the new program or another
 * process.
 */
static bool same_process(const struct cg__mm *mm)
{
	return cg__proc_check(&mm->proc, mm->pagemap_fd) == 0;
}

int cg__unshare(struct cg__mm *mm, const uint64_t *addrs, size_t n)
{
	pid_t pid = mm->pid;

	/*
	 * pid 0 is an adopted child not yet identified, not us: reading our
	 * own memory there fails (EFAULT) and its fault would never be woken.
	 * Its write will break COW itself once the fault is resolved.
	 */
	if (!pid || !same_process(mm))
		return -ESRCH;
	while (n) {
		size_t k = n < CG_TOUCH_MAX ? n : CG_TOUCH_MAX;

		/*
		 * Never a page handed over for a move (lib/engine/move.c):
		 * the client's own uffd may make the read wait there.
		 */
		for (size_t i = 0; i < k; i++)
			if (cg__mm_move_holds(mm, addrs[i]))
				k = i;
		if (!k) {
			addrs++;
			n--;
			continue;
		}
		/* One byte is enough: the whole page (or huge page) is unshared. */
		ssize_t got = cg__touch(mm, addrs, k);

		/*
		 * The check and the read are two steps: an exec or an exit
		 * (and a pid reused) between them makes the read reach a new
		 * program or another process.  Checked again, nothing of its
		 * outcome is told: it may have unshared (copied) up to a
		 * batch of that process's pages or waited on its faults, and
		 * read bytes that never leave the scratch page.
		 */
		if (!same_process(mm))
			return -ESRCH;
		if (got < 0)
			return (int)got;
		/* A short read means a page vanished under us: its event follows. */
		if ((size_t)got < k) {
			addrs += got + 1;
			n -= (size_t)got + 1;
			continue;
		}
		addrs += k;
		n -= k;
	}
	return 0;
}
