// SPDX-License-Identifier: MIT
/*
 * `cowguardctl metrics` writes the Prometheus text exposition format
 * (0.0.4) that node_exporter's textfile collector reads.  A strict parser
 * here checks every line against the format's grammar and the collector's
 * rules: each family with its TYPE (and HELP) before its samples and its
 * samples together, names [a-zA-Z_:][a-zA-Z0-9_:]*, label values escaped
 * (backslash, double quote, newline), values that parse as floats, no
 * timestamps, no sample twice, counters named _total, valid UTF-8.  The
 * values are what this process did: the bytes it registered in two
 * regions, the pins it holds, and every counter as cg_stats() has it.
 * A daemon that does not answer gives cowguard_up 0, its socket label
 * escaped, and exit status 2.
 *
 * Bugs this catches: output the collector refuses (it then drops the whole
 * file), a family split or without TYPE, a label value not escaped, a
 * counter exported with another client's value or not at all.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "harness.h"
#include "pin-util.h"
#include "utf8.h"

/* ---- a strict parser for the text format --------------------------------- */

#define MAX_SAMPLES 4096
#define MAX_FAMILIES 256

struct sample {
	char name[128];
	char labels[512];	/* name="unescaped value", ... as written */
	double value;
};

struct family {
	char name[128];
	char type[16];
	bool help;
	bool sampled;		/* samples seen: no HELP or TYPE after them */
};

struct parsed {
	struct sample s[MAX_SAMPLES];
	size_t ns;
	struct family f[MAX_FAMILIES];
	size_t nf;
	struct family *current;	/* whose samples may come now */
	char err[512];
};

static bool name_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' ||
	       (!first && isdigit((unsigned char)c));
}

/* A metric name at *p (moved past it) into out; false if none. */
static bool take_name(const char **p, char *out, size_t len, bool metric)
{
	size_t n = 0;

	while (name_char((*p)[n], n == 0) && (metric || (*p)[n] != ':'))
		n++;
	if (!n || n >= len)
		return false;
	memcpy(out, *p, n);
	out[n] = 0;
	*p += n;
	return true;
}

static struct family *family(struct parsed *ps, const char *name)
{
	for (size_t i = 0; i < ps->nf; i++)
		if (!strcmp(ps->f[i].name, name))
			return &ps->f[i];
	if (ps->nf == MAX_FAMILIES)
		return NULL;
	snprintf(ps->f[ps->nf].name, sizeof(ps->f[0].name), "%s", name);
	return &ps->f[ps->nf++];
}

static int refuse(struct parsed *ps, int line, const char *why)
{
	snprintf(ps->err, sizeof(ps->err), "line %d: %s", line, why);
	return -1;
}

/* "# HELP name doc" or "# TYPE name type"; other comments pass. */
static int comment(struct parsed *ps, const char *l, int line)
{
	bool help = !strncmp(l, "# HELP ", 7), type = !strncmp(l, "# TYPE ", 7);
	const char *p = l + 7;
	struct family *f;
	char name[128];

	if (!help && !type)
		return 0;
	if (!take_name(&p, name, sizeof(name), true))
		return refuse(ps, line, "bad metric name");
	f = family(ps, name);
	if (!f || f->sampled || (help && f->help) || (type && f->type[0]))
		return refuse(ps, line, "HELP or TYPE twice, or after samples");
	if (ps->current && ps->current != f)
		ps->current->sampled = true;	/* its turn is over */
	ps->current = f;
	if (help) {
		f->help = true;
		if (*p && *p != ' ')
			return refuse(ps, line, "no space after the name");
		for (p += !!*p; *p; p++)
			if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
				return refuse(ps, line, "bad escape in HELP");
			else if (*p == '\\')
				p++;
		return 0;
	}
	if (*p++ != ' ' || (strcmp(p, "counter") && strcmp(p, "gauge") &&
			    strcmp(p, "histogram") && strcmp(p, "summary") &&
			    strcmp(p, "untyped")))
		return refuse(ps, line, "bad TYPE");
	snprintf(f->type, sizeof(f->type), "%s", p);
	return 0;
}

/* One label value after its opening quote: unescaped into out. */
static bool take_value(const char **p, char *out, size_t len)
{
	size_t n = 0;

	for (; **p != '"'; (*p)++) {
		char c = **p;

		if (!c || n + 1 >= len)
			return false;
		if (c == '\\') {
			c = *++(*p);
			if (c == 'n')
				c = '\n';
			else if (c != '\\' && c != '"')
				return false;
		}
		out[n++] = c;
	}
	(*p)++;
	out[n] = 0;
	return true;
}

/* {name="value",...} into s->labels; names unique and not reserved. */
static bool take_labels(const char **p, struct sample *s)
{
	char names[16][64];
	size_t used = 0, n = 0;

	if (**p != '{')
		return true;
	(*p)++;
	while (**p != '}') {
		char value[256];

		if (n == 16 || !take_name(p, names[n], sizeof(names[n]), false) ||
		    **p != '=' || (*p)[1] != '"' || !strncmp(names[n], "__", 2))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(names[i], names[n]))
				return false;	/* twice */
		*p += 2;
		if (!take_value(p, value, sizeof(value)))
			return false;
		used += (size_t)snprintf(s->labels + used, sizeof(s->labels) - used,
					 "%s%s=\"%s\"", used ? "," : "", names[n++],
					 value);
		if (used >= sizeof(s->labels) || (**p != ',' && **p != '}'))
			return false;
		*p += **p == ',';
	}
	(*p)++;
	return true;
}

static int sample(struct parsed *ps, const char *l, int line)
{
	struct sample *s = &ps->s[ps->ns];
	const char *p = l;
	struct family *f;
	char *end;

	if (ps->ns == MAX_SAMPLES)
		return refuse(ps, line, "too many samples");
	memset(s, 0, sizeof(*s));
	if (!take_name(&p, s->name, sizeof(s->name), true) || !take_labels(&p, s))
		return refuse(ps, line, "bad name or labels");
	f = family(ps, s->name);
	if (!f || !f->type[0])
		return refuse(ps, line, "a sample without its TYPE before it");
	if (f != ps->current)
		return refuse(ps, line, "a family's samples apart");
	if (*p++ != ' ' || isspace((unsigned char)*p))
		return refuse(ps, line, "no single space before the value");
	s->value = strtod(p, &end);
	if (end == p || *end)
		return refuse(ps, line, "a value that is no float (or a timestamp)");
	if (!strcmp(f->type, "counter") &&
	    (strlen(s->name) < 6 || strcmp(s->name + strlen(s->name) - 6, "_total") ||
	     !(s->value >= 0)))
		return refuse(ps, line, "a counter not named _total, or negative");
	for (size_t i = 0; i < ps->ns; i++)
		if (!strcmp(ps->s[i].name, s->name) &&
		    !strcmp(ps->s[i].labels, s->labels))
			return refuse(ps, line, "a sample twice");
	ps->ns++;
	return 0;
}

/* Returns 0, or -1 with ps->err saying where and why. */
static int parse(struct parsed *ps, const char *text)
{
	int line = 1;

	memset(ps, 0, sizeof(*ps));
	for (const unsigned char *u = (const unsigned char *)text; *u;) {
		size_t n = utf8_len(u);

		if (!n)
			return refuse(ps, 0, "not UTF-8");
		u += n;
	}
	if (*text && text[strlen(text) - 1] != '\n')
		return refuse(ps, 0, "the last line does not end");
	for (const char *l = text; *l; line++) {
		size_t len = strcspn(l, "\n");
		char buf[1024];
		int ret;

		if (len >= sizeof(buf))
			return refuse(ps, line, "too long");
		memcpy(buf, l, len);
		buf[len] = 0;
		l += len + 1;
		if (!len)
			continue;	/* the format ignores empty lines */
		ret = buf[0] == '#' ? comment(ps, buf, line) : sample(ps, buf, line);
		if (ret)
			return ret;
	}
	return 0;
}

/* The value of name{labels}, or NaN when it is not there. */
static double value_of(const struct parsed *ps, const char *name,
		       const char *labels)
{
	for (size_t i = 0; i < ps->ns; i++)
		if (!strcmp(ps->s[i].name, name) && !strcmp(ps->s[i].labels, labels))
			return ps->s[i].value;
	return NAN;
}

/* ---- the cases ------------------------------------------------------------ */

START_TEST(the_parser_refuses_what_the_format_forbids)
{
	static const char *const bad[] = {
		"x 1\n",						/* no TYPE */
		"# TYPE x gauge\nx 1",					/* no end */
		"# TYPE x gauge\nx 1 1700000000\n",			/* timestamp */
		"# TYPE x gauge\nx one\n",
		"# TYPE 1x gauge\n1x 1\n",
		"# TYPE x gauge\nx{a=\"1\\t\"} 1\n",			/* escape */
		"# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",
		"# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
		"# TYPE x gauge\n# TYPE y gauge\ny 1\nx 1\n",		/* apart */
		"# TYPE x counter\nx 1\n",				/* _total */
		"# TYPE x gauge\n# TYPE x gauge\nx 1\n",
		"# TYPE x gauge\nx{a=\"\xff\"} 1\n",			/* UTF-8 */
	};
	struct parsed *ps = malloc(sizeof(*ps));

	ck_assert_ptr_nonnull(ps);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(parse(ps, bad[i]) < 0, "took: %s", bad[i]);
	ck_assert_msg(parse(ps, "# HELP x_total A \\\\ and \\n.\n# TYPE x_total "
			    "counter\nx_total{a=\"\\\"\\n\\\\\",b=\"\"} 1.5e3\n"
			    "# comment\n\n# TYPE y gauge\ny NaN\ny{a=\"1\"} -Inf\n")
		      == 0, "refused: %s", ps->err);
	ck_assert(value_of(ps, "x_total", "a=\"\"\n\\\",b=\"\"") == 1500);
	free(ps);
}
END_TEST

/* The counters of cg_stats, by the suffix of their metric name. */
#define COUNTERS(s)                                                           \
	{ "wp_faults_total", (s).wp_faults },                                 \
	{ "fork_events_total", (s).fork_events },                             \
	{ "pages_shared_by_fork_total", (s).pages_shared_by_fork },           \
	{ "pages_made_exclusive_total", (s).pages_made_exclusive },           \
	{ "remaps_total", (s).remaps }, { "removals_total", (s).removals },   \
	{ "unmaps_total", (s).unmaps }, { "thp_splits_total", (s).thp_splits },\
	{ "audits_total", (s).audits }, { "mismatches_total", (s).mismatches },\
	{ "regions", (s).regions }, { "registered_bytes", (s).registered_bytes },\
	{ "pins", (s).pins }, { "pin_violations_total", (s).pin_violations },  \
	{ "unshare_copies_total", (s).unshare_copies },                        \
	{ "unshare_reuses_total", (s).unshare_reuses }

#define LEN1 (16 * PG)
#define LEN2 (8 * PG)
#define NPINS 3

START_TEST(metrics_parse_strictly_and_show_what_this_client_did)
{
	struct parsed *ps = malloc(sizeof(*ps));
	struct h_run *r = malloc(sizeof(*r));
	char *a = h_map(H_4K, LEN1, 'A'), *b = h_map(H_4K, LEN2, 'B');
	struct cg *cg = h_open(H_DAEMON);
	struct cg_pin *pins[NPINS];
	char labels[64], up[300];
	struct cg_stats s;

	ck_assert_ptr_nonnull(ps);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(cg_register(cg, a, LEN1, 0), 0);
	ck_assert_int_eq(cg_register(cg, b, LEN2, 0), 0);
	for (int i = 0; i < NPINS; i++)
		ck_assert_int_eq(cg__pin(cg, a + i * 2 * PG, PG, CG_PIN_RO,
					 "vmsplice", &pins[i]), 0);
	for (size_t off = 0; off < LEN2; off += PG)
		b[off] = 'b';	/* write faults to count */
	h_run_cmd(r, "%s --socket '%s' audit %d >/dev/null 2>&1", h_ctl_path(),
		  h_socket(), (int)getpid());
	ck_assert_int_eq(r->status, 0);
	s = ph_stats(cg);

	h_run_cmd(r, "%s --socket '%s' metrics 2>&1", h_ctl_path(), h_socket());
	ck_assert_msg(r->status == 0, "exit %d:\n%s", r->status, r->out);
	ck_assert_msg(parse(ps, r->out) == 0, "%s in:\n%s", ps->err, r->out);
	snprintf(up, sizeof(up), "socket=\"%s\"", h_socket());
	ck_assert(value_of(ps, "cowguard_up", up) == 1);
	ck_assert(value_of(ps, "cowguard_clients", "") >= 1);
	snprintf(labels, sizeof(labels), "pid=\"%d\",uid=\"%u\"", (int)getpid(),
		 (unsigned)getuid());
	/* What the test did, and then every counter as cg_stats() has it. */
	ck_assert(value_of(ps, "cowguard_client_registered_bytes", labels) ==
		  LEN1 + LEN2);
	ck_assert(value_of(ps, "cowguard_client_regions", labels) == 2);
	ck_assert(value_of(ps, "cowguard_client_pins", labels) == NPINS);
	/* At least one: a fault unprotects the exclusive pages around it. */
	ck_assert(value_of(ps, "cowguard_client_wp_faults_total", labels) >= 1);
	ck_assert(value_of(ps, "cowguard_client_audits_total", labels) >= 1);
	ck_assert(value_of(ps, "cowguard_client_pages_present", labels) ==
		  (LEN1 + LEN2) / PG);
	struct { const char *name; uint64_t v; } want[] = { COUNTERS(s) };
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
		char name[128];

		snprintf(name, sizeof(name), "cowguard_client_%s", want[i].name);
		ck_assert_msg(value_of(ps, name, labels) == (double)want[i].v,
			      "%s{%s} is %g, cg_stats says %llu", name, labels,
			      value_of(ps, name, labels),
			      (unsigned long long)want[i].v);
	}
	for (int i = 0; i < NPINS; i++)
		ck_assert_int_eq(cg_unpin(pins[i]), 0);
	cg_close(cg);
	munmap(a, LEN1);
	munmap(b, LEN2);
	free(r);
	free(ps);
}
END_TEST

START_TEST(a_daemon_that_does_not_answer_is_cowguard_up_0_with_its_socket_escaped)
{
	/* A socket label with each character the format escapes. */
	static const char path[] = "/nonexistent/a\"b\\c\nd.sock";
	struct parsed *ps = malloc(sizeof(*ps));
	struct h_run *r = malloc(sizeof(*r));
	char label[128];

	ck_assert_ptr_nonnull(ps);
	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "%s --socket '%s' metrics 2>/dev/null", h_ctl_path(), path);
	ck_assert_int_eq(r->status, 2);
	ck_assert_msg(parse(ps, r->out) == 0, "%s in:\n%s", ps->err, r->out);
	snprintf(label, sizeof(label), "socket=\"%s\"", path);
	ck_assert_msg(value_of(ps, "cowguard_up", label) == 0,
		      "no cowguard_up 0 for the path in:\n%s", r->out);
	ck_assert_uint_eq(ps->ns, 1);
	free(r);
	free(ps);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl exports Prometheus metrics");
	TCase *tc = tcase_create("cowguardctl");

	h_timeout(tc, 15);
	h_add(tc, the_parser_refuses_what_the_format_forbids);
	h_add(tc, metrics_parse_strictly_and_show_what_this_client_did);
	h_add(tc, a_daemon_that_does_not_answer_is_cowguard_up_0_with_its_socket_escaped);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
