/* SPDX-License-Identifier: MIT */
/* The client's half of a THP unshare by move: lib/move_unshare.c. */
#ifndef CG_MOVE_UNSHARE_H
#define CG_MOVE_UNSHARE_H

#include <stdint.h>

/*
 * Replace the whole THP chunks of [addr, addr+len) (this process's memory,
 * handed over by the engine: registered with no uffd) with copies of their
 * own, each a fresh THP where one can be had, content kept.  No write is
 * lost and no reader sees the hole.  Returns 0, or -errno with the chunks
 * unchanged or each one the original or the copy.
 */
int cg__move_unshare(uint64_t addr, uint64_t len);

#endif
