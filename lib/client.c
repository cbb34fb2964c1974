// SPDX-License-Identifier: MIT
/* Talking to cowguardd: connect, hand over the uffd, request and reply. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "kernel/uffd.h"

/* An audit of a large region takes a while; a stopped daemon takes forever. */
#define CALL_TIMEOUT_MS 30000

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sock, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	do
		ret = connect(sock, (struct sockaddr *)&sa, sizeof(sa));
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		/*
		 * No socket file is no daemon, as much as a refused connect.
		 * A socket we may not open is one for the group cowguard
		 * (cowguardd.socket: 0660): say so, as cg_strerror(-EPERM)
		 * does, rather than blame the server (-EACCES).
		 */
		ret = errno == ENOENT ? -ECONNREFUSED
		      : errno == EACCES ? -EPERM : -errno;
		close(sock);
		return ret;
	}
	return sock;
}

/* $COWGUARD_DAEMON_USER: a uid in decimal or a user name; -1 for none. */
static uid_t daemon_user(void)
{
	const char *s = secure_getenv("COWGUARD_DAEMON_USER");
	struct passwd pw, *found = NULL;
	char buf[4096], *end;
	unsigned long long v;

	if (!s || !*s)
		return (uid_t)-1;
	if (isdigit((unsigned char)*s)) {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (!errno && !*end && v < (uid_t)-1)
			return (uid_t)v;
	}
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &found) || !found)
		return (uid_t)-1;
	return pw.pw_uid;
}

/*
 * The user cowguardd.service runs as, trusted without being named: only
 * root can make a user, and the name says what it is for.  Only a system
 * uid (1 to 999, SYS_UID_MAX on Debian and systemd's default): a person
 * whose login happens to be "cowguard" is not the daemon.  -1 for none.
 */
#define SERVICE_USER "cowguard"
#define SYSTEM_UID_MAX 999

static uid_t service_user(void)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (getpwnam_r(SERVICE_USER, &pw, buf, sizeof(buf), &found) || !found ||
	    pw.pw_uid == 0 || pw.pw_uid > SYSTEM_UID_MAX)
		return (uid_t)-1;
	return pw.pw_uid;
}

static bool trusted(uid_t uid, const struct cg__client *c)
{
	return uid == 0 || uid == geteuid() ||
	       (c->daemon_uid != (uid_t)-1 && uid == c->daemon_uid) ||
	       (c->service_uid != (uid_t)-1 && uid == c->service_uid);
}

/*
 * Hand our memory only to root, to ourselves, or to the daemon's user.
 * What counts is who called listen(), not who owns the socket file.
 */
static int check_server(int sock, const struct cg__client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	return trusted(cred.uid, c) ? 0 : -EACCES;
}

static int wait_readable(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int ret;

	do
		ret = poll(&p, 1, CALL_TIMEOUT_MS);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return ret ? 0 : -ETIMEDOUT;
}

static int reply(struct cg__client *c, const struct cg__req *req,
		 struct cg__rep *rep)
{
	int ret = wait_readable(c->sock);

	if (!ret)
		ret = cg__recv(c->sock, rep, sizeof(*rep), NULL);
	if (ret == -ECONNRESET)
		return -ENOTCONN;
	if (ret)
		return ret;
	if (rep->magic != CG_PROTO_MAGIC || rep->op != req->op)
		return -EPROTO;
	if (rep->major != CG_PROTO_MAJOR)
		return -EPROTONOSUPPORT;
	return 0;
}

/*
 * Send a hello with fd (>= 0: our uffd) and, when we can open them, our
 * own /proc/self/pagemap and smaps (CG_HELLO_PROCFS): opened by us, what
 * the daemon reads of us through them is what the kernel lets us read.
 */
uint64_t cg__preload_hooks;

static int send_hello(int sock, struct cg__req *req, int fd)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int smaps = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	int fds[CG__MAX_FDS];
	size_t n = 0;
	int ret;

	if (cg__preload_hooks) {
		req->flags |= CG_HELLO_PRELOAD;
		req->id = cg__preload_hooks;
	}
	if (fd >= 0)
		fds[n++] = fd;
	if (pagemap >= 0 && smaps >= 0) {
		req->flags |= CG_HELLO_PROCFS;
		fds[n++] = pagemap;
		fds[n++] = smaps;
	}
	ret = cg__send_fds(sock, req, sizeof(*req), fds, n);
	if (pagemap >= 0)
		close(pagemap);
	if (smaps >= 0)
		close(smaps);
	return ret;
}

static int connect_checked(struct cg__client *c, const char *path)
{
	int ret;

	if (strlen(path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	memcpy(c->path, path, strlen(path) + 1);
	/* Resolved now: a forked child checks again without NSS. */
	c->daemon_uid = daemon_user();
	c->service_uid = service_user();
	c->sock = dial(path);
	if (c->sock < 0)
		return c->sock;
	ret = check_server(c->sock, c);
	if (ret) {
		close(c->sock);
		c->sock = -1;
	}
	return ret;
}

int cg__client_open(struct cg__client *c, const char *path)
{
	struct cg__req req;
	struct cg__rep rep;
	int uffd, ret;

	ret = connect_checked(c, path);
	if (ret)
		return ret;
	uffd = cg__uffd_create();
	if (uffd < 0) {
		ret = uffd;
		goto err;
	}
	cg__req_init(&req, CG_OP_HELLO);
	ret = send_hello(c->sock, &req, uffd);
	/* In flight or refused, our copy must go: the daemon holds the only one. */
	close(uffd);
	if (!ret)
		ret = reply(c, &req, &rep);
	if (!ret)
		ret = rep.status;
	if (ret)
		goto err;
	c->features = rep.u.features;
	return 0;
err:
	close(c->sock);
	c->sock = -1;
	return ret;
}

int cg__client_open_ctl(struct cg__client *c, const char *path)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret = connect_checked(c, path);

	if (ret)
		return ret;
	cg__req_init(&req, CG_OP_CTL_HELLO);
	ret = cg__client_call(c, &req, &rep);
	if (!ret)
		ret = rep.status;
	if (ret) {
		close(c->sock);
		c->sock = -1;
	}
	return ret;
}

void cg__client_close(struct cg__client *c)
{
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
}

int cg__client_call(struct cg__client *c, const struct cg__req *req,
		    struct cg__rep *rep)
{
	int ret;

	if (c->sock < 0)
		return -ENOTCONN;
	ret = cg__send(c->sock, req, sizeof(*req), -1);
	if (ret == -EPIPE || ret == -ECONNRESET)
		return -ENOTCONN;
	return ret ? ret : reply(c, req, rep);
}

int cg__client_next(struct cg__client *c, struct cg__rep *rep)
{
	int ret = wait_readable(c->sock);

	if (!ret)
		ret = cg__recv(c->sock, rep, sizeof(*rep), NULL);
	return ret == -ECONNRESET ? -ENOTCONN : ret;
}

int cg__client_child(struct cg__client *c, pid_t parent)
{
	struct cg__req req;
	struct cg__rep rep;
	int sock, ret;

	sock = dial(c->path);
	if (sock < 0) {
		cg__client_close(c);
		return sock;
	}
	/* dup3 drops our share of the parent's connection in one step. */
	ret = check_server(sock, c);
	if (!ret && dup3(sock, c->sock, O_CLOEXEC) < 0)
		ret = -errno;
	if (ret) {
		close(sock);
		cg__client_close(c);
		return ret;
	}
	close(sock);
	cg__req_init(&req, CG_OP_CHILD_HELLO);
	req.pid = parent;
	ret = send_hello(c->sock, &req, -1);
	if (ret == -EPIPE || ret == -ECONNRESET)
		ret = -ENOTCONN;
	if (!ret)
		ret = reply(c, &req, &rep);
	if (!ret)
		ret = rep.status;
	if (ret)
		cg__client_close(c);
	return ret;
}
