/* SPDX-License-Identifier: MIT */
/* What the harness's files share (tests/harness*.c); tests use harness.h. */
#ifndef CG_TEST_HARNESS_INTERNAL_H
#define CG_TEST_HARNESS_INTERNAL_H

#include <sys/types.h>

/* The hugetlb pools, which h_main() sets and puts back. */
#define NR_2M "/proc/sys/vm/nr_hugepages"
#define NR_1G "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"

/* The suite's daemon: its socket ("" before h_main()) and pid (0: none). */
extern char h__sock_path[128];
extern pid_t h__daemon_pid;

/* CG_TEST_DAEMON_SOCKET: a daemon of the unprivileged lane, or NULL. */
const char *h__external_socket(void);
/* Stop the suite's daemon; its exit status. */
int h__stop_suite_daemon(void);

#endif
