/* SPDX-License-Identifier: MIT */
/*
 * Numbers in /proc and /sys, for the tests and the benchmarks alike (no
 * Check here: a benchmark links it too).
 */
#ifndef CG_TEST_SYSFILE_H
#define CG_TEST_SYSFILE_H

#include <sys/types.h>

/* The number a file starts with, or -1 (no such file, no number). */
long sys_read_long(const char *path);
/* Write v and a newline: 0 or -errno. */
int sys_write_long(const char *path, long v);
/* A process's resident memory (VmRSS) in KiB, or -1. */
long sys_rss_kb(pid_t pid);

#endif
