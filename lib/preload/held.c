// SPDX-License-Identifier: MIT
/*
 * Pins the shim holds while a consumer holds the pages:
 *  - a pipe (vmsplice) until it is drained: FIONREAD on the write end
 *    reads 0, or the fd no longer is that pipe.  The reader may be another
 *    process, so the shim looks whenever a hook runs, and before a fork;
 *  - a zero-copy send until the kernel's completion for its number is read
 *    from the socket's error queue (lib/preload/hook_zerocopy.c);
 *  - an io_uring request (a zero-copy send, an O_DIRECT write) until its
 *    last completion is seen (lib/preload/hook_uring_submit.c);
 *  - an io_uring fixed buffer until it is unregistered;
 *  - an RDMA memory region until it is deregistered.
 * The first three are plain references, which a fork would leave in the
 * child's copy of the page: their pins end before a fork (counted), and
 * the consumer then reads what the pages held at the fork.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

struct held {
	struct cg_pin *pin;
	enum cg__held_kind kind;
	int fd;
	dev_t dev;		/* what fd was (a pipe may be closed and reused) */
	ino_t ino;
	uint64_t seq;		/* a zero-copy send's number on fd */
	struct held *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct held *list;

void cg__held_add(struct cg_pin *pin, enum cg__held_kind kind, int fd,
		  uint64_t seq)
{
	struct held *h = calloc(1, sizeof(*h));
	struct stat st;

	if (!h || (fd >= 0 && fstat(fd, &st))) {
		/* Nothing to follow its end by: end the pin at once. */
		free(h);
		cg__unprotect(pin);
		return;
	}
	*h = (struct held){ .pin = pin, .kind = kind, .fd = fd, .seq = seq };
	if (fd >= 0) {
		h->dev = st.st_dev;
		h->ino = st.st_ino;
	}
	pthread_mutex_lock(&lock);
	h->next = list;
	list = h;
	pthread_mutex_unlock(&lock);
}

/* Unlink the entries match() picks, under lock; the caller unpins them. */
static struct held *take(bool (*match)(const struct held *h, const void *arg),
			 const void *arg)
{
	struct held *out = NULL;

	pthread_mutex_lock(&lock);
	for (struct held **p = &list; *p;) {
		struct held *h = *p;

		if (match(h, arg)) {
			*p = h->next;
			h->next = out;
			out = h;
		} else {
			p = &h->next;
		}
	}
	pthread_mutex_unlock(&lock);
	return out;
}

static int release(struct held *h)
{
	int n = 0;

	while (h) {
		struct held *next = h->next;

		cg__unprotect(h->pin);
		free(h);
		h = next;
		n++;
	}
	return n;
}

/* Whether fd is still the file h was added with. */
static bool same_file(const struct held *h)
{
	struct stat st;

	return !fstat(h->fd, &st) && st.st_dev == h->dev && st.st_ino == h->ino;
}

static bool pipe_drained(const struct held *h, const void *arg)
{
	int queued = 0;

	(void)arg;
	if (h->kind != CG__HELD_PIPE)
		return false;
	return !same_file(h) || syscall(SYS_ioctl, h->fd, FIONREAD, &queued) ||
	       queued == 0;
}

void cg__held_reap(void)
{
	release(take(pipe_drained, NULL));
}

struct seq_range {
	enum cg__held_kind kind;
	int fd;
	uint64_t lo, hi;
};

static bool numbered(const struct held *h, const void *arg)
{
	const struct seq_range *r = arg;

	return h->kind == r->kind && h->fd == r->fd && h->seq >= r->lo &&
	       h->seq <= r->hi;
}

void cg__held_release_seq(enum cg__held_kind kind, int fd, uint64_t lo,
			  uint64_t hi)
{
	struct seq_range r = { kind, fd, lo, hi };

	release(take(numbered, &r));
}

struct kind_fd {
	enum cg__held_kind kind;
	int fd;
};

static bool of_fd(const struct held *h, const void *arg)
{
	const struct kind_fd *k = arg;

	return h->kind == k->kind && h->fd == k->fd;
}

int cg__held_release_fd(enum cg__held_kind kind, int fd)
{
	struct kind_fd k = { kind, fd };

	return release(take(of_fd, &k));
}

/* The kernel's FOLL_PIN makes fork copy for the child: those pins go on. */
static bool plain_reference(const struct held *h, const void *arg)
{
	(void)arg;
	return h->kind == CG__HELD_PIPE || h->kind == CG__HELD_ZEROCOPY ||
	       h->kind == CG__HELD_URING_IO;
}

void cg__held_before_fork(void)
{
	int n = release(take(plain_reference, NULL));

	__atomic_add_fetch(&cg__shim_counts.released_at_fork, (uint64_t)n,
			   __ATOMIC_RELAXED);
}

size_t cg__held_count(void)
{
	size_t n = 0;

	pthread_mutex_lock(&lock);
	for (struct held *h = list; h; h = h->next)
		n++;
	pthread_mutex_unlock(&lock);
	return n;
}

void cg__held_forget(void)
{
	/* The parent's: its handle ends them.  The list's memory stays. */
	list = NULL;
	pthread_mutex_init(&lock, NULL);
}
