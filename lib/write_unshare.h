/* SPDX-License-Identifier: MIT */
/* Unsharing our own pages by write faults that change nothing: lib/write_unshare.c. */
#ifndef CG_WRITE_UNSHARE_H
#define CG_WRITE_UNSHARE_H

#include <stdint.h>

#include "cowguard.h"

/*
 * Take a write fault on every page of [addr, addr+len) (this process's
 * memory) that pagemap does not show write-protected by uffd, without
 * changing a byte.  Returns 0, -EACCES (part of the span is not writable:
 * a write fault there would be a SIGSEGV), or -errno.
 */
int cg__write_unshare(uint64_t addr, uint64_t len);

/*
 * Take a write fault on every page of [start, start+len) without changing
 * a byte (MADV_POPULATE_WRITE, or an atomic add of zero before 5.14):
 * populates holes, unshares.  Returns 0, -EACCES (not writable), -ENOENT
 * (not mapped), or -errno.  Exported to libcowguard-uring and -verbs
 * (COWGUARD_PRIVATE), whose registrations retry after such faults.
 */
CG_EXPORT int cg__write_fault(uint64_t start, uint64_t len);

/*
 * cg__write_fault() on the runs of [addr, addr+len) whose pagemap entries
 * have none of bits (PM_* of compat.h): PM_PRESENT | PM_SWAPPED populates
 * the holes, PM_UFFD_WP writes what is not write-protected.
 */
int cg__write_fault_unless(uint64_t addr, uint64_t len, uint64_t bits);
/* The same with PM_PRESENT | PM_SWAPPED, by PAGEMAP_SCAN where it works. */
int cg__populate_holes(uint64_t addr, uint64_t len);

#endif
