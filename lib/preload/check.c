// SPDX-License-Identifier: MIT
/*
 * `cowguard-run --check`: which hooks this program can reach.  A hook is
 * reached only where an object of the program calls the symbol through
 * the dynamic linker (it imports it); a static binary, a statically
 * linked liburing, an inline wrapper, or a dlsym(handle) user does not.
 * With COWGUARD_CHECK=FD in its environment the shim reports on FD, from
 * its constructor, once every library the program needs is loaded, then
 * ends the process before main().  Libraries the program would dlopen()
 * later are not seen.
 */
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#define VMSPLICE (1u << CG__HOOK_VMSPLICE)
#define ZEROCOPY (1u << CG__HOOK_ZEROCOPY)
#define URING (1u << CG__HOOK_URING)
#define VERBS (1u << CG__HOOK_VERBS)
#define ODIRECT (1u << CG__HOOK_ODIRECT)

/* The symbols the shim defines, and the hooks each serves. */
static const struct {
	const char *symbol;
	unsigned hooks;
} symbols[] = {
	{ "vmsplice", VMSPLICE },
	{ "syscall", VMSPLICE | URING },
	{ "send", ZEROCOPY },
	{ "sendto", ZEROCOPY },
	{ "sendmsg", ZEROCOPY },
	{ "sendmmsg", ZEROCOPY },
	{ "recvmsg", ZEROCOPY },
	{ "io_uring_register_buffers", URING },
	{ "io_uring_register_buffers_tags", URING },
	{ "io_uring_unregister_buffers", URING },
	{ "io_uring_register", URING },
	{ "io_uring_queue_exit", URING },
	{ "io_uring_submit", URING },
	{ "io_uring_submit_and_wait", URING },
	{ "io_uring_submit_and_wait_timeout", URING },
	{ "io_uring_submit_and_get_events", URING },
	{ "ibv_reg_mr", VERBS },
	{ "ibv_reg_mr_iova", VERBS },
	{ "ibv_reg_mr_iova2", VERBS },
	{ "ibv_rereg_mr", VERBS },
	{ "ibv_dereg_mr", VERBS },
	{ "write", ODIRECT },
	{ "pwrite", ODIRECT },
	{ "pwrite64", ODIRECT },
	{ "writev", ODIRECT },
	{ "pwritev", ODIRECT },
	{ "pwritev64", ODIRECT },
	{ "pwritev2", ODIRECT },
	{ "pwritev64v2", ODIRECT },
	{ "open", ODIRECT },
	{ "open64", ODIRECT },
	{ "openat", ODIRECT },
	{ "openat64", ODIRECT },
	{ "__open_2", ODIRECT },
	{ "__open64_2", ODIRECT },
	{ "__openat_2", ODIRECT },
	{ "__openat64_2", ODIRECT },
	{ "fcntl", ODIRECT },
	{ "fcntl64", ODIRECT },
};
#define NSYMBOLS (sizeof(symbols) / sizeof(symbols[0]))

struct report {
	int fd;
	const char *importer[NSYMBOLS];	/* the first object importing it */
};

static void say(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		syscall(SYS_write, fd, line,
			(size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A d_ptr of the dynamic section, relocated if the loader did not. */
static uintptr_t dyn_ptr(const struct dl_phdr_info *info, ElfW(Addr) p)
{
	return p < info->dlpi_addr ? info->dlpi_addr + p : p;
}

/* The undefined symbols the relocations [rel, rel+size) name. */
static void scan_relocs(struct report *r, const char *object,
			const ElfW(Rela) *rel, size_t size,
			const ElfW(Sym) *symtab, const char *strtab)
{
	for (size_t i = 0; i < size / sizeof(*rel); i++) {
		const ElfW(Sym) *s = &symtab[ELF64_R_SYM(rel[i].r_info)];
		const char *name = strtab + s->st_name;

		if (s->st_shndx != SHN_UNDEF || !ELF64_R_SYM(rel[i].r_info))
			continue;
		for (size_t k = 0; k < NSYMBOLS; k++)
			if (!r->importer[k] && !strcmp(name, symbols[k].symbol))
				r->importer[k] = object;
	}
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct report *r = arg;
	const ElfW(Dyn) *dyn = NULL;
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *jmprel = NULL, *rela = NULL;
	size_t jmprelsz = 0, relasz = 0;
	const char *object = info->dlpi_name[0] ? info->dlpi_name : "the program";

	(void)size;
	if (strstr(object, "libcowguard-preload"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr +
						  info->dlpi_phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_SYMTAB: symtab = (const void *)dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_STRTAB: strtab = (const void *)dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_JMPREL: jmprel = (const void *)dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_PLTRELSZ: jmprelsz = dyn->d_un.d_val; break;
		case DT_RELA: rela = (const void *)dyn_ptr(info, dyn->d_un.d_ptr); break;
		case DT_RELASZ: relasz = dyn->d_un.d_val; break;
		}
	}
	if (!symtab || !strtab)
		return 0;
	if (jmprel)
		scan_relocs(r, object, jmprel, jmprelsz, symtab, strtab);
	if (rela)
		scan_relocs(r, object, rela, relasz, symtab, strtab);
	return 0;
}

__attribute__((constructor(101))) static void check_and_exit(void)
{
	const char *env = getenv("COWGUARD_CHECK");
	struct report r = { .fd = env ? atoi(env) : -1 };
	unsigned reached = 0;

	if (!env || r.fd < 0)
		return;
	dl_iterate_phdr(scan_object, &r);
	say(r.fd, "loaded: the preload shim is in the process\n");
	for (size_t k = 0; k < NSYMBOLS; k++) {
		char names[64] = "";

		for (int h = 0; h < CG__NHOOKS; h++)
			if (symbols[k].hooks & 1u << h)
				snprintf(names + strlen(names),
					 sizeof(names) - strlen(names), "%s%s",
					 names[0] ? ", " : "",
					 cg__hook_name((enum cg__hook)h));
		if (r.importer[k])
			reached |= symbols[k].hooks;
		say(r.fd, "symbol %s (%s): %s%s\n", symbols[k].symbol, names,
		    r.importer[k] ? "reached, imported by " : "not imported",
		    r.importer[k] ? r.importer[k] : "");
	}
	for (int h = 0; h < CG__NHOOKS; h++)
		say(r.fd, "hook %s: %s\n", cg__hook_name((enum cg__hook)h),
		    reached & 1u << h ? "reachable"
				      : "not reachable by this program");
	_exit(0);
}
