/* SPDX-License-Identifier: MIT */
/* What the running kernel does, learned by behaviour once: lib/kernel/kernel.c. */
#ifndef CG_KERNEL_H
#define CG_KERNEL_H

#include <stdbool.h>

/*
 * Run the probe once per process (later calls return at once).  Call it
 * before this process registers memory with any uffd (see lib/kernel/kernel.c).
 * Returns 0, or -EIO when the probe could not decide; the kernel is then
 * treated as one whose read-only pins do not unshare.
 */
int cg__kernel_probe(void);

/*
 * Whether a read-only FOLL_PIN unshares a COW-shared anonymous page
 * (5.19+).  The same kernels have PageAnonExclusive (kpageflags bit 34)
 * and reuse a write-protected page on a write fault whoever else holds a
 * reference to it; older ones copy it.  False until cg__kernel_probe()
 * has succeeded.
 */
bool cg__kernel_read_pin_unshares(void);

/*
 * Whether /proc/PID/pagemap shows the uffd-wp bit (bit 57) of a protected
 * page.  5.10 always reads 0 there.  False until the probe has succeeded,
 * and where this process may not create a uffd.
 */
bool cg__kernel_pagemap_shows_uffd_wp(void);

#endif
