// SPDX-License-Identifier: MIT
/* Logging to stderr, where systemd's journal or a terminal picks it up. */
#include <stdarg.h>
#include <stdio.h>

#include "daemon.h"

static bool verbose;

void log_set_verbose(bool v)
{
	verbose = v;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > LOG_INFO && !verbose)
		return;
	/* "<N>", syslog's number, lets journald file each line at its level. */
	fprintf(stderr, "<%d>cowguardd: ", level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
