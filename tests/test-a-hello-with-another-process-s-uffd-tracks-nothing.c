// SPDX-License-Identifier: MIT
/*
 * A client may say hello with a uffd it did not make: one another process
 * (its own child here, of the same user) handed it.  Through that uffd
 * the daemon would register, protect and count the other process's
 * memory in the caller's name.  So the first registration through a new
 * client's uffd must show up in the caller's own VMAs (smaps "uw");
 * otherwise it is undone and refused with -EPERM (lib/engine/mm.c).
 *
 * Here the caller maps a region, forks a child that keeps the same layout,
 * takes the child's fresh uffd over a socketpair, says hello with it and
 * registers the region: -EPERM, and the child's VMA is not left registered.
 *
 * Bug this catches: a hello with another process's uffd tracking that
 * process (issue 11, row 8).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/uffd.h"
#include "wire.h"
#include "wire/protocol.h"

#define LEN (16 * 4096)

/* The child: send a fresh uffd of its own, then wait for the verdict. */
static int child_gives_its_uffd(int sock)
{
	int uffd = cg__uffd_create();
	char byte;

	if (uffd < 0 || cg__send(sock, "u", 1, uffd))
		return 2;
	close(uffd);
	if (read(sock, &byte, 1) != 1)
		return 3;
	/* The parent checked our smaps; nothing more to do here. */
	return 0;
}

START_TEST(a_hello_with_another_process_s_uffd_tracks_nothing)
{
	char *p = h_map(H_4K, LEN, 'A');
	int pair[2], uffd = -1, s, ret;
	char byte;
	pid_t child;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(pair[0]);
		_exit(child_gives_its_uffd(pair[1]));
	}
	close(pair[1]);
	ck_assert_int_eq(cg__recv(pair[0], &byte, 1, &uffd), 0);
	ck_assert_int_ge(uffd, 0);

	s = wire_connect(h_socket());
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(wire_request(s, CG_OP_HELLO, 0, 0, uffd), 0);
	close(uffd);
	ret = wire_request(s, CG_OP_REGISTER, (uintptr_t)p, LEN, -1);
	ck_assert_msg(ret == -EPERM, "register through the child's uffd: %d (%s), "
		      "not -EPERM", ret, cg_strerror(ret));
	ck_assert_msg(h_vma_flag(p, "uw") == 0, "our region got registered");
	{
		struct h_run *r = malloc(sizeof(*r));

		ck_assert_ptr_nonnull(r);
		h_run_cmd(r, "awk '/^[0-9a-f]+-[0-9a-f]+ /{split($1,a,\"-\"); "
			  "here = (a[1] == \"%lx\")} here && /^VmFlags:/' /proc/%d/smaps",
			  (unsigned long)(uintptr_t)p, (int)child);
		ck_assert_msg(strstr(r->out, " uw") == NULL, "the child's region "
			      "was left registered: %s", r->out);
		free(r);
	}
	close(s);
	ck_assert_int_eq(write(pair[0], "g", 1), 1);
	ck_assert_int_eq(h_wait(child), 0);
	close(pair[0]);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a hello with another process's uffd tracks nothing");
	TCase *tc = tcase_create("foreign uffd");

	h_timeout(tc, 20);
	h_add(tc, a_hello_with_another_process_s_uffd_tracks_nothing);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
