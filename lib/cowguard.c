// SPDX-License-Identifier: MIT
/* The public API: one handle, two modes, the same engine behind both. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "kernel/kernel.h"

static const char *socket_path(const struct cg_options *opts)
{
	const char *env = getenv("COWGUARD_SOCKET");

	if (opts && opts->socket_path)
		return opts->socket_path;
	return env && *env ? env : CG_DEFAULT_SOCKET;
}

static int open_mode(struct cg *cg, const struct cg_options *opts)
{
	enum cg_mode want = opts ? opts->mode : CG_MODE_AUTO;
	int ret = -ECONNREFUSED;

	cg->want = want;

	if (want == CG_MODE_DAEMON || want == CG_MODE_AUTO) {
		ret = cg__client_open(&cg->cli, socket_path(opts));
		if (!ret) {
			cg->mode = CG_MODE_DAEMON;
			return 0;
		}
		if (want == CG_MODE_DAEMON)
			return ret;
	}
	if (want != CG_MODE_EMBEDDED && want != CG_MODE_AUTO)
		return -EINVAL;
	cg->mode = CG_MODE_EMBEDDED;
	return cg__embedded_open(&cg->emb);
}

/*
 * The caller's options, of the size its header gave them, as ours ("Structures
 * that grow" in cowguard.h): what it lacks is 0, the default; what we lack
 * must be 0, or it asked for something we cannot do.
 */
static int read_options(const struct cg_options *opts, size_t size,
			struct cg_options *o)
{
	const unsigned char *theirs = (const unsigned char *)opts;
	size_t i;

	memset(o, 0, sizeof(*o));
	if (!opts)
		return 0;
	if (size < CG_OPTIONS_SIZE_VER0)
		return -EINVAL;
	for (i = sizeof(*o); i < size; i++)
		if (theirs[i])
			return -E2BIG;
	memcpy(o, opts, size < sizeof(*o) ? size : sizeof(*o));
	return 0;
}

/*
 * A result into the caller's structure of @size bytes: ours, cut to @size,
 * and zeros beyond ours, so that a field a newer header appended reads 0,
 * "unknown".  Ours has zeroed padding (cg__rep_init() and the engine memset
 * what they fill), so a field appended into what is our tail padding reads 0
 * as well.
 */
int cg__copy_out(void *out, size_t size, const void *ours, size_t ours_size)
{
	memcpy(out, ours, size < ours_size ? size : ours_size);
	if (size > ours_size)
		memset((char *)out + ours_size, 0, size - ours_size);
	return 0;
}

int cg_open(const struct cg_options *opts, size_t opts_size, struct cg **out)
{
	struct cg_options o;
	struct cg *cg;
	int ret;

	if (!out)
		return -EINVAL;
	ret = read_options(opts, opts_size, &o);
	if (ret)
		return ret;
	if ((unsigned)o.mode > CG_MODE_EMBEDDED)
		return -EINVAL;
	/* Before this handle's uffd exists: the probe forks (lib/kernel/kernel.c). */
	cg__kernel_probe();
	cg = calloc(1, sizeof(*cg));
	if (!cg)
		return -ENOMEM;
	cg->cli.sock = -1;
	pthread_mutex_init(&cg->lock, NULL);
	pthread_mutex_init(&cg->pins_lock, NULL);
	ret = open_mode(cg, &o);
	if (ret) {
		pthread_mutex_destroy(&cg->pins_lock);
		pthread_mutex_destroy(&cg->lock);
		free(cg);
		return ret;
	}
	cg__handles_add(cg);
	*out = cg;
	return 0;
}

void cg_close(struct cg *cg)
{
	if (!cg)
		return;
	cg__handles_del(cg);
	/* Outstanding pins go unchecked: their state goes with the handle. */
	while (cg->pins) {
		struct cg_pin *p = cg->pins;

		cg->pins = p->next;
		free(p);
	}
	pthread_mutex_destroy(&cg->pins_lock);
	/* The daemon unregisters everything when the connection closes. */
	cg__client_close(&cg->cli);
	cg__embedded_close(cg->emb);
	free(cg->ranges);
	pthread_mutex_destroy(&cg->lock);
	free(cg);
}

enum cg_mode cg_mode(const struct cg *cg)
{
	/* CG_MODE_AUTO goes embedded when the daemon is not back (reconnect.c). */
	return cg ? __atomic_load_n(&cg->mode, __ATOMIC_ACQUIRE) : CG_MODE_AUTO;
}

uint64_t cg_features(const struct cg *cg)
{
	if (!cg)
		return 0;
	return cg_mode(cg) == CG_MODE_DAEMON ? cg->cli.features : cg->emb->mm.features;
}

/* One request, served by the daemon or in-process as the handle says. */
int cg__range_op(struct cg *cg, enum cg__op op, const void *addr,
		 uint64_t len, unsigned flags, struct cg__rep *rep)
{
	struct cg__req req;

	cg__req_init(&req, op);
	req.addr = (uint64_t)(uintptr_t)addr;
	req.len = len;
	req.flags = flags;
	return cg__call(cg, &req, rep);
}

int cg_register(struct cg *cg, void *addr, size_t len, unsigned flags)
{
	struct cg__rep rep;

	if (!cg)
		return -EINVAL;
	return cg__range_op(cg, CG_OP_REGISTER, addr, len, flags, &rep);
}

int cg_unregister(struct cg *cg, void *addr, size_t len)
{
	struct cg__rep rep;

	if (!cg)
		return -EINVAL;
	return cg__range_op(cg, CG_OP_UNREGISTER, addr, len, 0, &rep);
}

int cg_query(struct cg *cg, const void *addr, struct cg_page_info *out, size_t size)
{
	struct cg__rep rep;
	int ret;

	if (!cg || !out || size < CG_PAGE_INFO_SIZE_VER0)
		return -EINVAL;
	ret = cg__range_op(cg, CG_OP_QUERY, addr, 0, 0, &rep);
	if (ret)
		return ret;
	return cg__copy_out(out, size, &rep.u.page, sizeof(rep.u.page));
}

int cg_audit(struct cg *cg, void *addr, size_t len, struct cg_audit_report *out,
	     size_t size)
{
	struct cg__rep rep;
	int ret;

	if (!cg || !out || size < CG_AUDIT_REPORT_SIZE_VER0)
		return -EINVAL;
	ret = cg__range_op(cg, CG_OP_AUDIT, addr, len, 0, &rep);
	if (ret)
		return ret;
	return cg__copy_out(out, size, &rep.u.audit, sizeof(rep.u.audit));
}

int cg_track_collect(struct cg *cg, void *addr, size_t len,
		     struct cg_range *out, size_t max, void **next)
{
	uint64_t at = (uint64_t)(uintptr_t)addr, end = at + len;
	size_t n = 0;

	if (!cg || !out || !next || !len || !max || end < at)
		return -EINVAL;
	/* The count is returned as an int: never more ranges than it holds. */
	if (max > INT_MAX)
		max = INT_MAX;
	/* A reply carries CG__TRACK_MAX ranges: ask again until out is full. */
	while (at < end && n < max) {
		struct cg__rep rep;
		struct cg__req req;
		size_t room = max - n;
		int ret;

		/* Never more than room: a range reported is clean from then on. */
		cg__req_init(&req, CG_OP_TRACK_COLLECT);
		req.addr = at;
		req.len = end - at;
		req.id = room < CG__TRACK_MAX ? room : CG__TRACK_MAX;
		ret = cg__call(cg, &req, &rep);
		if (!ret && (rep.u.track.n > req.id || rep.u.track.next <= at ||
			     rep.u.track.next > end))
			ret = -EPROTO;
		/* What was reported is handed out; the error comes next call. */
		if (ret && n)
			break;
		if (ret)
			return ret;
		for (uint32_t i = 0; i < rep.u.track.n; i++) {
			out[n++] = (struct cg_range){
				(void *)(uintptr_t)rep.u.track.r[i].addr,
				(size_t)rep.u.track.r[i].len,
			};
		}
		at = rep.u.track.next;
	}
	*next = (void *)(uintptr_t)at;
	return (int)n;
}

int cg_stats(struct cg *cg, struct cg_stats *out, size_t size)
{
	struct cg__rep rep;
	int ret;

	if (!cg || !out || size < CG_STATS_SIZE_VER0)
		return -EINVAL;
	ret = cg__range_op(cg, CG_OP_STATS, NULL, 0, 0, &rep);
	if (ret)
		return ret;
	return cg__copy_out(out, size, &rep.u.stats, sizeof(rep.u.stats));
}
