// SPDX-License-Identifier: MIT
/*
 * A hostile local client throws random and mutated packets at cowguardd:
 * requests of every op with random fields, valid requests with bytes
 * flipped, packets of random size, other majors, fds of every kind
 * attached (pipes, eventfds, memfds, sockets, /dev/null), on connections
 * that said CTL_HELLO or nothing.  Meanwhile a victim client, registered
 * with a pin held, keeps asking QUERY.  The daemon must stay up and
 * answer the victim within 50 ms at the 99th percentile (scaled by
 * CK_TIMEOUT_MULTIPLIER for sanitizers and guests), and afterwards hold
 * no fd more than before, and the victim audit clean and unpin cleanly.
 *
 * 10^6 packets by default (CG_FUZZ_PACKETS sets it; 10^5 under
 * AddressSanitizer and in the guests, where code runs 3-6x slower; `make
 * bench` sends 10^7).  The seed is printed; CG_FUZZ_SEED replays a run.
 *
 * Bugs this catches: a crash or assertion on some packet, an fd that rides
 * in with a packet and is never closed, a connection that wedges the
 * loop, a victim starved while the daemon chews on garbage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "wire/protocol.h"

#define VICTIM_LEN (64 * 4096)
#define PACKET_MAX 512
#define MAX_QUERIES 200000

static uint64_t rng;

static uint64_t next_random(void)
{
	/* xorshift64*: fast, and replayable from the printed seed. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static unsigned long packets_wanted(void)
{
	const char *env = getenv("CG_FUZZ_PACKETS");

	if (env)
		return strtoul(env, NULL, 0);
#ifdef __SANITIZE_ADDRESS__
	return 100000;
#else
	return getenv("CG_VM") ? 100000 : 1000000;
#endif
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		close(s);
		s = -1;
	}
	return s;
}

/* An fd of some kind to ride with a packet, or -1 for none. */
static int some_fd(void)
{
	int p[2], fd = -1;

	switch (next_random() % 8) {
	case 0:
		if (!pipe(p)) {
			close(p[1]);
			fd = p[0];
		}
		break;
	case 1:
		fd = eventfd(0, EFD_CLOEXEC);
		break;
	case 2:
		fd = memfd_create("fuzz", MFD_CLOEXEC);
		break;
	case 3:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case 4:
		if (!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p)) {
			close(p[1]);
			fd = p[0];
		}
		break;
	}
	return fd;
}

/* One packet: a request of any op, mutated, or bytes of any size. */
static size_t make_packet(unsigned char *buf, const struct cg__req *victim)
{
	struct cg__req req;
	uint64_t r = next_random();
	size_t len = sizeof(req);

	cg__req_init(&req, (enum cg__op)(next_random() % (CG_OP_MAX + 3)));
	req.flags = (uint32_t)next_random();
	req.addr = r & 1 ? victim->addr + (next_random() % VICTIM_LEN) : next_random();
	req.len = r & 2 ? 4096 * (next_random() % 32) : next_random();
	req.pid = r & 4 ? victim->pid : (int64_t)(next_random() % 70000) - 2;
	req.id = next_random() % 8;
	for (size_t i = 0; i < sizeof(req.name); i++)
		req.name[i] = (char)next_random();
	if (r & 8)
		req.major = (uint16_t)next_random();
	memcpy(buf, &req, sizeof(req));
	switch ((r >> 8) % 4) {
	case 0:		/* flip a few bytes */
		for (int i = 0, n = 1 + (int)(next_random() % 4); i < n; i++)
			buf[next_random() % sizeof(req)] = (unsigned char)next_random();
		break;
	case 1:		/* any size, any bytes */
		len = next_random() % PACKET_MAX;
		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)next_random();
		break;
	}
	return len;
}

/* Read and drop whatever the daemon sent; 0, or -1 when it hung up. */
static int drain(int s)
{
	unsigned char buf[PACKET_MAX * 4];

	for (;;) {
		int fd = -1, ret = cg__recv(s, buf, sizeof(buf), &fd);

		if (fd >= 0)
			close(fd);
		if (ret == -EAGAIN)
			return 0;
		if (ret == -ECONNRESET || ret == -EPIPE || ret == -ENOTCONN)
			return -1;
	}
}

/* The fuzzer, in a child: sends n packets, reports how many went. */
static int fuzz(const char *path, const struct cg__req *victim, unsigned long n,
		int report)
{
	unsigned char buf[PACKET_MAX];
	unsigned long sent = 0, conns = 0;
	int s = -1;

	while (sent < n) {
		int fd;
		size_t len;

		if (s < 0) {
			s = connect_to(path);
			if (s < 0)
				return 2;
			conns++;
			if (next_random() % 2) {
				struct cg__req hello;

				cg__req_init(&hello, CG_OP_CTL_HELLO);
				cg__send(s, &hello, sizeof(hello), -1);
			}
		}
		len = make_packet(buf, victim);
		fd = some_fd();
		if (cg__send(s, buf, len, fd) == -EAGAIN)
			poll(&(struct pollfd){ .fd = s, .events = POLLOUT }, 1, 100);
		if (fd >= 0)
			close(fd);
		sent++;
		if (drain(s)) {
			close(s);
			s = -1;
		}
	}
	if (s >= 0)
		close(s);
	return write(report, (unsigned long[2]){ sent, conns },
		     2 * sizeof(unsigned long)) == 2 * sizeof(unsigned long) ? 0 : 3;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Wait for the daemon's fd count to come back to want (closes are async). */
static int settled_fds(pid_t daemon, int want)
{
	int fds = h_fd_count(daemon);

	for (int i = 0; i < 250 && fds != want; i++) {
		usleep(20000);
		fds = h_fd_count(daemon);
	}
	return fds;
}

START_TEST(random_and_mutated_packets_leave_the_daemon_serving)
{
	const char *seed_env = getenv("CG_FUZZ_SEED");
	double *lat = calloc(MAX_QUERIES, sizeof(*lat)), mult, p99;
	unsigned long n = packets_wanted(), got[2] = { 0, 0 };
	char *p = h_map(H_4K, VICTIM_LEN, 'V');
	pid_t daemon = h_daemon_pid(), fuzzer;
	struct cg_pin *pin;
	struct cg__req victim;
	size_t nq = 0;
	int report[2], fds0, status;
	struct cg *cg;

	ck_assert_ptr_nonnull(lat);
	if (!p || !h_have_own_daemon("its fd count and pid, before and after")) {
		free(lat);
		return;
	}
	rng = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) ^ getpid();
	rng = rng ? rng : 1;
	printf("fuzz: seed %#" PRIx64 " (CG_FUZZ_SEED replays), %lu packets\n",
	       rng, n);
	cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(cg, p, VICTIM_LEN, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, 4 * 4096, CG_PIN_RO, &pin), 0);
	fds0 = h_fd_count(daemon);
	cg__req_init(&victim, CG_OP_QUERY);
	victim.addr = (uintptr_t)p;
	victim.pid = getpid();

	ck_assert_int_eq(pipe(report), 0);
	fuzzer = fork();
	ck_assert_int_ge(fuzzer, 0);
	if (fuzzer == 0) {
		close(report[0]);
		_exit(fuzz(h_socket(), &victim, n, report[1]));
	}
	close(report[1]);
	/* The victim: a query at a time until the fuzzer is done. */
	while (waitpid(fuzzer, &status, WNOHANG) == 0) {
		struct cg_page_info info;
		double t0 = now_ms();
		int ret = cg_query(cg, p + (nq % 64) * 4096, &info, sizeof(info));

		ck_assert_msg(ret == 0, "victim's query %zu: %s", nq,
			      cg_strerror(ret));
		if (nq < MAX_QUERIES)
			lat[nq] = now_ms() - t0;
		nq++;
		usleep(1000);
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the fuzzer ended with status %#x", status);
	ck_assert_int_eq(read(report[0], got, sizeof(got)), (ssize_t)sizeof(got));
	close(report[0]);
	ck_assert_uint_eq(got[0], n);
	ck_assert_msg(kill(daemon, 0) == 0, "the daemon is gone");

	nq = nq < MAX_QUERIES ? nq : MAX_QUERIES;
	ck_assert_uint_gt(nq, 0);
	qsort(lat, nq, sizeof(*lat), cmp_double);
	p99 = lat[nq * 99 / 100];
	mult = getenv("CK_TIMEOUT_MULTIPLIER") ? atof(getenv("CK_TIMEOUT_MULTIPLIER")) : 1;
	mult = mult >= 1 ? mult : 1;
	printf("fuzz: %lu packets on %lu connections; victim: %zu queries, "
	       "p99 %.2f ms, max %.2f ms\n", got[0], got[1], nq, p99,
	       lat[nq - 1]);
	ck_assert_msg(p99 < 50 * mult, "the victim's p99 query latency was "
		      "%.1f ms while the fuzzer ran (bound %.0f ms)", p99, 50 * mult);

	if (settled_fds(daemon, fds0) != fds0) {
		struct h_run *r = malloc(sizeof(*r));

		ck_assert_ptr_nonnull(r);
		h_run_cmd(r, "ls -l /proc/%d/fd | sed 1d | awk '{print $NF}' | "
			  "sort | uniq -c", (int)daemon);
		ck_abort_msg("the daemon holds %d fds, %d before the fuzzer:\n%s",
			     h_fd_count(daemon), fds0, r->out);
	}
	h_audit_clean(cg, p, VICTIM_LEN);
	ck_assert_int_eq(cg_unpin(pin), 0);
	cg_close(cg);
	munmap(p, VICTIM_LEN);
	free(lat);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("protocol fuzzing leaves the daemon serving");
	TCase *tc = tcase_create("fuzz");

	h_timeout(tc, 600);
	h_add(tc, random_and_mutated_packets_leave_the_daemon_serving);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
