// SPDX-License-Identifier: MIT
/*
 * cowguardctl: the words its formatters share for the daemon's numbers
 * (page kinds, truths, pin modes, uffd features).  They live apart from
 * main(), which calls the formatters, so that no formatter calls back.
 */
#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"

const char *ctl_kind_name(uint32_t kind, bool json)
{
	static const char *const text[] = { "none", "4 KiB", "THP", "THP split",
					    "hugetlb 2 MiB", "hugetlb 1 GiB" };
	static const char *const id[] = { "none", "4k", "thp", "thp_pte",
					  "hugetlb_2m", "hugetlb_1g" };

	if (kind >= sizeof(id) / sizeof(*id))
		return "unknown";
	return json ? id[kind] : text[kind];
}

const char *ctl_preload_hook_name(unsigned bit)
{
	static const char *const names[] = CG_PRELOAD_HOOK_NAMES;

	return bit < sizeof(names) / sizeof(*names) ? names[bit] : "unknown";
}

const char *ctl_truth_name(enum cg_truth truth)
{
	switch (truth) {
	case CG_TRUTH_KPAGEFLAGS:
		return "kpageflags";
	case CG_TRUTH_MAPCOUNT:
		return "mapcount";
	}
	return "none";
}

const char *ctl_pin_mode(uint32_t flags, bool json)
{
	if (flags & CG_PIN_RW)
		return json ? "rw" : "RW";
	return json ? "ro" : "RO";
}

/* With a kernel pin fork copies the pages; without, they are DONTFORK. */
const char *ctl_pin_fork(uint32_t flags)
{
	return flags & CG_PIN_FOLL_PIN ? "foll_pin" : "dontfork";
}

/* UFFD_FEATURE_* by bit number, as far as Linux 6.8 (MOVE). */
const char *const ctl_feature_names[] = {
	"pagefault_flag_wp", "event_fork", "event_remap", "event_remove",
	"missing_hugetlbfs", "missing_shmem", "event_unmap", "sigbus",
	"thread_id", "minor_hugetlbfs", "minor_shmem", "exact_address",
	"wp_hugetlbfs_shmem", "wp_unpopulated", "poison", "wp_async", "move",
};
