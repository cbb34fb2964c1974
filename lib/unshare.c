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
#include <sys/uio.h>
#include <unistd.h>

#include "mm_internal.h"
#include "procfs.h"

#define BATCH 256

/*
 * Whether pid still runs the address space we track: our pagemap fd stays
 * on it and reads nothing once the process has exec'd or exited, where
 * process_vm_readv(pid) would read the new program.
 */
static bool same_process(const struct cg__mm *mm)
{
	uint64_t pme;

	return mm->pagemap_fd >= 0 && !cg__pagemap_read(mm->pagemap_fd, 0, 1, &pme);
}

int cg__unshare(struct cg__mm *mm, const uint64_t *addrs, size_t n)
{
	struct iovec local[BATCH], remote[BATCH];
	pid_t pid = mm->pid;

	/*
	 * pid 0 is an adopted child not yet identified, not us: reading our
	 * own memory there fails (EFAULT) and its fault would never be woken.
	 * Its write will break COW itself once the fault is resolved.
	 */
	if (!pid || !same_process(mm))
		return -ESRCH;
	while (n) {
		size_t k = n < BATCH ? n : BATCH;
		ssize_t got;

		/* One byte is enough: the whole page (or huge page) is unshared. */
		for (size_t i = 0; i < k; i++) {
			local[i] = (struct iovec){ &mm->scratch[i % CG_PAGE_SIZE], 1 };
			remote[i] = (struct iovec){ (void *)(uintptr_t)addrs[i], 1 };
		}
		got = process_vm_readv(pid, local, k, remote, k, 0);
		if (got < 0)
			return -errno;
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
