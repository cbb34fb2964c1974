# SPDX-License-Identifier: MIT
#
# cowguard build.  `make` builds the library, the daemon and the examples;
# `make check` installs missing packages, builds everything and runs the tests
# (as root, then as a user in the cowguard group); `make check-root`: root only;
# `make check-vm`: the suites in QEMU guests on Debian's 6.1 and 5.10 kernels
# (`make check-vm-6.1`, `make check-vm-5.10`: one of them).
# `make V=1` shows the full commands.

# The version is set in one place, include/cowguard.h (CG_VERSION_MAJOR,
# _MINOR, _PATCH), and read from there, so that the library's cg_version(),
# the header's macros, the .so name, the pkg-config files and `make dist`
# agree.  A release is the commit that bumps them, tagged vMAJOR.MINOR.PATCH
# (git tag -s v0.1.0); `make dist` then packs that tree.  Before 1.0 a minor
# bump may change the ABI, and then SOVERSION goes up with it.
cg_version_part = $(shell sed -n 's/^\#define CG_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/cowguard.h)
VERSION    := $(call cg_version_part,MAJOR).$(call cg_version_part,MINOR).$(call cg_version_part,PATCH)
ifneq ($(words $(subst ., ,$(VERSION))),3)
$(error cannot read CG_VERSION_MAJOR/MINOR/PATCH from include/cowguard.h)
endif
SOVERSION  := 0

BUILDDIR   ?= build
ASANDIR    ?= build-asan

PREFIX     ?= /usr/local
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR     ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/cowguard
# Where CRIU looks for plugins by default is /usr/lib/criu: with another
# PREFIX, criu --libdir names this.
CRIUPLUGINDIR ?= $(PREFIX)/lib/criu

CC         ?= cc
AR         ?= ar
PKG_CONFIG ?= pkg-config
INSTALL    ?= install

# CFLAGS/LDFLAGS are the user's to override; what the code needs to build at
# all is in BASE_CFLAGS.  EXTRA_* are for the sanitizer tree.
CFLAGS      ?= -O2 -g -Wall -Wextra -Werror
BASE_CFLAGS := -std=gnu11 -fvisibility=hidden -D_GNU_SOURCE -Iinclude -Ilib
ALL_CFLAGS   = $(BASE_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS) $(CPPFLAGS)
ALL_LDFLAGS  = $(LDFLAGS) $(EXTRA_LDFLAGS)

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	     -fno-sanitize-recover=undefined

# pkg-config answers, asked at most once and only when used (so `make clean`
# or the outer `make check` work before the packages are installed).
pc = $(or $(shell $(PKG_CONFIG) $(1) 2>/dev/null),$(2))
UV_CFLAGS    = $(eval UV_CFLAGS := $(call pc,--cflags libuv))$(UV_CFLAGS)
UV_LIBS      = $(eval UV_LIBS := $(call pc,--libs libuv,-luv))$(UV_LIBS)
CHECK_CFLAGS = $(eval CHECK_CFLAGS := $(call pc,--cflags check,-pthread))$(CHECK_CFLAGS)
CHECK_LIBS   = $(eval CHECK_LIBS := $(call pc,--libs check,-lcheck -lsubunit -lm -lrt -pthread))$(CHECK_LIBS)

ifeq ($(V),1)
msg =
else
msg = @printf '  %-7s %s\n' '$(1)' '$(2)';
endif

# ---- sources -----------------------------------------------------------------

OBJDIR := $(BUILDDIR)/obj

# libcowguard is lib/ (the handle side) and the layers under it: the engine
# (lib/engine/), kernel I/O (lib/kernel/), the wire format (lib/wire/) and
# the snapshot image format (lib/image/).
# lib/verbs/ is libcowguard-verbs, a library of its own: only its users need
# libibverbs.  Likewise lib/uring/ is libcowguard-uring: only its users need
# liburing.
# lib/preload/ is libcowguard-preload.so, LD_PRELOAD'ed by cowguard-run
# (daemon/run/): it carries libcowguard's objects, so a program needs no
# other library of ours.
PRELOAD_SRCS := $(wildcard lib/preload/*.c)
# lib/criu/ is cowguard.so, a plugin CRIU loads (criu --libdir): built where
# CRIU's plugin header is (Debian's criu package).
CRIU_SRCS   := $(if $(wildcard /usr/include/criu/criu-plugin.h),$(wildcard lib/criu/*.c))
VERBS_SRCS  := $(wildcard lib/verbs/*.c)
URING_SRCS  := $(wildcard lib/uring/*.c)
LIB_SRCS    := $(wildcard lib/*.c lib/engine/*.c lib/kernel/*.c lib/wire/*.c lib/image/*.c)
# A program a folder: cowguardd in daemon/, cowguardctl in daemon/ctl/.
DAEMON_SRCS := $(wildcard daemon/*.c)
CTL_SRCS    := $(wildcard daemon/ctl/*.c)
RUN_SRCS    := $(wildcard daemon/run/*.c)
# Programs of tests/apps/ know nothing of cowguard: no header, no library.
APP_SRCS    := $(wildcard tests/apps/*.c)
EXAMPLE_SRCS := $(wildcard examples/*.c)
# bench/bench.c is the benchmarks' shared helpers, linked into each, with
# the harness's helpers that need no Check (tests/sysfile.c).
BENCH_LIB_SRCS := $(wildcard bench/bench.c) tests/sysfile.c
BENCH_SRCS  := $(filter-out $(BENCH_LIB_SRCS),$(wildcard bench/*.c))
TEST_SRCS   := $(wildcard tests/test-*.c)
HARNESS_SRCS := $(wildcard tests/harness*.c) tests/sysfile.c

objs = $(patsubst %.c,$(OBJDIR)/%.o,$(1))

LIB_OBJS     := $(call objs,$(LIB_SRCS))
VERBS_OBJS   := $(call objs,$(VERBS_SRCS))
URING_OBJS   := $(call objs,$(URING_SRCS))
PRELOAD_OBJS := $(call objs,$(PRELOAD_SRCS))
CRIU_OBJS    := $(call objs,$(CRIU_SRCS))
RUN_OBJS     := $(call objs,$(RUN_SRCS))
APP_OBJS     := $(call objs,$(APP_SRCS))
DAEMON_OBJS  := $(call objs,$(DAEMON_SRCS))
CTL_OBJS     := $(call objs,$(CTL_SRCS))
EXAMPLE_OBJS := $(call objs,$(EXAMPLE_SRCS))
BENCH_OBJS   := $(call objs,$(BENCH_SRCS))
BENCH_LIB_OBJS := $(call objs,$(BENCH_LIB_SRCS))
TEST_OBJS    := $(call objs,$(TEST_SRCS))
HARNESS_OBJS := $(call objs,$(HARNESS_SRCS))
ALL_OBJS     := $(LIB_OBJS) $(VERBS_OBJS) $(URING_OBJS) $(PRELOAD_OBJS) $(CRIU_OBJS) $(DAEMON_OBJS) $(CTL_OBJS) \
		$(RUN_OBJS) $(APP_OBJS) $(EXAMPLE_OBJS) \
		$(BENCH_OBJS) $(BENCH_LIB_OBJS) $(TEST_OBJS) $(HARNESS_OBJS)

SHARED_LIB := $(BUILDDIR)/libcowguard.so.$(VERSION)
SONAME     := libcowguard.so.$(SOVERSION)
STATIC_LIB := $(BUILDDIR)/libcowguard.a
LIB_LINKS  := $(BUILDDIR)/$(SONAME) $(BUILDDIR)/libcowguard.so

VERBS_SHARED := $(BUILDDIR)/libcowguard-verbs.so.$(VERSION)
VERBS_SONAME := libcowguard-verbs.so.$(SOVERSION)
VERBS_STATIC := $(BUILDDIR)/libcowguard-verbs.a
VERBS_LIBS   := $(if $(VERBS_SRCS),$(VERBS_SHARED) $(BUILDDIR)/$(VERBS_SONAME) \
		$(BUILDDIR)/libcowguard-verbs.so $(VERBS_STATIC))

URING_SHARED := $(BUILDDIR)/libcowguard-uring.so.$(VERSION)
URING_SONAME := libcowguard-uring.so.$(SOVERSION)
URING_STATIC := $(BUILDDIR)/libcowguard-uring.a
URING_LIBS   := $(if $(URING_SRCS),$(URING_SHARED) $(BUILDDIR)/$(URING_SONAME) \
		$(BUILDDIR)/libcowguard-uring.so $(URING_STATIC))

PRELOAD  := $(if $(PRELOAD_SRCS),$(BUILDDIR)/libcowguard-preload.so)
CRIU_PLUGIN := $(if $(CRIU_SRCS),$(BUILDDIR)/criu/cowguard.so)
RUN      := $(if $(RUN_SRCS),$(BUILDDIR)/cowguard-run)
APPS     := $(patsubst tests/apps/%.c,$(BUILDDIR)/tests/apps/%,$(APP_SRCS))
DAEMON   := $(if $(DAEMON_SRCS),$(BUILDDIR)/cowguardd)
CTL      := $(if $(CTL_SRCS),$(BUILDDIR)/cowguardctl)
EXAMPLES := $(patsubst examples/%.c,$(BUILDDIR)/examples/%,$(EXAMPLE_SRCS))
BENCHES  := $(patsubst bench/%.c,$(BUILDDIR)/bench/%,$(BENCH_SRCS))
TESTS    := $(patsubst tests/%.c,$(BUILDDIR)/tests/%,$(TEST_SRCS))

# ---- targets -----------------------------------------------------------------

.PHONY: all lib daemon examples benches tests build-all check check-host check-root check-asan asan-lane check-vm bench demo \
	check-layers \
	install uninstall clean deps bench-fuzz

all: lib daemon examples

lib: $(SHARED_LIB) $(LIB_LINKS) $(STATIC_LIB) $(VERBS_LIBS) $(URING_LIBS) $(PRELOAD) $(CRIU_PLUGIN)
daemon: $(DAEMON) $(CTL) $(RUN)
examples: $(EXAMPLES)
benches: $(BENCHES)
tests: $(TESTS) $(APPS)

# Everything `make check` needs; the empty recipe keeps a sub-make quiet.
build-all: all tests benches
	@:

deps:
	@bash scripts/install-deps.sh

# Five lanes: every suite as root, then again as a user in the cowguard
# group against one root cowguardd (scripts/run-unprivileged.sh; skipped,
# and says so, when not root), what a packager gets (scripts/check-install.sh:
# make install into a scratch DESTDIR, a client built against it with
# pkg-config, every man page rendered), then in the 6.1 and the 5.10 guests.
# Each lane prints its own summary line; the last lines list what failed in
# any lane and add them all up, and the exit status is non-zero if any lane
# failed.
TALLY = $(BUILDDIR)/check.tally

# The async lanes: the suites that judge page state, run again with the
# engine on asynchronous write protection (COWGUARD_WP=async, 6.7+: the
# kernel resolves writes, the engine scans for them), as root and as the
# unprivileged lane's user.  Where the kernel lacks UFFD_FEATURE_WP_ASYNC
# they run synchronously again, harmless.
ASYNC_SUITES = asynchronous-write fork-marks registration-write mremap \
	dontneed madv-free thp-split pin- pinned-pages many-clients \
	hundred-forks child-uffd engine-keeps overlapping-pins hostile-client \
	uffd-was-replaced \
	killed-client munmap a-collect-reports collects-racing a-snapshot

# The guest lanes: the same suites, then the RDMA example, in a QEMU guest
# with soft-RoCE on Debian 12's 6.1 kernel (lane vm-6.1) and on Debian 11's
# 5.10 (lane vm-5.10; scripts/vm-run --dist bullseye), side by side
# (scripts/vm-lanes.sh: 8.5-9 minutes on 2 cores, a virtual CPU each).
# `make check-vm` runs both alone, `make check-vm-6.1` or
# `make check-vm-5.10` one.  `make check CHECK_VM=0` leaves them out;
# `VM_SERIES=6.1` keeps one.
CHECK_VM ?= 1
VM_SERIES ?= 6.1 5.10
VM_RUN_SERIES = $(if $(filter 1,$(CHECK_VM)),$(VM_SERIES))
VM_LANES = $(addprefix vm-,$(VM_RUN_SERIES))
# Suites of user-space logic alone (the command-line tools' output and
# arguments, the protocol's parser, the daemon's users and connections):
# the same on every kernel, so the host's lanes run them and the guests,
# where code runs about six times slower, do not (about 2 minutes a lane).
HOST_ONLY_SUITES = cowguardctl-escapes cowguardctl-exports \
	cowguardctl-gives-up cowguardctl-lists cowguardctl-names \
	cowguardctl-reports examples-answer protocol-fuzzing \
	hostile-input-is-refused bad-arguments-are-refused one-user-cannot \
	daemon-runs-as-its-own-user
# The guest lanes of $(1), side by side, in a recipe's shell line; $(2)
# the tally.
vm_lanes = $(if $(1),CG_TEST_TALLY=$(2) \
	CG_TEST_EXCLUDE="$${CG_TEST_EXCLUDE-$(HOST_ONLY_SUITES)}" \
	bash scripts/vm-lanes.sh $(BUILDDIR)/tests $(1) || status=1;)

# The sanitizers' lane (ASan and UBSan, make check-asan) runs beside the
# guest lanes, its output shown after theirs: its suites keep no bound on
# time (h_time_bounds()), so sharing the cores costs it nothing but time,
# and the run about five minutes.  `make check CHECK_ASAN=0` leaves it out.
CHECK_ASAN ?= 1
ASAN_LANE = $(if $(filter 1,$(CHECK_ASAN)),asan)
ASAN_LOG = $(ASANDIR)/check.log
# In a recipe's shell line: start the lane in the background, then wait
# for it and show what it printed.
asan_lane_start = $(if $(ASAN_LANE),mkdir -p $(ASANDIR); \
	$(MAKE) --no-print-directory asan-lane CG_TEST_LANE=asan \
		CG_TEST_TALLY=$(abspath $(TALLY)) >$(ASAN_LOG) 2>&1 & asan_pid=$$!; \
	echo "check: the asan lane started (pid $$asan_pid): shown after the guests";)
asan_lane_end = $(if $(ASAN_LANE),wait $$asan_pid || { status=1; \
	grep -q '^asan ' $(TALLY) || echo "asan 0 1 0 1" >>$(TALLY); }; \
	cat $(ASAN_LOG);)

# The test targets build with a job per core (CI calls plain `make
# check`): a serial build of the tree took about a minute of the run.
BUILD_JOBS ?= -j$(shell nproc 2>/dev/null || echo 2)

check: deps
	@$(MAKE) --no-print-directory $(BUILD_JOBS) build-all
	@echo "make check changes this machine while it runs (docs/testing.md): the" \
	      "group cowguard and the users cowguard, cowguard-test (kept), /dev/userfaultfd" \
	      "root:cowguard 0660, the hugetlb pools, khugepaged paused (put back" \
	      "at the end and on Ctrl-C; not after SIGKILL)."
	@rm -f $(TALLY) $(TALLY).failures; status=0; \
	 bash scripts/check-layers.sh || status=1; \
	 CG_TEST_LANE=root CG_TEST_TALLY=$(TALLY) \
		bash scripts/run-tests.sh $(BUILDDIR)/tests || status=1; \
	 CG_TEST_LANE=async CG_TEST_TALLY=$(TALLY) COWGUARD_WP=async \
	 CG_TEST_FILTER="$(ASYNC_SUITES)" \
		bash scripts/run-tests.sh $(BUILDDIR)/tests || status=1; \
	 CG_TEST_TALLY=$(TALLY) \
		bash scripts/run-unprivileged.sh $(BUILDDIR)/tests || status=1; \
	 CG_TEST_LANE=unprivileged-async CG_TEST_TALLY=$(TALLY) COWGUARD_WP=async \
	 CG_TEST_FILTER="$(ASYNC_SUITES)" \
		bash scripts/run-unprivileged.sh $(BUILDDIR)/tests || status=1; \
	 CG_TEST_LANE=install CG_TEST_TALLY=$(TALLY) \
		bash scripts/check-install.sh $(BUILDDIR) || status=1; \
	 $(asan_lane_start) \
	 $(call vm_lanes,$(VM_RUN_SERIES),$(TALLY)) \
	 $(asan_lane_end) \
	 bash scripts/run-tests.sh --total $(TALLY) root async unprivileged unprivileged-async install $(VM_LANES) $(ASAN_LANE) || status=1; \
	 rm -f $(TALLY); exit $$status

# The module boundaries of docs/architecture.md (make check runs it first).
check-layers:
	@bash scripts/check-layers.sh

# The host's lanes, without the guests and the sanitizers' lane: about 7
# minutes, not 20.
check-host:
	@$(MAKE) --no-print-directory check CHECK_VM=0 CHECK_ASAN=0

# The root lane alone.
check-root: deps
	@$(MAKE) --no-print-directory $(BUILD_JOBS) build-all
	@bash scripts/run-tests.sh $(BUILDDIR)/tests

# The guest lanes alone (root): the suites built here, run by
# scripts/vm-check.sh inside scripts/vm-run --rdma --dist (QEMU, TCG,
# Debian's newest 6.1 and 5.10 kernels, soft-RoCE rxe0).  Each prints the
# guest's kernel, `rdma link` and `ibv_devices`, its suites' summary and
# its time; the last line adds the lanes up.
VM_TALLY = $(BUILDDIR)/check-vm.tally

check-vm: deps
	@$(MAKE) --no-print-directory $(BUILD_JOBS) build-all
	@rm -f $(VM_TALLY) $(VM_TALLY).failures; status=0; \
	 $(call vm_lanes,$(VM_SERIES),$(VM_TALLY)) \
	 bash scripts/run-tests.sh --total $(VM_TALLY) $(addprefix vm-,$(VM_SERIES)) || status=1; \
	 rm -f $(VM_TALLY); exit $$status

# One guest lane: its summary line is the last but one, its time the last.
.PHONY: check-vm-6.1 check-vm-5.10
check-vm-6.1 check-vm-5.10: check-vm-%: deps
	@$(MAKE) --no-print-directory $(BUILD_JOBS) build-all
	@CG_VM_DIST=$* CG_TEST_LANE=vm-$* \
	 CG_TEST_EXCLUDE="$${CG_TEST_EXCLUDE-$(HOST_ONLY_SUITES)}" \
	 bash scripts/vm-check.sh $(BUILDDIR)/tests

# The whole tree, library included, rebuilt with sanitizers.  Warnings are
# not errors there: gcc's sanitizer instrumentation gives false positives,
# and the normal build already holds the code to -Werror.
check-asan: deps
	@$(MAKE) --no-print-directory asan-lane

# check-asan without its packages step: make check runs it beside the
# guest lanes, which may be installing packages of their own.
asan-lane:
	@$(MAKE) --no-print-directory $(BUILD_JOBS) BUILDDIR=$(ASANDIR) \
		EXTRA_CFLAGS="$(SAN_FLAGS) -Wno-error" EXTRA_LDFLAGS="$(SAN_FLAGS)" \
		build-all
	@ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1}" \
	 UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
	 CK_TIMEOUT_MULTIPLIER="$${CK_TIMEOUT_MULTIPLIER:-3}" \
	 bash scripts/run-tests.sh $(ASANDIR)/tests

bench: benches
	@bash scripts/run-bench.sh $(BUILDDIR)/bench

# The protocol fuzzer at 10^7 packets (make check sends 10^6): about three
# minutes on 2 cores.  CG_FUZZ_SEED=... replays a run.
bench-fuzz: tests daemon
	@CG_BUILDDIR=$(abspath $(BUILDDIR)) CG_FUZZ_PACKETS=10000000 \
	 CK_DEFAULT_TIMEOUT=3600 CK_TIMEOUT_MULTIPLIER=6 \
	 $(BUILDDIR)/tests/test-protocol-fuzzing-leaves-the-daemon-serving

demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

# ---- compiling ---------------------------------------------------------------

# One set of position-independent objects serves both libraries.
$(LIB_OBJS) $(VERBS_OBJS) $(URING_OBJS) $(PRELOAD_OBJS) $(CRIU_OBJS): XCFLAGS := -fPIC
$(RUN_OBJS): XCFLAGS = -DCG_PRELOAD_PATH='"$(LIBDIR)/libcowguard-preload.so"'
$(DAEMON_OBJS) $(CTL_OBJS): XCFLAGS = $(UV_CFLAGS)
$(TEST_OBJS) $(HARNESS_OBJS): XCFLAGS = -Itests $(CHECK_CFLAGS)
$(BENCH_OBJS) $(BENCH_LIB_OBJS): XCFLAGS = -Itests

$(OBJDIR)/%.o: %.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)$(CC) $(ALL_CFLAGS) $(XCFLAGS) -MMD -MP -c -o $@ $<

# A program of tests/apps/ is built as anyone's would be: no include path
# of ours, no library of ours, no sanitizer (the sanitizers' lane skips
# the preload suite: the shim would precede their runtime).
$(OBJDIR)/tests/apps/%.o: tests/apps/%.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)$(CC) -std=gnu11 -D_GNU_SOURCE $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(ALL_OBJS:.o=.d)

# Objects reached through pattern rules are intermediate: keep them.
.SECONDARY: $(ALL_OBJS)

# ---- linking -----------------------------------------------------------------

# -fvisibility=hidden: only functions marked visibility("default") are
# exported; the version script then limits those to the names it lists
# (scripts/check-exports.sh, run by make check-install, checks them).
$(SHARED_LIB): $(LIB_OBJS) lib/libcowguard.map
	$(call msg,LD,$@)$(CC) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script=lib/libcowguard.map -Wl,-z,defs \
		$(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(LIB_OBJS) -lpthread
	@nm -D --defined-only $@ 2>/dev/null | grep -q ' cg_' || \
		echo "warning: $@ exports no cg_* symbol (public functions need visibility(\"default\"))" >&2

$(BUILDDIR)/$(SONAME): $(SHARED_LIB)
	$(call msg,LN,$@)ln -sfn $(notdir $<) $@

$(BUILDDIR)/libcowguard.so: $(BUILDDIR)/$(SONAME)
	$(call msg,LN,$@)ln -sfn $(notdir $<) $@

$(STATIC_LIB): $(LIB_OBJS)
	@rm -f $@
	$(call msg,AR,$@)$(AR) rcs $@ $^

# libcowguard-verbs calls cg__pin, which libcowguard.so exports for it alone
# (COWGUARD_PRIVATE in lib/libcowguard.map).
$(VERBS_SHARED): $(VERBS_OBJS) lib/verbs/libcowguard-verbs.map $(SHARED_LIB)
	$(call msg,LD,$@)$(CC) -shared -Wl,-soname,$(VERBS_SONAME) \
		-Wl,--version-script=lib/verbs/libcowguard-verbs.map -Wl,-z,defs \
		$(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(VERBS_OBJS) $(SHARED_LIB) -libverbs

$(BUILDDIR)/$(VERBS_SONAME): $(VERBS_SHARED)
	$(call msg,LN,$@)ln -sfn $(notdir $<) $@

$(BUILDDIR)/libcowguard-verbs.so: $(BUILDDIR)/$(VERBS_SONAME)
	$(call msg,LN,$@)ln -sfn $(notdir $<) $@

$(VERBS_STATIC): $(VERBS_OBJS)
	@rm -f $@
	$(call msg,AR,$@)$(AR) rcs $@ $^

# libcowguard-uring likewise (cg__pin), and liburing (io_uring_register_buffers).
$(URING_SHARED): $(URING_OBJS) lib/uring/libcowguard-uring.map $(SHARED_LIB)
	$(call msg,LD,$@)$(CC) -shared -Wl,-soname,$(URING_SONAME) \
		-Wl,--version-script=lib/uring/libcowguard-uring.map -Wl,-z,defs \
		$(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(URING_OBJS) $(SHARED_LIB) -luring

$(BUILDDIR)/$(URING_SONAME): $(URING_SHARED)
	$(call msg,LN,$@)ln -sfn $(notdir $<) $@

$(BUILDDIR)/libcowguard-uring.so: $(BUILDDIR)/$(URING_SONAME)
	$(call msg,LN,$@)ln -sfn $(notdir $<) $@

$(URING_STATIC): $(URING_OBJS)
	@rm -f $@
	$(call msg,AR,$@)$(AR) rcs $@ $^

# Only the hooks are exported (lib/preload/libcowguard-preload.map):
# libcowguard comes in as its archive, its symbols hidden.
$(PRELOAD): $(PRELOAD_OBJS) $(STATIC_LIB) lib/preload/libcowguard-preload.map
	$(call msg,LD,$@)$(CC) -shared -Wl,--version-script=lib/preload/libcowguard-preload.map \
		-Wl,--exclude-libs,$(notdir $(STATIC_LIB)) -Wl,-z,defs \
		$(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(PRELOAD_OBJS) $(STATIC_LIB) -ldl -lpthread

$(BUILDDIR)/cowguard-run: $(RUN_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -lpthread

# What a program of tests/apps/ links besides libc, by its name.
app_libs = $(if $(filter uring-% odirect-% zerocopy-%,$1),-luring) \
	   $(if $(filter verbs-%,$1),-libverbs) $(if $(filter static-%,$1),-static)

$(BUILDDIR)/tests/apps/%: $(OBJDIR)/tests/apps/%.o
	@mkdir -p $(@D)
	$(call msg,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(call app_libs,$*) -lpthread

$(BUILDDIR)/cowguardd: $(DAEMON_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ \
		$(UV_LIBS) -lcap -lpthread

$(BUILDDIR)/cowguardctl: $(CTL_OBJS) $(STATIC_LIB)
	$(call msg,LD,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ -lpthread

# Examples, benchmarks and tests: libcowguard-uring (then libcowguard again,
# which it calls) and -luring when the name says uring; libcowguard-verbs
# and -libverbs when it says verbs.
extra_libs = $(if $(findstring uring,$(1)),$(URING_STATIC) $(STATIC_LIB) -luring) \
	     $(if $(findstring verbs,$(1)),$(VERBS_STATIC) $(STATIC_LIB) -libverbs)
# (filter takes one % only: pick the programs whose name contains $(1).)
named = $(foreach t,$(2),$(if $(findstring $(1),$(notdir $(t))),$(t)))
$(call named,verbs,$(EXAMPLES) $(BENCHES) $(TESTS)): $(VERBS_STATIC)
$(call named,uring,$(EXAMPLES) $(BENCHES) $(TESTS)): $(URING_STATIC)

$(BUILDDIR)/examples/%: $(OBJDIR)/examples/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(call msg,LD,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ \
		$(call extra_libs,$*) -lpthread

$(BUILDDIR)/bench/%: $(OBJDIR)/bench/%.o $(BENCH_LIB_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(call msg,LD,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ \
		$(call extra_libs,$*) -lpthread

$(BUILDDIR)/tests/%: $(OBJDIR)/tests/%.o $(HARNESS_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(call msg,LD,$@)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ \
		$(call extra_libs,$*) $(CHECK_LIBS) -lpthread -luring

# ---- installing --------------------------------------------------------------

SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	    -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@VERSION@|$(VERSION)|g'

PUBLIC_HEADERS := $(wildcard include/cowguard/*.h)
UNITS    := $(wildcard systemd/*.service systemd/*.socket systemd/*.timer)
TMPFILES := $(wildcard systemd/cowguard-tmpfiles.conf)
SYSUSERS := $(wildcard systemd/cowguard-sysusers.conf)
UDEVRULE := $(wildcard systemd/70-cowguard.rules)
# Every page in man/, each into the section its suffix names.  Pages that are
# only ".so man3/other.3" (an alias) are installed as they are, as liburing's.
MAN_PAGES := $(wildcard man/*.1 man/*.3 man/*.7 man/*.8)
man_dest = $(DESTDIR)$(MANDIR)/man$(patsubst .%,%,$(suffix $(1)))/$(notdir $(1))
GENDIR   := $(BUILDDIR)/gen

# CRIU's plugin: only its descriptor is exported (-fvisibility=hidden);
# criu_get_image_dir() comes from criu itself, hence no -z defs.
$(CRIU_PLUGIN): $(CRIU_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(call msg,LD,$@)$(CC) -shared -Wl,--exclude-libs,$(notdir $(STATIC_LIB)) \
		$(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(CRIU_OBJS) $(STATIC_LIB) -lpthread

install: all
	$(INSTALL) -D -m 644 include/cowguard.h $(DESTDIR)$(INCLUDEDIR)/cowguard.h
	for h in $(PUBLIC_HEADERS); do \
		$(INSTALL) -D -m 644 $$h $(DESTDIR)$(INCLUDEDIR)/cowguard/$${h##*/} || exit 1; \
	done
	$(INSTALL) -D -m 755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/$(notdir $(SHARED_LIB))
	ln -sfn $(notdir $(SHARED_LIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libcowguard.so
	$(INSTALL) -D -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/libcowguard.a
	@mkdir -p $(GENDIR)
	$(SUBST) cowguard.pc.in > $(GENDIR)/cowguard.pc
	$(INSTALL) -D -m 644 $(GENDIR)/cowguard.pc $(DESTDIR)$(PKGCONFIGDIR)/cowguard.pc
	$(if $(VERBS_SRCS),$(INSTALL) -D -m 755 $(VERBS_SHARED) $(DESTDIR)$(LIBDIR)/$(notdir $(VERBS_SHARED)))
	$(if $(VERBS_SRCS),ln -sfn $(notdir $(VERBS_SHARED)) $(DESTDIR)$(LIBDIR)/$(VERBS_SONAME))
	$(if $(VERBS_SRCS),ln -sfn $(VERBS_SONAME) $(DESTDIR)$(LIBDIR)/libcowguard-verbs.so)
	$(if $(VERBS_SRCS),$(INSTALL) -D -m 644 $(VERBS_STATIC) $(DESTDIR)$(LIBDIR)/libcowguard-verbs.a)
	$(if $(VERBS_SRCS),$(SUBST) cowguard-verbs.pc.in > $(GENDIR)/cowguard-verbs.pc)
	$(if $(VERBS_SRCS),$(INSTALL) -D -m 644 $(GENDIR)/cowguard-verbs.pc $(DESTDIR)$(PKGCONFIGDIR)/cowguard-verbs.pc)
	$(if $(URING_SRCS),$(INSTALL) -D -m 755 $(URING_SHARED) $(DESTDIR)$(LIBDIR)/$(notdir $(URING_SHARED)))
	$(if $(URING_SRCS),ln -sfn $(notdir $(URING_SHARED)) $(DESTDIR)$(LIBDIR)/$(URING_SONAME))
	$(if $(URING_SRCS),ln -sfn $(URING_SONAME) $(DESTDIR)$(LIBDIR)/libcowguard-uring.so)
	$(if $(URING_SRCS),$(INSTALL) -D -m 644 $(URING_STATIC) $(DESTDIR)$(LIBDIR)/libcowguard-uring.a)
	$(if $(URING_SRCS),$(SUBST) cowguard-uring.pc.in > $(GENDIR)/cowguard-uring.pc)
	$(if $(URING_SRCS),$(INSTALL) -D -m 644 $(GENDIR)/cowguard-uring.pc $(DESTDIR)$(PKGCONFIGDIR)/cowguard-uring.pc)
	$(if $(DAEMON),$(INSTALL) -D -m 755 $(DAEMON) $(DESTDIR)$(SBINDIR)/cowguardd)
	$(if $(CTL),$(INSTALL) -D -m 755 $(CTL) $(DESTDIR)$(BINDIR)/cowguardctl)
	$(if $(RUN),$(INSTALL) -D -m 755 $(RUN) $(DESTDIR)$(BINDIR)/cowguard-run)
	$(if $(PRELOAD),$(INSTALL) -D -m 755 $(PRELOAD) $(DESTDIR)$(LIBDIR)/libcowguard-preload.so)
	$(if $(CRIU_PLUGIN),$(INSTALL) -D -m 755 $(CRIU_PLUGIN) $(DESTDIR)$(CRIUPLUGINDIR)/cowguard.so)
	for u in $(UNITS); do \
		$(SUBST) $$u > $(GENDIR)/$${u##*/} && \
		$(INSTALL) -D -m 644 $(GENDIR)/$${u##*/} $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} || exit 1; \
	done
	$(if $(TMPFILES),$(SUBST) $(TMPFILES) > $(GENDIR)/tmpfiles.conf)
	$(if $(TMPFILES),$(INSTALL) -D -m 644 $(GENDIR)/tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/cowguard.conf)
	$(if $(SYSUSERS),$(SUBST) $(SYSUSERS) > $(GENDIR)/sysusers.conf)
	$(if $(SYSUSERS),$(INSTALL) -D -m 644 $(GENDIR)/sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/cowguard.conf)
	$(if $(UDEVRULE),$(INSTALL) -D -m 644 $(UDEVRULE) $(DESTDIR)$(UDEVRULESDIR)/70-cowguard.rules)
	$(foreach m,$(MAN_PAGES),$(INSTALL) -D -m 644 $(m) $(call man_dest,$(m)) && ) :
	$(INSTALL) -D -m 644 LICENSE $(DESTDIR)$(DOCDIR)/LICENSE

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cowguard.h \
	      $(addprefix $(DESTDIR)$(INCLUDEDIR)/cowguard/,$(notdir $(PUBLIC_HEADERS))) \
	      $(DESTDIR)$(LIBDIR)/$(notdir $(SHARED_LIB)) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libcowguard.so $(DESTDIR)$(LIBDIR)/libcowguard.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/cowguard.pc \
	      $(DESTDIR)$(LIBDIR)/$(notdir $(VERBS_SHARED)) $(DESTDIR)$(LIBDIR)/$(VERBS_SONAME) \
	      $(DESTDIR)$(LIBDIR)/libcowguard-verbs.so $(DESTDIR)$(LIBDIR)/libcowguard-verbs.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/cowguard-verbs.pc \
	      $(DESTDIR)$(LIBDIR)/$(notdir $(URING_SHARED)) $(DESTDIR)$(LIBDIR)/$(URING_SONAME) \
	      $(DESTDIR)$(LIBDIR)/libcowguard-uring.so $(DESTDIR)$(LIBDIR)/libcowguard-uring.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/cowguard-uring.pc \
	      $(DESTDIR)$(SBINDIR)/cowguardd $(DESTDIR)$(BINDIR)/cowguardctl \
	      $(DESTDIR)$(BINDIR)/cowguard-run $(DESTDIR)$(LIBDIR)/libcowguard-preload.so \
	      $(DESTDIR)$(CRIUPLUGINDIR)/cowguard.so \
	      $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(notdir $(UNITS))) \
	      $(DESTDIR)$(TMPFILESDIR)/cowguard.conf $(DESTDIR)$(SYSUSERSDIR)/cowguard.conf \
	      $(DESTDIR)$(UDEVRULESDIR)/70-cowguard.rules \
	      $(foreach m,$(MAN_PAGES),$(call man_dest,$(m))) \
	      $(DESTDIR)$(DOCDIR)/LICENSE
	-rmdir $(DESTDIR)$(INCLUDEDIR)/cowguard $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# Install into a scratch DESTDIR with PREFIX=/usr, check what is there, build
# a client against it with pkg-config and run it, render every man page, and
# check the libraries' exports (scripts/check-install.sh).  No root needed.
check-install: lib daemon
	@bash scripts/check-install.sh $(BUILDDIR)

# cowguard-$(VERSION).tar.gz, everything under cowguard-$(VERSION)/: the
# committed tree of DIST_REF (HEAD; uncommitted changes are not in it).  For a
# release, bump the version in include/cowguard.h, commit, tag it
# (git tag -s v$(VERSION)), then `make dist DIST_REF=v$(VERSION)`.
DIST_REF ?= HEAD
DISTDIR  ?= .
dist:
	$(call msg,DIST,$(DISTDIR)/cowguard-$(VERSION).tar.gz)git archive --format=tar.gz \
		--prefix=cowguard-$(VERSION)/ -o $(DISTDIR)/cowguard-$(VERSION).tar.gz $(DIST_REF)

.PHONY: check-install dist

clean:
	rm -rf $(BUILDDIR) $(ASANDIR)
