// SPDX-License-Identifier: MIT
/*
 * The originals of the hooked functions: whatever the next object in the
 * lookup order defines (libc, liburing, or another library's hook of the
 * same symbol), found when first needed.
 */
#include <dlfcn.h>

#include "preload.h"

void *cg__real_version(const char *name, const char *version)
{
	void *fn = dlvsym(RTLD_NEXT, name, version);

	if (!fn)
		cg__shim_log("%s@%s: no original to call (%s)", name, version,
			     dlerror());
	return fn;
}

void *cg__real(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);

	if (!fn)
		cg__shim_log("%s: no original to call (%s)", name, dlerror());
	return fn;
}
