// SPDX-License-Identifier: MIT
/*
 * cg_version: the library's own version, compiled in from the header it was
 * built with, so that a program can tell which library it runs with.
 */
#include "cowguard.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const char *cg_version(void)
{
	return STR(CG_VERSION_MAJOR) "." STR(CG_VERSION_MINOR) "." STR(CG_VERSION_PATCH);
}

int cg_version_major(void)
{
	return CG_VERSION_MAJOR;
}

int cg_version_minor(void)
{
	return CG_VERSION_MINOR;
}
