// SPDX-License-Identifier: MIT
/*
 * cowguardctl snapshot PID -o FILE: a live snapshot of another process, a
 * client of cowguardd in daemon mode, taken while it runs.  The daemon's
 * engine freezes its regions and makes a write to a page not saved yet
 * wait, as for cg_snapshot(); here the pages are read out of the process
 * (process_vm_readv: the kernel's own check that we may, the one ptrace
 * makes) and saved by lib/snapshot_write.c.  The daemon lets only root or
 * the process's own user begin it, and ends it if we go away: the
 * process's writes never wait on a cowguardctl that is gone.
 *
 * A progress bar goes to stderr when it is a terminal.  The image is the
 * process's full image (an incremental one needs the process's own last
 * image); its own next incremental snapshot is refused after ours, as
 * after a collect (-ENOENT).  A snapshot that fails leaves no file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client.h"
#include "ctl.h"
#include "image/image.h"
#include "kernel/clock.h"
#include "snapshot_write.h"

#define BAR_WIDTH 30

struct remote {
	const struct ctl_opts *o;
	struct cg__client cli;
	uint64_t total;		/* bytes present when we asked: the bar's end */
	bool bar;
	uint64_t last_bar_ns;
};

static int ask_daemon(void *ctx, enum cg__op op, uint64_t start, uint64_t len,
		      unsigned flags, struct cg__snap_window *win)
{
	struct remote *rm = ctx;
	struct cg__req req;
	struct cg__rep rep;
	int ret;

	cg__req_init(&req, op);
	req.pid = rm->o->pid;
	req.addr = start;
	req.len = len;
	req.flags = flags;
	ctl_timeout_arm(rm->o);
	ret = cg__client_call(&rm->cli, &req, &rep);
	if (ret)
		return ret;
	*win = rep.u.snap;
	return rep.status;
}

/* Read the process's bytes, then write them: the checksum is of these. */
static int save_remote(void *ctx, int fd, uint64_t off, uint64_t addr,
		       void *bounce, size_t len)
{
	const struct remote *rm = ctx;
	struct iovec local = { bounce, len };
	struct iovec far = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(rm->o->pid, &local, 1, &far, 1, 0);

	if (n < 0)
		return errno == EFAULT ? -ESTALE : -errno;
	/* Unmapped part way: the engine has the event and says -ESTALE. */
	if ((size_t)n != len)
		return -ESTALE;
	return cg__img_pwrite(fd, bounce, len, off);
}

static void draw_bar(const struct remote *rm, uint64_t done, bool last)
{
	uint64_t total = rm->total > done ? rm->total : done;
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
	unsigned fill = pct * BAR_WIDTH / 100;
	char bar[BAR_WIDTH + 1];

	for (unsigned i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = 0;
	fprintf(stderr, "\rsnapshot of pid %d: [%s] %3u%%  %llu of %llu MiB%s",
		(int)rm->o->pid, bar, pct,
		(unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
		last ? "\n" : "");
}

/* At most every 50 ms: a terminal is slower than the saving. */
static void progress(void *ctx, uint64_t saved, uint64_t kept)
{
	struct remote *rm = ctx;
	uint64_t now = cg__now_ns();

	if (!rm->bar || now - rm->last_bar_ns < 50000000u)
		return;
	rm->last_bar_ns = now;
	draw_bar(rm, saved + kept, false);
}

static void print_result(const struct ctl_opts *o,
			 const struct cg_snapshot_info *info)
{
	char file[CTL_TEXT_SAFE_LEN(256)];

	if (o->json) {
		printf("{\"pid\":%d,\"file\":\"", (int)o->pid);
		ctl_json_escape(stdout, o->output);
		printf("\",\"image_bytes\":%llu,\"saved_bytes\":%llu,"
		       "\"regions\":%llu,\"waits\":%llu,\"freeze_ns\":%llu}\n",
		       (unsigned long long)info->image_bytes,
		       (unsigned long long)info->saved_bytes,
		       (unsigned long long)info->regions,
		       (unsigned long long)info->waits,
		       (unsigned long long)info->begin_ns);
		return;
	}
	printf("pid %d: %llu KiB of %llu region%s saved to %s (image %llu KiB; "
	       "%llu writes waited; freeze %.2f ms)\n", (int)o->pid,
	       (unsigned long long)info->saved_bytes >> 10,
	       (unsigned long long)info->regions, info->regions == 1 ? "" : "s",
	       ctl_text_safe(o->output, o->utf8, file, sizeof(file)),
	       (unsigned long long)info->image_bytes >> 10,
	       (unsigned long long)info->waits, info->begin_ns / 1e6);
}

static void say_failure(const struct ctl_opts *o, int ret)
{
	const char *why = ret == -ESRCH ? "it is not a client of cowguardd "
					  "(or it went away)"
			  : ret == -EACCES ? "only root or its own user may, "
					     "and only while it may be traced"
			  : ret == -EPERM ? "the kernel does not let you read "
					    "its memory"
			  : ret == -EBUSY ? "a snapshot or a pin of it is "
					    "under way"
					  : cg_strerror(ret);

	fprintf(stderr, "cowguardctl: snapshot of pid %d: %s\n", (int)o->pid,
		why);
}

int ctl_snapshot(const struct ctl_opts *o, const struct ctl_client *cl)
{
	struct remote rm = { .o = o, .cli = { .sock = -1 },
			     .total = cl->c.present * 4096,
			     .bar = !o->json && isatty(STDERR_FILENO) };
	const struct cg__snap_src src = {
		.ask = ask_daemon, .save = save_remote, .progress = progress,
		.ctx = &rm, .pid = o->pid,
	};
	struct cg__snap_result res;
	int fd, ret;

	fd = open(o->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "cowguardctl: snapshot: cannot open the output "
			"file: %s\n", cg_strerror(ret));
		return EXIT_ERROR;
	}
	ctl_timeout_arm(o);
	ret = cg__client_open_ctl(&rm.cli, o->socket);
	if (!ret)
		ret = cg__snapshot_write(&src, fd, 0, &res);
	ctl_timeout_stop(o);
	cg__client_close(&rm.cli);
	if (rm.bar && !ret)
		draw_bar(&rm, res.info.saved_bytes + res.info.kept_bytes, true);
	else if (rm.bar && rm.last_bar_ns)
		fputc('\n', stderr);
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		unlink(o->output);
		say_failure(o, ret);
		return EXIT_ERROR;
	}
	print_result(o, &res.info);
	return EXIT_CLEAN;
}
