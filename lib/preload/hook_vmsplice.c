// SPDX-License-Identifier: MIT
/*
 * vmsplice(2): the pipe takes plain references to our pages, which the
 * kernel never unshares.  The pages are pinned first (made exclusive),
 * and the pin is held until the pipe is drained (lib/preload/held.c).
 */
#include <fcntl.h>
#include <sys/uio.h>

#include "cowguard.h"
#include "preload.h"

typedef ssize_t vmsplice_fn(int fd, const struct iovec *iov, unsigned long nr,
			    unsigned int flags);

CG__HOOK ssize_t vmsplice(int fd, const struct iovec *iov, unsigned long nr,
			  unsigned int flags)
{
	static vmsplice_fn *real;
	struct cg_pin *pin;
	struct cg *cg;
	ssize_t n;

	if (!real)
		real = (vmsplice_fn *)cg__real("vmsplice");
	if (!cg__shim_enter(CG__HOOK_VMSPLICE, &cg))
		return real(fd, iov, nr, flags);
	pin = iov && nr ? cg__protect(CG__HOOK_VMSPLICE, cg, iov, nr,
					    CG_PIN_RO)
			: NULL;
	n = real(fd, iov, nr, flags);
	if (pin && n < 0)
		cg__unprotect(pin);
	else if (pin)
		cg__held_add(pin, CG__HELD_PIPE, fd, 0);
	cg__shim_leave();
	return n;
}
