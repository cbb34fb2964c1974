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
 * Learned once per filesystem, by doing it: map a page, write it, fork a
 * holder that keeps it shared (pagemap bit 56 clear), write the page with
 * O_DIRECT to an unnamed file (O_TMPFILE) in the directory of the file
 * asked about, and read bit 56 again.  Set: the kernel gave us a copy of
 * our own before it read.  Clear: it read the shared page.  Where the
 * probe cannot run (a block device, no O_TMPFILE, a directory we may not
 * write) the answer is UNKNOWN, which callers treat as plain: pinning
 * where the kernel would have unshared costs a write fault, not data.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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
#define MAX_FILESYSTEMS 16

static struct {
	pthread_mutex_t lock;
	size_t n;
	dev_t dev[MAX_FILESYSTEMS];
	enum cg__odirect what[MAX_FILESYSTEMS];
} known = { .lock = PTHREAD_MUTEX_INITIALIZER };

const char *cg__odirect_name(enum cg__odirect what)
{
	switch (what) {
	case CG__ODIRECT_PLAIN:
		return "plain references";
	case CG__ODIRECT_UNSHARES:
		return "the kernel unshares";
	default:
		return "unknown";
	}
}

static const char *const names[] = {
	[CG__ODIRECT_UNKNOWN] = "unknown",
	[CG__ODIRECT_PLAIN] = "plain",
	[CG__ODIRECT_UNSHARES] = "unshares",
};

const char *cg__odirect_token(enum cg__odirect what)
{
	return names[what];
}

enum cg__odirect cg__odirect_parse(const char *token)
{
	for (int i = CG__ODIRECT_PLAIN; token && i <= CG__ODIRECT_UNSHARES; i++)
		if (!strcmp(token, names[i]))
			return (enum cg__odirect)i;
	return CG__ODIRECT_UNKNOWN;
}

/* The directory fd's file is in, into dir; false when it has none. */
static bool dir_of(int fd, char *dir, size_t size)
{
	char link[64];
	ssize_t n;
	char *slash;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, dir, size - 1);
	if (n <= 0 || dir[0] != '/')
		return false;	/* not a path: socket:[...], anon_inode:... */
	dir[n] = 0;
	slash = strrchr(dir, '/');
	*(slash == dir ? slash + 1 : slash) = 0;
	return true;
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
	close(release);
	cg__raw_wait(holder);
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

enum cg__odirect cg__odirect_write_in(const char *dir)
{
	return before_5_19() ? CG__ODIRECT_PLAIN : probe(dir);
}

enum cg__odirect cg__odirect_write(int fd, bool *learned)
{
	bool old = before_5_19();
	enum cg__odirect what;
	char dir[PATH_MAX];
	struct stat st;
	size_t i;

	*learned = false;
	/* A block device: no directory of its filesystem to probe in. */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return old ? CG__ODIRECT_PLAIN : CG__ODIRECT_UNKNOWN;
	pthread_mutex_lock(&known.lock);
	for (i = 0; i < known.n && known.dev[i] != st.st_dev; i++)
		;
	if (i < known.n) {
		what = known.what[i];
	} else {
		what = old ? CG__ODIRECT_PLAIN :
		       dir_of(fd, dir, sizeof(dir)) ? probe(dir) :
		       CG__ODIRECT_UNKNOWN;
		*learned = true;
		if (known.n < MAX_FILESYSTEMS) {
			known.dev[known.n] = st.st_dev;
			known.what[known.n++] = what;
		}
	}
	pthread_mutex_unlock(&known.lock);
	return what;
}
