// SPDX-License-Identifier: MIT
/*
 * A client names its pins' consumer (any 15 bytes), and root reads them in
 * `cowguardctl pins`: no byte of it may reach the terminal as a control
 * sequence.  The text output writes control bytes, invalid UTF-8 and a
 * backslash as \xNN (\\), and valid UTF-8 as it is only in a UTF-8 locale
 * and only when it shows (not a bidi override).  The JSON output is valid
 * UTF-8 whatever the bytes: control characters \u00XX, each invalid byte
 * U+FFFD.  A socket path in a message is escaped the same way.
 *
 * Bugs this catches (issue 9): an escape sequence from a client written
 * raw to root's terminal (clearing it, setting its title, recolouring);
 * JSON that a strict parser refuses because a consumer was not UTF-8.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "harness.h"
#include "utf8.h"

#define PG 4096UL
#define LEN (8 * PG)

/* ESC [2J clears the screen, ESC ]0;X BEL sets the title; then a
 * backslash, a newline, and two bytes that are no UTF-8. */
#define HOSTILE "\x1b[2J\x1b]0;X\x07\\\n\xff\xc0"
#define HOSTILE_TEXT "\\x1b[2J\\x1b]0;X\\x07\\\\\\x0a\\xff\\xc0"
#define HOSTILE_JSON "\\u001b[2J\\u001b]0;X\\u0007\\\\\\u000a\\ufffd\\ufffd"
/* "café", a right-to-left override (U+202E), "!". */
#define UNICODE "caf\xc3\xa9\xe2\x80\xae!"
#define UNICODE_TEXT_UTF8 "caf\xc3\xa9\\xe2\\x80\\xae!"
#define UNICODE_TEXT_C "caf\\xc3\\xa9\\xe2\\x80\\xae!"

struct fixture {
	struct cg *cg;
	char *p;
	struct cg_pin *hostile, *unicode;
};

static void setup(struct fixture *f)
{
	f->p = h_map(H_4K, LEN, 'A');
	f->cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(f->cg, f->p, LEN, 0), 0);
	ck_assert_int_eq(cg__pin(f->cg, f->p, PG, CG_PIN_RO, HOSTILE,
				 &f->hostile), 0);
	ck_assert_int_eq(cg__pin(f->cg, f->p + 4 * PG, PG, CG_PIN_RO, UNICODE,
				 &f->unicode), 0);
}

static void teardown(struct fixture *f)
{
	ck_assert_int_eq(cg_unpin(f->hostile), 0);
	ck_assert_int_eq(cg_unpin(f->unicode), 0);
	cg_close(f->cg);
	munmap(f->p, LEN);
}

/* Valid UTF-8 with no control byte but the newline (any output of ours). */
static void assert_clean(const char *out, const char *what)
{
	const unsigned char *s = (const unsigned char *)out;

	while (*s) {
		size_t n = utf8_len(s);

		ck_assert_msg(n, "%s: invalid UTF-8 at byte %zu:\n%s", what,
			      (size_t)(s - (const unsigned char *)out), out);
		ck_assert_msg(n > 1 || *s == '\n' || (*s >= 0x20 && *s != 0x7f),
			      "%s: control byte %#x at byte %zu:\n%s", what, *s,
			      (size_t)(s - (const unsigned char *)out), out);
		ck_assert_msg(n == 1 || s[0] != 0xc2 || s[1] >= 0xa0,
			      "%s: C1 control at byte %zu", what,
			      (size_t)(s - (const unsigned char *)out));
		s += n;
	}
}

static void assert_has(const char *out, const char *want, const char *what)
{
	ck_assert_msg(strstr(out, want), "%s: no '%s' in:\n%s", what, want, out);
}

START_TEST(text_pins_escapes_control_bytes_and_invalid_utf8_of_a_consumer)
{
	struct h_run *r = malloc(sizeof(*r));
	struct fixture f;

	ck_assert_ptr_nonnull(r);
	setup(&f);
	/* In the C locale every byte that is not printable ASCII is escaped. */
	h_run_cmd(r, "LC_ALL=C %s --socket '%s' pins %d 2>&1", h_ctl_path(),
		  h_socket(), (int)getpid());
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->out);
	assert_clean(r->out, "LC_ALL=C pins");
	for (const char *s = r->out; *s; s++)
		ck_assert_msg((unsigned char)*s < 0x80, "non-ASCII byte in:\n%s",
			      r->out);
	assert_has(r->out, " " HOSTILE_TEXT " ", "LC_ALL=C pins");
	assert_has(r->out, " " UNICODE_TEXT_C " ", "LC_ALL=C pins");

	/* In a UTF-8 one, "é" shows; the override does not. */
	if (!setlocale(LC_CTYPE, "C.UTF-8")) {
		h_skip("no C.UTF-8 locale here: the UTF-8 half not run");
		goto out;
	}
	setlocale(LC_CTYPE, "C");
	h_run_cmd(r, "LC_ALL=C.UTF-8 %s --socket '%s' pins %d 2>&1", h_ctl_path(),
		  h_socket(), (int)getpid());
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->out);
	assert_clean(r->out, "LC_ALL=C.UTF-8 pins");
	assert_has(r->out, " " HOSTILE_TEXT " ", "LC_ALL=C.UTF-8 pins");
	assert_has(r->out, " " UNICODE_TEXT_UTF8 " ", "LC_ALL=C.UTF-8 pins");
out:
	teardown(&f);
	free(r);
}
END_TEST

/* Python decodes strictly and parses; prints each consumer, ASCII-safe. */
#define PY_CONSUMERS                                                          \
	"import json,sys; "                                                   \
	"d=json.loads(sys.stdin.buffer.read().decode('utf-8','strict')); "    \
	"[print(ascii(p['consumer'])) for p in d['pins']]"

START_TEST(json_pins_is_valid_utf8_with_control_characters_escaped)
{
	struct h_run *r = malloc(sizeof(*r));
	struct fixture f;

	ck_assert_ptr_nonnull(r);
	setup(&f);
	h_run_cmd(r, "%s --socket '%s' --json pins %d 2>&1", h_ctl_path(),
		  h_socket(), (int)getpid());
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->out);
	assert_clean(r->out, "--json pins");
	assert_has(r->out, "\"consumer\": \"" HOSTILE_JSON "\"", "--json pins");
	assert_has(r->out, "\"consumer\": \"" UNICODE "\"", "--json pins");
	if (h_have_python()) {
		h_run_cmd(r, "%s --socket '%s' --json pins %d | python3 -c \""
			  PY_CONSUMERS "\" 2>&1", h_ctl_path(), h_socket(),
			  (int)getpid());
		ck_assert_msg(r->status == 0, "python3: %d: %s", r->status, r->out);
		ck_assert_str_eq(r->out,
				 "'\\x1b[2J\\x1b]0;X\\x07\\\\\\n\\ufffd\\ufffd'\n"
				 "'caf\\xe9\\u202e!'\n");
	}
	teardown(&f);
	free(r);
}
END_TEST

START_TEST(a_socket_path_in_a_message_is_escaped)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "LC_ALL=C %s --socket \"$(printf '/nonexistent/\\033[2J\\377')\" "
		  "status 2>&1", h_ctl_path());
	ck_assert_int_eq(r->status, 2);
	assert_clean(r->out, "status");
	assert_has(r->out, "/nonexistent/\\x1b[2J\\xff:", "status");
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl escapes client strings");
	TCase *tc = tcase_create("cowguardctl");

	h_timeout(tc, 15);
	h_add(tc, text_pins_escapes_control_bytes_and_invalid_utf8_of_a_consumer);
	h_add(tc, json_pins_is_valid_utf8_with_control_characters_escaped);
	h_add(tc, a_socket_path_in_a_message_is_escaped);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
