/* SPDX-License-Identifier: MIT */
/* What the preload shim needs of a restore that the public API hides. */
#ifndef CG_RESTORE_H
#define CG_RESTORE_H

struct cg_restore;

/* The uffd the fill needs until cg_restore_wait(): closed, pages read zeros. */
int cg__restore_uffd(const struct cg_restore *r);

#endif
