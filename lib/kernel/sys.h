/* SPDX-License-Identifier: MIT */
/*
 * cowguard's own memory work, as raw system calls.  Libraries such as UCX,
 * libfabric and MPI runtimes interpose mmap, munmap and madvise to follow
 * the program's memory, and the preload shim runs inside such programs:
 * what cowguard maps or advises for itself is none of theirs, and must not
 * reach their hooks (docs/preload.md).  Each returns as libc's does.
 */
#ifndef CG_SYS_H
#define CG_SYS_H

#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void *cg__sys_mmap(void *addr, size_t len, int prot, int flags,
				 int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline int cg__sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static inline int cg__sys_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

#endif
