/* SPDX-License-Identifier: MIT */
/* What lib/verbs/verbs.c decides, for the tests. */
#ifndef CG_VERBS_INTERNAL_H
#define CG_VERBS_INTERNAL_H

/*
 * The cowguard pin that matches the kernel's pin of an MR registered with
 * these IBV_ACCESS_* flags: CG_PIN_RW | CG_PIN_FOLL_PIN when the device may
 * write (ib_umem_get pins with FOLL_WRITE), CG_PIN_RO | CG_PIN_FOLL_PIN
 * otherwise, 0 (no pin) for IBV_ACCESS_ON_DEMAND.
 */
unsigned cg__ibv_pin_flags(int access);

#endif
