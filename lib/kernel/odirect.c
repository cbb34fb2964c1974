// SPDX-License-Identifier: MIT
/*
 * Whether the kernel unshares a page before an O_DIRECT write reads it.
 * Before 5.19 no read-only pin unshared anything; from 5.19 a read-only
 * FOLL_PIN does, but the block layer's direct I/O took plain references
 * (get_user_pages) until 6.2-6.3, and filesystems with a direct I/O path
 * of their own (NFS, FUSE) go their own way.  A plain reference to a page
 * a fork left shared is what makes the write read a page the program no
 * longer maps (../shared/KERNEL-FACTS.md), so the shim pins first exactly
 * where the kernel does not (lib/preload/hook_odirect.c).
 *
 * Learned by doing it, once, by cowguard-run before it starts the program
 * (the probe forks, which the program itself must not do behind its own
 * back): map a page, write it, fork a holder that keeps it shared
 * (pagemap bit 56 clear), write the page with O_DIRECT to an unnamed file
 * (O_TMPFILE) in a directory, and read bit 56 again.  Set: the kernel gave
 * us a copy of our own before it read.  Clear: it read the shared page.
 * The answer holds for that directory's filesystem (its st_dev); where
 * the probe cannot run, it is UNKNOWN, which callers treat as plain:
 * pinning where the kernel would have unshared costs a write fault, not
 * data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "kernel.h"
#include "odirect.h"
#include "procfs.h"
#include "raw_fork.h"
#include "sys.h"

#define PAGE 4096

int cg__odirect_format(char *buf, size_t size, enum cg__odirect what,
		       dev_t dev)
{
	if (what == CG__ODIRECT_UNSHARES)
		return snprintf(buf, size, "unshares:%llu",
				(unsigned long long)dev);
	return snprintf(buf, size, "%s",
			what == CG__ODIRECT_PLAIN ? "plain" : "unknown");
}

enum cg__odirect cg__odirect_parse(const char *s, dev_t *dev)
{
	unsigned long long d;
	char end;

	if (s && !strcmp(s, "plain"))
		return CG__ODIRECT_PLAIN;
	if (s && sscanf(s, "unshares:%llu%c", &d, &end) == 1) {
		*dev = (dev_t)d;
		return CG__ODIRECT_UNSHARES;
	}
	return CG__ODIRECT_UNKNOWN;
}

static bool page_shared(int pagemap, const void *page)
{
	uint64_t pme = 0;

	return !cg__pagemap_read(pagemap, (uintptr_t)page, 1, &pme) &&
	       (pme & PM_PRESENT) && !(pme & PM_MMAP_EXCLUSIVE);
}

/* The probe proper, on the file tmp; page is ours, written. */
static enum cg__odirect write_shared_page(int tmp, char *page, int pagemap)
{
	enum cg__odirect what = CG__ODIRECT_UNKNOWN;
	int release;
	pid_t holder = cg__raw_fork_holder(&release);

	if (holder < 0)
		return what;
	if (page_shared(pagemap, page) &&
	    syscall(SYS_pwrite64, tmp, page, PAGE, 0) == PAGE)
		what = page_shared(pagemap, page) ? CG__ODIRECT_PLAIN
						  : CG__ODIRECT_UNSHARES;
	cg__raw_release_holder(holder, release);
	return what;
}

static enum cg__odirect probe(const char *dir)
{
	enum cg__odirect what = CG__ODIRECT_UNKNOWN;
	int tmp = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	int pagemap;
	char *page;

	if (tmp < 0)
		return what;
	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	page = cg__sys_mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pagemap >= 0 && page != MAP_FAILED) {
		memset(page, 0x5a, PAGE);
		what = write_shared_page(tmp, page, pagemap);
	}
	if (page != MAP_FAILED)
		cg__sys_munmap(page, PAGE);
	if (pagemap >= 0)
		close(pagemap);
	close(tmp);
	return what;
}

/* No read-only pin unshares before 5.19: nothing to learn. */
static bool before_5_19(void)
{
	return !cg__kernel_probe() && !cg__kernel_read_pin_unshares();
}

enum cg__odirect cg__odirect_write_in(const char *dir, dev_t *dev)
{
	struct stat st;

	if (stat(dir, &st))
		return CG__ODIRECT_UNKNOWN;
	*dev = st.st_dev;
	return before_5_19() ? CG__ODIRECT_PLAIN : probe(dir);
}
