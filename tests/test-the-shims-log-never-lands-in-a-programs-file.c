// SPDX-License-Identifier: MIT
/*
 * The shim's log file is a descriptor in the program's table that the
 * program does not know of (lib/preload/log.c).  A daemon that closes every
 * descriptor and opens its own gets that number back; the shim's line at
 * exit must still go to the log, and the program's file must hold what the
 * program wrote, nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

START_TEST(a_program_that_takes_every_descriptor_keeps_its_file_to_itself)
{
	char file[128], text[256] = "";
	struct h_app app = {
		.app = "reopens-every-descriptor",
		.args = file,
		.run = "--mode embedded",
		.status = 0,
		.logged = { "pinned: " },
	};
	FILE *f;

	snprintf(file, sizeof(file), "/tmp/cg-reopens.%d", (int)getpid());
	if (!h_app_checked(&app, NULL))
		return;
	f = fopen(file, "re");
	ck_assert_ptr_nonnull(f);
	text[fread(text, 1, sizeof(text) - 1, f)] = 0;
	fclose(f);
	unlink(file);
	ck_assert_msg(strcmp(text, "data\n") == 0,
		      "the program's file holds more than its line: \"%s\"", text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("the shim's log never lands in a program's file");
	TCase *tc = tcase_create("log");

	h_timeout(tc, 30);
	h_add(tc, a_program_that_takes_every_descriptor_keeps_its_file_to_itself);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
