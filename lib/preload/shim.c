// SPDX-License-Identifier: MIT
/*
 * The shim's state: its configuration (the environment cowguard-run sets),
 * the handle every hook shares, opened on the first pin, and the rule that
 * a thread inside cowguard is not hooked again.
 *
 *   COWGUARD_MODE    auto (default): cowguardd if it serves us, else
 *                    unshare without tracking; daemon: cowguardd only
 *                    (without it, unshare, and say so); embedded:
 *                    unshare without tracking (lib/preload/preload.h)
 *   COWGUARD_HOOKS   the hooks to run, by name, comma-separated (default:
 *                    all): vmsplice, zerocopy, uring, verbs, odirect
 *   COWGUARD_STRICT  1: abort where cowguard cannot protect a call
 *   COWGUARD_LOG     a file for the shim's lines (default: stderr)
 *   COWGUARD_SOCKET  the daemon's socket (default: libcowguard's)
 *   COWGUARD_ODIRECT what an O_DIRECT write does, as cowguard-run learned
 *                    it at start: plain, or unshares:DEV for the
 *                    filesystem DEV (lib/preload/hook_odirect.c)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client.h"
#include "cowguard.h"
#include "kernel/odirect.h"
#include "preload.h"
#include "wire/protocol.h"

struct cg__shim_counts cg__shim_counts;

/* The daemon shows them by the same names (cowguardctl status). */
static const char *const hook_names[CG__NHOOKS] = CG_PRELOAD_HOOK_NAMES;

static struct {
	pthread_mutex_t lock;
	unsigned hooks;		/* bit per enum cg__hook */
	enum cg_mode mode;
	enum cg__odirect odirect;
	dev_t odirect_dev;	/* where odirect was learned */
	bool strict;
	struct cg *cg;
	bool tried;		/* cg_open, once per process */
	uint64_t logged;	/* (hook, errno) pairs said once: a hash */
} shim = { .lock = PTHREAD_MUTEX_INITIALIZER };

static __thread int inside;

/* Forks this image has seen, parent or child (a child counts its birth). */
static unsigned long forks;

static void count_fork(void)
{
	__atomic_add_fetch(&forks, 1, __ATOMIC_RELAXED);
}

void cg__shim_note_fork(void)
{
	count_fork();
}

bool cg__shim_odirect_unshared(dev_t dev)
{
	return shim.odirect == CG__ODIRECT_UNSHARES && dev == shim.odirect_dev;
}

bool cg__shim_forked(void)
{
	return __atomic_load_n(&forks, __ATOMIC_RELAXED) != 0;
}

const char *cg__hook_name(enum cg__hook hook)
{
	return hook_names[hook];
}

bool cg__shim_inside(void)
{
	return inside > 0;
}

void cg__shim_enter_thread(void)
{
	inside++;
}

static unsigned parse_hooks(const char *list)
{
	unsigned hooks = 0;

	if (!list || !*list)
		return (1u << CG__NHOOKS) - 1;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		bool known = false;

		for (int h = 0; h < CG__NHOOKS; h++)
			if (strlen(hook_names[h]) == n &&
			    !strncmp(p, hook_names[h], n)) {
				hooks |= 1u << h;
				known = true;
			}
		if (!known && n)
			cg__shim_log("COWGUARD_HOOKS: no hook '%.*s' (known: "
				     "vmsplice, zerocopy, uring, verbs, odirect)",
				     (int)n, p);
		p += n + (p[n] == ',');
	}
	return hooks;
}

static enum cg_mode parse_mode(const char *s)
{
	if (s && !strcmp(s, "daemon"))
		return CG_MODE_DAEMON;
	if (s && !strcmp(s, "embedded"))
		return CG_MODE_EMBEDDED;	/* the shim's: no handle */
	if (s && *s && strcmp(s, "auto"))
		cg__shim_log("COWGUARD_MODE: '%s' is not auto, daemon or "
			     "embedded: auto", s);
	return CG_MODE_AUTO;
}

/* COWGUARD_NO_INHERIT=1: what this process execs runs without the shim. */
static void drop_from_environment(void)
{
	const char *old = getenv("LD_PRELOAD");
	char kept[4096] = "";
	size_t n = 0;

	for (const char *p = old ? old : ""; *p;) {
		size_t len = strcspn(p, ": ");

		if (len && len < sizeof(kept) - n - 1 &&
		    !memmem(p, len, "libcowguard-preload", 19)) {
			n += (size_t)snprintf(kept + n, sizeof(kept) - n, "%s%.*s",
					      n ? " " : "", (int)len, p);
		}
		p += len;
		p += strspn(p, ": ");
	}
	if (n)
		setenv("LD_PRELOAD", kept, 1);
	else
		unsetenv("LD_PRELOAD");
}

__attribute__((constructor)) static void shim_start(void)
{
	const char *no_inherit = getenv("COWGUARD_NO_INHERIT");

	cg__shim_log_to(getenv("COWGUARD_LOG"));
	shim.hooks = parse_hooks(getenv("COWGUARD_HOOKS"));
	shim.mode = parse_mode(getenv("COWGUARD_MODE"));
	shim.odirect = cg__odirect_parse(getenv("COWGUARD_ODIRECT"),
					 &shim.odirect_dev);
	shim.strict = getenv("COWGUARD_STRICT") &&
		      !strcmp(getenv("COWGUARD_STRICT"), "1");
	if (no_inherit && !strcmp(no_inherit, "1"))
		drop_from_environment();
	pthread_atfork(count_fork, NULL, NULL);
	cg__odirect_scan_inherited();
	cg__shim_restore();
}

/* A fork ends the plain-reference pins first (lib/preload/held.c). */
static void before_fork(void)
{
	if (!inside)
		cg__held_before_fork();
}

static void in_child(void)
{
	cg__held_forget();
}

/*
 * Under shim.lock: the daemon's handle, NULL without one.  Tried once: a
 * program without cowguardd pays for one failed connect, not one a call.
 */
static struct cg *handle(void)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON,
				.socket_path = getenv("COWGUARD_SOCKET") };
	int ret;

	if (shim.tried)
		return shim.cg;
	shim.tried = true;
	if (shim.mode == CG_MODE_EMBEDDED)
		return NULL;
	cg__preload_hooks = shim.hooks;
	ret = cg_open(&o, sizeof(o), &shim.cg);
	if (ret) {
		shim.cg = NULL;
		cg__shim_log("no cowguardd (%s): pages are unshared before each "
			     "call and not tracked", cg_strerror(ret));
		if (shim.strict && shim.mode == CG_MODE_DAEMON)
			abort();
		return NULL;
	}
	/*
	 * After cg_open(): libcowguard's own atfork handlers are in place,
	 * and handlers registered later run first before a fork, so the
	 * shim's pins end before libcowguard protects for the fork.
	 */
	pthread_atfork(before_fork, NULL, in_child);
	return shim.cg;
}

bool cg__shim_enter_bare(enum cg__hook hook)
{
	if (inside || !(shim.hooks & 1u << hook))
		return false;
	inside++;
	return true;
}

struct cg *cg__shim_handle(void)
{
	struct cg *cg;

	pthread_mutex_lock(&shim.lock);
	cg = handle();
	pthread_mutex_unlock(&shim.lock);
	if (cg)
		cg__held_reap();
	return cg;
}

bool cg__shim_enter(enum cg__hook hook, struct cg **cg)
{
	if (!cg__shim_enter_bare(hook))
		return false;
	*cg = cg__shim_handle();
	return true;
}

void cg__shim_leave(void)
{
	inside--;
}

void cg__shim_failed(enum cg__hook hook, const char *what, int err)
{
	uint64_t bit = 1ULL << ((unsigned)(hook * 31 + -err) % 64);

	__atomic_add_fetch(&cg__shim_counts.failed[hook], 1, __ATOMIC_RELAXED);
	if (!(__atomic_fetch_or(&shim.logged, bit, __ATOMIC_RELAXED) & bit))
		cg__shim_log("%s: %s: %s; the call goes on unprotected",
			     hook_names[hook], what, cg_strerror(err));
	if (shim.strict)
		abort();
}

static uint64_t failed_calls(const struct cg__shim_counts *c)
{
	uint64_t n = 0;

	for (int h = 0; h < CG__NHOOKS; h++)
		n += c->failed[h];
	return n;
}

__attribute__((destructor)) static void shim_stop(void)
{
	const struct cg__shim_counts *c = &cg__shim_counts;

	if (cg__shim_log_is_stderr())
		return;
	/* A pipe drained since the last hook lets go of its pin now. */
	if (shim.cg) {
		inside++;
		cg__held_reap();
		inside--;
	}
	cg__shim_log("pinned: vmsplice %llu, zerocopy %llu, verbs %llu, "
		     "uring %llu, odirect %llu; unshared without a daemon %llu; "
		     "unprotected %llu; mappings registered %llu; pins ended "
		     "by a fork %llu; pages replaced while pinned %llu; pins "
		     "held at exit %zu",
		     (unsigned long long)c->calls[CG__HOOK_VMSPLICE],
		     (unsigned long long)c->calls[CG__HOOK_ZEROCOPY],
		     (unsigned long long)c->calls[CG__HOOK_VERBS],
		     (unsigned long long)c->calls[CG__HOOK_URING],
		     (unsigned long long)c->calls[CG__HOOK_ODIRECT],
		     (unsigned long long)c->unshared,
		     (unsigned long long)failed_calls(c),
		     (unsigned long long)c->registered,
		     (unsigned long long)c->released_at_fork,
		     (unsigned long long)c->violations, cg__held_count());
}
