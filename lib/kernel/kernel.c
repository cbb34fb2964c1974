// SPDX-License-Identifier: MIT
/*
 * What the running kernel does with a read-only pin of a COW-shared page,
 * learned once by doing it, not from the version number (distributions
 * backport).  Linux 5.19 made such a pin unshare the page first
 * (FAULT_FLAG_UNSHARE) and, in the same series, introduced
 * PageAnonExclusive, which kpageflags shows to root as bit 34 of an
 * anonymous page.  Before that, bit 34 is KPF_MAPPEDTODISK, a read-only
 * pin leaves the page shared, and a write to a write-protected page that
 * anyone else holds a reference to copies it (do_wp_page decides by
 * page_count): see ../shared/KERNEL-FACTS.md, "Before 5.19".
 *
 * The same child learns whether pagemap shows a page's uffd-wp bit (5.10
 * never does), by protecting a page of its own.
 *
 * The probe: a child maps a page, writes it, forks a grandchild that
 * keeps it shared, reads one byte of it through process_vm_readv (a
 * read-only FOLL_PIN) and asks pagemap whether it now maps the page alone.
 * It runs in a raw clone with no exit signal: no atfork handler, no glibc
 * lock held across it, no SIGCHLD for the caller's event loop, and the
 * children make system calls only.  It must run before the process
 * registers memory with a uffd that follows forks (the fork would wait
 * for that uffd's reader): cg_open() runs it before its first uffd exists,
 * and cowguardd before it serves anyone.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat.h"
#include "kernel.h"
#include "procfs.h"
#include "raw_fork.h"
#include "sys.h"
#include "uffd.h"

/* The probe child's exit status: PROBE_DONE with what it saw, or not. */
enum {
	PROBE_UNSHARES = 1,
	PROBE_WP_VISIBLE = 2,
	PROBE_DONE = 0x40,
	PROBE_FAILED = 0x20,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int read_pin_unshares = -1;
static bool wp_visible;

/* Our own pagemap entry of addr (pagemap opened once, by the caller). */
static uint64_t pagemap_entry(int pagemap, const volatile void *addr)
{
	uint64_t pme = 0;

	if (pagemap < 0 ||
	    cg__pagemap_read(pagemap, (uintptr_t)addr, 1, &pme))
		return 0;
	return pme;
}

/*
 * Whether pagemap shows the uffd-wp bit of a page protected through a uffd
 * of our own (5.10 never sets bit 57).  A process that may not create a
 * uffd learns nothing: false, which only makes the engine more careful.
 */
static bool uffd_wp_visible(int pagemap, volatile char *page)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	struct uffdio_range range = { (uintptr_t)page, 4096 };
	struct uffdio_register reg = { .range = range,
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = range,
					  .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	int fd = cg__uffd_create();	/* system calls only, too */
	bool seen;

	if (fd < 0)
		return false;
	seen = !ioctl(fd, UFFDIO_API, &api) &&
	       !ioctl(fd, UFFDIO_REGISTER, &reg) &&
	       !ioctl(fd, UFFDIO_WRITEPROTECT, &wp) &&
	       (pagemap_entry(pagemap, page) & PM_UFFD_WP);
	/* Closing it unregisters the page; its bit no longer matters. */
	close(fd);
	return seen;
}

/* In the probe child: system calls only. */
static int probe_child(void)
{
	volatile char *page = cg__sys_mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char byte;
	struct iovec local = { &byte, 1 }, remote;
	/* Opened by name: no snprintf in a child of a raw clone. */
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int release, verdict = PROBE_DONE;
	uint64_t pme;
	pid_t holder;

	if (page == MAP_FAILED || pagemap < 0)
		return PROBE_FAILED;
	page[0] = 1;
	if (uffd_wp_visible(pagemap, page))
		verdict |= PROBE_WP_VISIBLE;
	holder = cg__raw_fork_holder(&release);
	if (holder < 0)
		return PROBE_FAILED;
	remote = (struct iovec){ (void *)page, 1 };
	pme = pagemap_entry(pagemap, page);
	/* Shared right after fork, or the probe proves nothing. */
	if ((pme & PM_PRESENT) && !(pme & PM_MMAP_EXCLUSIVE) &&
	    process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1) {
		pme = pagemap_entry(pagemap, page);
		if (pme & PM_MMAP_EXCLUSIVE)
			verdict |= PROBE_UNSHARES;
	} else {
		verdict = PROBE_FAILED;
	}
	cg__raw_release_holder(holder, release);
	return verdict;
}

static void probe(void)
{
	const char *assume = getenv("COWGUARD_KERNEL");
	pid_t pid;
	int verdict;

	/* An operator (or a test) may ask for the older handling anywhere. */
	if (assume && !strcmp(assume, "pre-5.19")) {
		read_pin_unshares = 0;
		return;
	}
	pid = cg__raw_fork();

	if (pid == 0)
		_exit(probe_child());
	verdict = pid < 0 ? -1 : cg__raw_wait(pid);
	if (verdict < 0 || !(verdict & PROBE_DONE))
		return;
	read_pin_unshares = !!(verdict & PROBE_UNSHARES);
	wp_visible = verdict & PROBE_WP_VISIBLE;
}

int cg__kernel_probe(void)
{
	pthread_once(&once, probe);
	return read_pin_unshares < 0 ? -EIO : 0;
}

bool cg__kernel_read_pin_unshares(void)
{
	/*
	 * Not probed (or the probe failed): claim the older semantics, whose
	 * handling is correct on every kernel, only slower.
	 */
	return read_pin_unshares == 1;
}

bool cg__kernel_pagemap_shows_uffd_wp(void)
{
	return wp_visible;
}
