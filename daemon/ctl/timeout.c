// SPDX-License-Identifier: MIT
/*
 * cowguardctl --timeout: give up on a daemon that does not answer.
 *
 * A stopped daemon (SIGSTOP, a debugger) still has its connections
 * accepted, by the kernel's backlog, and never answers; once the backlog
 * is full even connect() blocks.  The library waits 30 s for each reply
 * and connect() forever, so cowguardctl keeps its own clock: an interval
 * timer, armed before connecting and again each time cowguardd answers
 * (a long reply that keeps coming is not cut short).  When it strikes,
 * SIGALRM writes what was made ready beforehand (nothing else is
 * async-signal-safe) and exits with status 2.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "client.h"
#include "ctl.h"

/* Only a file-scope variable reaches a signal handler. */
static struct {
	char *err, *out;	/* for stderr; for stdout (metrics: up 0) */
	size_t errlen, outlen;
} on_timeout;

static void timed_out(int sig)
{
	(void)sig;
	if (on_timeout.out && write(STDOUT_FILENO, on_timeout.out,
				    on_timeout.outlen) < 0) {
		/* Nothing to do: we are leaving. */
	}
	if (write(STDERR_FILENO, on_timeout.err, on_timeout.errlen) < 0) {
		/* As above. */
	}
	_exit(EXIT_ERROR);
}

/* The messages the handler writes; returns 0 or -ENOMEM. */
static int prepare(const struct ctl_opts *o)
{
	char sock[CTL_TEXT_SAFE_LEN(sizeof(((struct cg__client *)0)->path))];
	FILE *f = open_memstream(&on_timeout.err, &on_timeout.errlen);

	if (!f)
		return -ENOMEM;
	fprintf(f, "cowguardctl: no answer from cowguardd at %s within %g s "
		"(stopped? --timeout SECONDS waits longer)\n",
		ctl_text_safe(o->socket, o->utf8, sock, sizeof(sock)), o->timeout);
	if (fclose(f))
		return -ENOMEM;
	if (o->cmd != CTL_METRICS)
		return 0;
	f = open_memstream(&on_timeout.out, &on_timeout.outlen);
	if (!f)
		return -ENOMEM;
	metrics_down(f, o);
	return fclose(f) ? -ENOMEM : 0;
}

int ctl_timeout_start(const struct ctl_opts *o)
{
	struct sigaction sa = { .sa_handler = timed_out };
	int ret;

	if (!o->timeout)
		return 0;
	ret = prepare(o);
	if (ret)
		return ret;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGALRM, &sa, NULL) ? -errno : 0;
}

/* Set the interval timer to secs (0: disarm it). */
static void set_timer(double secs)
{
	/* secs >= 0: the cast rounds down (floor() would need libm). */
	time_t whole = (time_t)secs;
	struct itimerval it = { .it_value = {
		.tv_sec = whole,
		.tv_usec = (suseconds_t)((secs - (double)whole) * 1e6),
	} };

	/* All zeros would disarm it: the least timeout is 1 us. */
	if (secs && !it.it_value.tv_sec && !it.it_value.tv_usec)
		it.it_value.tv_usec = 1;
	setitimer(ITIMER_REAL, &it, NULL);
}

void ctl_timeout_arm(const struct ctl_opts *o)
{
	if (o->timeout)
		set_timer(o->timeout);
}

void ctl_timeout_stop(const struct ctl_opts *o)
{
	if (o->timeout)
		set_timer(0);
}

void ctl_timeout_end(void)
{
	free(on_timeout.err);
	free(on_timeout.out);
	memset(&on_timeout, 0, sizeof(on_timeout));
}
