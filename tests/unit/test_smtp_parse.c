/*
 * Unit tests for smtp/smtp_parse.c: reverse/forward paths (RFC 5321 4.1.2,
 * RFC 6531 3.3), ESMTP parameters, address re-quoting, UTF-8 validation and
 * BDAT arguments (RFC 3030).
 *
 * Inputs are copied into malloc'd buffers of exact size (string plus NUL) so
 * that ASan catches reads past the end of the command line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

/* Allocations a failing assertion would leak are freed by the teardown. */
#define MAX_TRACKED 16
static void *tracked[MAX_TRACKED];

static void *track(void *p)
{
	assert_non_null(p);
	for (size_t i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == NULL) {
			tracked[i] = p;
			return p;
		}
	fail_msg("test bug: too many live allocations");
	return NULL;
}

static void untrack_free(void *p)
{
	for (size_t i = 0; i < MAX_TRACKED && p != NULL; i++)
		if (tracked[i] == p)
			tracked[i] = NULL;
	free(p);
}

static int free_tracked(void **state)
{
	(void)state;
	for (size_t i = 0; i < MAX_TRACKED; i++) {
		free(tracked[i]);
		tracked[i] = NULL;
	}
	return 0;
}

/* A private, exact-size copy of s. */
static char *dup_exact(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = track(malloc(n));
	memcpy(p, s, n);
	return p;
}

/* Parse s; must succeed. path and *params_off (offset of the parameters in
 * s) are returned. */
static void parse_ok(const char *s, int allow_null, struct smtp_path *path, const char **params)
{
	char *copy = dup_exact(s);
	const char *params_r = NULL, *why = NULL;
	if (smtp_parse_path(copy, allow_null, path, &params_r, &why) != 0)
		fail_msg("smtp_parse_path(\"%s\", %d) failed: %s", s, allow_null,
			 why != NULL ? why : "(no reason)");
	assert_non_null(params_r);
	assert_true(params_r >= copy && params_r <= copy + strlen(copy));
	if (params != NULL)
		*params = s + (params_r - copy); /* same offset in the caller's string */
	untrack_free(copy);
}

static void parse_bad(const char *s, int allow_null)
{
	char *copy = dup_exact(s);
	struct smtp_path path;
	const char *params_r = NULL, *why = NULL;
	if (smtp_parse_path(copy, allow_null, &path, &params_r, &why) == 0)
		fail_msg("smtp_parse_path(\"%s\", %d) accepted it: local \"%s\" domain \"%s\"", s,
			 allow_null, path.local, path.domain);
	assert_non_null(why);
	untrack_free(copy);
}

static void check_path(const char *s, const char *local, const char *domain)
{
	struct smtp_path path;
	const char *params;
	parse_ok(s, 0, &path, &params);
	assert_string_equal(path.local, local);
	assert_string_equal(path.domain, domain);
	assert_int_equal(path.null, 0);
	assert_int_equal(path.postmaster_only, 0);
	assert_string_equal(params, "");
}

static char *repeat(char c, size_t n)
{
	char *s = track(malloc(n + 1));
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- smtp_parse_path ---- */

static void test_path_simple(void **state)
{
	struct smtp_path path;
	const char *params;

	(void)state;
	parse_ok("<a@b.c>", 0, &path, &params);
	assert_string_equal(path.local, "a");
	assert_string_equal(path.domain, "b.c");
	assert_int_equal(path.null, 0);
	assert_int_equal(path.domain_literal, 0);
	assert_int_equal(path.utf8, 0);
	assert_int_equal(path.postmaster_only, 0);
	assert_string_equal(params, "");

	check_path("<first.last+tag@mail.example.org>", "first.last+tag", "mail.example.org");
	check_path("<!#$%&'*+-/=?^_`{|}~@x.org>", "!#$%&'*+-/=?^_`{|}~", "x.org");
	check_path("<a@localhost>", "a", "localhost");
	check_path("<a@b-c.d-e.f>", "a", "b-c.d-e.f");
	check_path("<A@B.C>", "A", "B.C"); /* case kept: the local part MAY be case-sensitive */
	check_path("<a@123.example>", "a", "123.example");
	check_path("<a@1>", "a", "1"); /* Let-dig: a digit may start a label */
}

static void test_path_params_pointer(void **state)
{
	struct smtp_path path;
	const char *params;
	const char *s = "<a@b.c> SIZE=100 BODY=8BITMIME";

	(void)state;
	parse_ok(s, 0, &path, &params);
	assert_ptr_equal(params, s + 8);
	assert_string_equal(params, "SIZE=100 BODY=8BITMIME");

	parse_ok("<a@b.c>   SMTPUTF8", 0, &path, &params);
	assert_string_equal(params, "SMTPUTF8");
	parse_ok("<a@b.c>   ", 0, &path, &params);
	assert_string_equal(params, "");
	parse_ok("<> SIZE=10", 1, &path, &params);
	assert_int_equal(path.null, 1);
	assert_string_equal(params, "SIZE=10");
	parse_ok("<Postmaster> NOTIFY=NEVER", 0, &path, &params);
	assert_int_equal(path.postmaster_only, 1);
	assert_string_equal(params, "NOTIFY=NEVER");

	/* the parameters are separated by SP (4.1.2 Mail-parameters) */
	parse_bad("<a@b.c>SIZE=100", 0);
	parse_bad("<a@b.c>>", 0);
	parse_bad("<a@b.c>\tSIZE=100", 0);
	parse_bad("<>SIZE=10", 1);
}

static void test_path_null(void **state)
{
	struct smtp_path path;
	const char *params;

	(void)state;
	/* "<>" is a Reverse-path only (4.1.2): MAIL yes, RCPT no. */
	parse_ok("<>", 1, &path, &params);
	assert_int_equal(path.null, 1);
	assert_string_equal(path.local, "");
	assert_string_equal(path.domain, "");
	assert_string_equal(params, "");
	parse_bad("<>", 0);
	parse_bad("< >", 1);
	parse_bad("<", 1);
	parse_bad("", 1);
}

static void test_path_leading_space(void **state)
{
	struct smtp_path path;
	const char *params;

	(void)state;
	/* 4.1.1.2 has no space after "FROM:", but many clients send one. */
	parse_ok(" <a@b.c>", 0, &path, &params);
	assert_string_equal(path.local, "a");
	parse_ok("   <a@b.c> X=1", 0, &path, &params);
	assert_string_equal(params, "X=1");
	parse_ok(" <>", 1, &path, &params);
	assert_int_equal(path.null, 1);
	parse_bad(" ", 0);
	parse_bad("\t<a@b.c>", 0);
}

static void test_path_missing_brackets(void **state)
{
	(void)state;
	parse_bad("a@b.c", 0);
	parse_bad("<a@b.c", 0);
	parse_bad("a@b.c>", 0);
	parse_bad("<a@b.c x", 0);
	parse_bad("\"<a@b.c>\"", 0);
}

static void test_path_missing_domain(void **state)
{
	(void)state;
	parse_bad("<a@>", 0);
	parse_bad("<a>", 0);
	parse_bad("<@b.c>", 0);
	parse_bad("<a@ b.c>", 0);
	parse_bad("<\"a b\">", 0);
	parse_bad("<postmaster@>", 0);
}

static void test_path_local_dots(void **state)
{
	(void)state;
	/* Dot-string = Atom *("." Atom): no empty atoms (4.1.2) */
	parse_bad("<a..b@c.d>", 0);
	parse_bad("<.a@c.d>", 0);
	parse_bad("<a.@c.d>", 0);
	parse_bad("<.@c.d>", 0);
	check_path("<a.b.c@d.e>", "a.b.c", "d.e");
}

static void test_path_bad_local_chars(void **state)
{
	(void)state;
	parse_bad("<a b@c.d>", 0);
	parse_bad("<a(b)@c.d>", 0);
	parse_bad("<a,b@c.d>", 0);
	parse_bad("<a:b@c.d>", 0);
	parse_bad("<a;b@c.d>", 0);
	parse_bad("<a[b@c.d>", 0);
	parse_bad("<a\\b@c.d>", 0);
	parse_bad("<a\"b@c.d>", 0);
	parse_bad("<a\x01@c.d>", 0);
	parse_bad("<a\x7f@c.d>", 0);
	parse_bad("<a@b@c.d>", 0);
}

static void test_path_domain_syntax(void **state)
{
	(void)state;
	parse_bad("<a@b..c>", 0);
	parse_bad("<a@.b.c>", 0);
	/* 4.1.2 Domain = sub-domain *("." sub-domain): no trailing dot */
	parse_bad("<a@b.c.>", 0);
	parse_bad("<a@.>", 0);
	/* sub-domain = Let-dig [Ldh-str]; Ldh-str ends with Let-dig */
	parse_bad("<a@-b.c>", 0);
	parse_bad("<a@b.-c>", 0);
	parse_bad("<a@b-.c>", 0);
	parse_bad("<a@b.c->", 0);
	parse_bad("<a@->", 0);
	/* "the underscore character is not permitted" (4.1.2) */
	parse_bad("<a@b_c.d>", 0);
	parse_bad("<a@b c.d>", 0);
	parse_bad("<a@b.c\\>", 0);
	parse_bad("<a@b.c >", 0);
	check_path("<a@b--c.d>", "a", "b--c.d");
	check_path("<a@xn--bcher-kva.example>", "a", "xn--bcher-kva.example");
}

static void test_path_domain_lengths(void **state)
{
	char buf[1024];
	(void)state;

	/* label of 63 octets is fine, 64 is not (RFC 1035 2.3.4) */
	char *l63 = repeat('a', 63), *l64 = repeat('b', 64);
	snprintf(buf, sizeof(buf), "<x@%s.org>", l63);
	parse_ok(buf, 0, &(struct smtp_path){ 0 }, NULL);
	snprintf(buf, sizeof(buf), "<x@%s.org>", l64);
	parse_bad(buf, 0);

	/* RFC 5321 4.5.3.1.2: a domain is at most 255 octets. */
	snprintf(buf, sizeof(buf), "<x@%s.%s.%s.%s>", l63, l63, l63, l63); /* 255 */
	struct smtp_path path;
	parse_ok(buf, 0, &path, NULL);
	assert_int_equal(strlen(path.domain), 255);
	snprintf(buf, sizeof(buf), "<x@a.%s.%s.%s.%s>", l63, l63, l63, l63); /* 257 */
	parse_bad(buf, 0);
	snprintf(buf, sizeof(buf), "<x@%s.%s.%s.%.62s.b>", l63, l63, l63, l63); /* 256 */
	parse_bad(buf, 0);
	char *many = repeat('a', 901); /* "a.a.a...a": short labels, far too long */
	for (size_t i = 1; i < 900; i += 2)
		many[i] = '.';
	snprintf(buf, sizeof(buf), "<x@%s>", many);
	parse_bad(buf, 0);
	untrack_free(l63);
	untrack_free(l64);
	untrack_free(many);
}

static void test_path_local_lengths(void **state)
{
	char buf[2048];
	struct smtp_path path;
	(void)state;

	/* RFC 5321 4.5.3.1.1 sets 64 octets as the minimum to accept and asks
	 * for no limits where possible; Petrel keeps up to SMTP_ADDR_MAX - 1. */
	char *l64 = repeat('a', 64);
	snprintf(buf, sizeof(buf), "<%s@b.c>", l64);
	parse_ok(buf, 0, &path, NULL);
	assert_string_equal(path.local, l64);

	char *l511 = repeat('a', SMTP_ADDR_MAX - 1);
	snprintf(buf, sizeof(buf), "<%s@b.c>", l511);
	parse_ok(buf, 0, &path, NULL);
	assert_int_equal(strlen(path.local), SMTP_ADDR_MAX - 1);

	char *l512 = repeat('a', SMTP_ADDR_MAX);
	snprintf(buf, sizeof(buf), "<%s@b.c>", l512);
	parse_bad(buf, 0);
	snprintf(buf, sizeof(buf), "<\"%s\"@b.c>", l512);
	parse_bad(buf, 0);
	snprintf(buf, sizeof(buf), "<%s>", l512); /* no domain, and too long */
	parse_bad(buf, 0);

	char *l1500 = repeat('a', 1500);
	snprintf(buf, sizeof(buf), "<%s@b.c>", l1500);
	parse_bad(buf, 0);
	untrack_free(l64);
	untrack_free(l511);
	untrack_free(l512);
	untrack_free(l1500);
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE; quoted-pairSMTP = "\" %d32-126
 * (4.1.2). The unquoted local part is stored. */
static void test_path_quoted(void **state)
{
	struct smtp_path path;
	(void)state;

	check_path("<\"a b\"@x.org>", "a b", "x.org");
	check_path("<\"a\\\"b\"@x.org>", "a\"b", "x.org");
	check_path("<\"a\\\\b\"@x.org>", "a\\b", "x.org");
	check_path("<\"a\\ b\"@x.org>", "a b", "x.org");
	check_path("<\"Joe\\,Smith\"@x.org>", "Joe,Smith", "x.org");
	check_path("<\"abc\"@x.org>", "abc", "x.org");
	check_path("<\"a..b\"@x.org>", "a..b", "x.org");
	check_path("<\".a.\"@x.org>", ".a.", "x.org");
	check_path("<\"a@b\"@x.org>", "a@b", "x.org");
	check_path("<\"<>\"@x.org>", "<>", "x.org");
	check_path("<\"\"@x.org>", "", "x.org");
	parse_ok("<\"a b\"@x.org> SIZE=1", 0, &path, NULL);

	parse_bad("<\"abc@x.org>", 0);      /* unterminated */
	parse_bad("<\"abc\\\"@x.org>", 0);  /* escaped closing quote: unterminated */
	parse_bad("<\"a\\", 0);             /* backslash at the end of the line */
	parse_bad("<\"a\x01\"@x.org>", 0);  /* control character */
	parse_bad("<\"a\x7f\"@x.org>", 0);
	parse_bad("<\"a\\\x01\"@x.org>", 0); /* quoted-pair of a control */
	parse_bad("<\"a\\\t\"@x.org>", 0);
	parse_bad("<\"a\"b@x.org>", 0);     /* quoted string then atext */
	parse_bad("<a\"b\"@x.org>", 0);
	parse_bad("<\"a\"\"b\"@x.org>", 0);
	parse_bad("<\"a\"x.org>", 0);
}

/* A-d-l (source route): "MUST BE accepted, SHOULD NOT be generated, and
 * SHOULD be ignored" (4.1.2, Appendix C). */
static void test_path_source_route(void **state)
{
	struct smtp_path path;
	const char *params;
	(void)state;

	parse_ok("<@r1,@r2:a@b.c>", 0, &path, &params);
	assert_string_equal(path.local, "a");
	assert_string_equal(path.domain, "b.c");
	assert_string_equal(params, "");
	check_path("<@relay.example:\"x y\"@b.c>", "x y", "b.c");
	parse_ok("<@r1:a@b.c> SIZE=5", 0, &path, &params);
	assert_string_equal(params, "SIZE=5");

	parse_bad("<@r1,@r2 a@b.c>", 0); /* no ":" */
	parse_bad("<@r1:>", 0);
	parse_bad("<@r1:>", 1);
}

/* The route is At-domain *("," At-domain), At-domain = "@" Domain: the ':'
 * must be found inside the path, after a well-formed route. */
static void test_path_source_route_validated(void **state)
{
	(void)state;
	parse_bad("<@:a@b.c>", 0);
	parse_bad("<@r1 x:a@b.c>", 0);
	parse_bad("<@r1>:a@b.c>", 0);
	parse_bad("<@r1> SIZE=1:a@b.c>", 0);
}

/* 4.1.3 address literals: kept with their brackets. */
static void test_path_address_literal(void **state)
{
	struct smtp_path path;
	const char *params;
	(void)state;

	parse_ok("<a@[127.0.0.1]>", 0, &path, &params);
	assert_string_equal(path.domain, "[127.0.0.1]");
	assert_int_equal(path.domain_literal, 1);
	assert_string_equal(params, "");
	parse_ok("<a@[IPv6:::1]> SIZE=2", 0, &path, &params);
	assert_string_equal(path.domain, "[IPv6:::1]");
	assert_int_equal(path.domain_literal, 1);
	assert_string_equal(params, "SIZE=2");
	parse_ok("<a@[IPv6:2001:db8::1]>", 0, &path, NULL);
	assert_string_equal(path.domain, "[IPv6:2001:db8::1]");
	check_path("<postmaster@[192.0.2.1]>", "postmaster", "[192.0.2.1]");

	parse_bad("<a@[127.0.0.1>", 0);
	parse_bad("<a@[127.0.0.1]x>", 0);
	parse_bad("<a@[127.0.0.1]", 0);
	parse_bad("<a@[1 2]>", 0);
	parse_bad("<a@[1[2]>", 0);
	parse_bad("<a@[1\\2]>", 0);
	parse_bad("<a@x[1.2.3.4]>", 0);
	char buf[400];
	char *big = repeat('1', 300);
	snprintf(buf, sizeof(buf), "<a@[%s]>", big);
	parse_bad(buf, 0);
	untrack_free(big);
}

/* address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]" and
 * each alternative has at least one character (4.1.3). */
static void test_path_address_literal_empty(void **state)
{
	(void)state;
	parse_bad("<a@[]>", 0);
}

/* 4.5.1 / 4.1.1.3: "Postmaster" without a domain, case-insensitive. */
static void test_path_postmaster(void **state)
{
	struct smtp_path path;
	const char *params;
	(void)state;

	parse_ok("<Postmaster>", 0, &path, &params);
	assert_int_equal(path.postmaster_only, 1);
	assert_string_equal(path.local, "Postmaster");
	assert_string_equal(path.domain, "");
	assert_string_equal(params, "");
	parse_ok("<postmaster>", 0, &path, NULL);
	assert_int_equal(path.postmaster_only, 1);
	parse_ok("<POSTMASTER>", 0, &path, NULL);
	assert_int_equal(path.postmaster_only, 1);
	parse_ok("<PostMaster>", 1, &path, NULL);
	assert_int_equal(path.postmaster_only, 1);
	parse_ok("<postmaster@example.org>", 0, &path, NULL);
	assert_int_equal(path.postmaster_only, 0);
	assert_string_equal(path.domain, "example.org");

	parse_bad("<admin>", 0);
	parse_bad("<postmaste>", 0);
	parse_bad("<postmasters>", 0);
	parse_bad("<postmaster.>", 0);
	parse_bad("<Postmaster", 0);
}

/* RFC 6531 3.3: Mailbox may contain UTF-8 (sub-domain = U-label, atext =
 * UTF8-non-ascii); the octets must be well-formed UTF-8 (RFC 3629). */
static void test_path_utf8(void **state)
{
	struct smtp_path path;
	(void)state;

	parse_ok("<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", 0, &path, NULL);
	assert_int_equal(path.utf8, 1);
	assert_string_equal(path.local, "j\xc3\xb6rg");
	assert_string_equal(path.domain, "b\xc3\xbc" "cher.example");
	/* 3-octet (CJK) and 4-octet (emoji) sequences */
	parse_ok("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", 0,
		 &path, NULL);
	assert_int_equal(path.utf8, 1);
	parse_ok("<\xf0\x9f\x98\x80@x.org>", 0, &path, NULL);
	assert_int_equal(path.utf8, 1);
	/* only the domain is UTF-8 */
	parse_ok("<a@\xc3\xa9.example>", 0, &path, NULL);
	assert_int_equal(path.utf8, 1);
	/* inside a quoted string */
	parse_ok("<\"j\xc3\xb6 s\"@x.org>", 0, &path, NULL);
	assert_int_equal(path.utf8, 1);
	assert_string_equal(path.local, "j\xc3\xb6 s");
	/* ASCII only: flag clear */
	parse_ok("<a@b.c>", 0, &path, NULL);
	assert_int_equal(path.utf8, 0);
}

static void test_path_utf8_malformed(void **state)
{
	(void)state;
	parse_bad("<a\xc0\x80@b.c>", 0);          /* overlong NUL */
	parse_bad("<a\xc1\xbf@b.c>", 0);          /* overlong */
	parse_bad("<a\xe0\x80\xaf@b.c>", 0);      /* overlong '/' */
	parse_bad("<a\xed\xa0\x80@b.c>", 0);      /* surrogate U+D800 */
	parse_bad("<a\xed\xbf\xbf@b.c>", 0);      /* surrogate U+DFFF */
	parse_bad("<a\xe4\xb8@b.c>", 0);          /* truncated */
	parse_bad("<a@b.c\xe4\xb8>", 0);          /* truncated at the end of the domain */
	parse_bad("<a@b\xc3>", 0);
	parse_bad("<a\x80@b.c>", 0);              /* lone continuation */
	parse_bad("<a\xf4\x90\x80\x80@b.c>", 0);  /* above U+10FFFF */
	parse_bad("<a\xf5\x80\x80\x80@b.c>", 0);
	parse_bad("<a\xff@b.c>", 0);
	parse_bad("<\"a\xc0\x80\"@b.c>", 0);      /* in a quoted string too */
	parse_bad("<\"a\xed\xa0\x80\"@b.c>", 0);
	parse_bad("<a@\xc0\xae.b.c>", 0);         /* overlong '.' in the domain */
}

static int utf8(const char *s, size_t len)
{
	char *copy = track(malloc(len ? len : 1)); /* exact size: no NUL after it */
	memcpy(copy, s, len);
	int r = smtp_utf8_valid(copy, len);
	untrack_free(copy);
	return r;
}

#define UTF8(lit) utf8(lit, sizeof(lit) - 1)

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(UTF8(""));
	assert_true(UTF8("plain ascii"));
	assert_true(UTF8("a\0b"));
	assert_true(UTF8("\xc2\x80"));             /* U+0080 */
	assert_true(UTF8("\xdf\xbf"));             /* U+07FF */
	assert_true(UTF8("\xe0\xa0\x80"));         /* U+0800 */
	assert_true(UTF8("\xed\x9f\xbf"));         /* U+D7FF */
	assert_true(UTF8("\xee\x80\x80"));         /* U+E000 */
	assert_true(UTF8("\xef\xbf\xbf"));         /* U+FFFF */
	assert_true(UTF8("\xf0\x90\x80\x80"));     /* U+10000 */
	assert_true(UTF8("\xf4\x8f\xbf\xbf"));     /* U+10FFFF */
	assert_false(UTF8("\xc0\x80"));
	assert_false(UTF8("\xc1\xbf"));
	assert_false(UTF8("\xe0\x9f\xbf"));        /* overlong U+07FF */
	assert_false(UTF8("\xf0\x8f\xbf\xbf"));    /* overlong U+FFFF */
	assert_false(UTF8("\xed\xa0\x80"));
	assert_false(UTF8("\xed\xbf\xbf"));
	assert_false(UTF8("\xf4\x90\x80\x80"));
	assert_false(UTF8("\xf8\x88\x80\x80\x80"));
	assert_false(UTF8("\x80"));
	assert_false(UTF8("\xbf"));
	assert_false(UTF8("\xfe"));
	assert_false(UTF8("\xff"));
	/* truncated at the end of the buffer (must not read past it) */
	assert_false(UTF8("\xc3"));
	assert_false(UTF8("a\xe4\xb8"));
	assert_false(UTF8("\xf0\x9f\x98"));
	/* a non-continuation where a continuation is due */
	assert_false(UTF8("\xc3" "a"));
	assert_false(UTF8("\xe4\xb8" "a"));
	assert_false(UTF8("\xe4" "a\xb8"));
	/* the length is honoured: the bad octet is outside it */
	assert_true(utf8("ab\xff", 2));
}

/* ---- smtp_next_param ---- */

static void test_next_param(void **state)
{
	char key[32], value[64];
	char *list = dup_exact("SIZE=100 BODY=8BITMIME SMTPUTF8");
	const char *s = list;
	(void)state;

	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(key, "SIZE");
	assert_string_equal(value, "100");
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(key, "BODY");
	assert_string_equal(value, "8BITMIME");
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(key, "SMTPUTF8");
	assert_string_equal(value, "");
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 0);
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 0);
	untrack_free(list);

	/* leading, repeated and trailing spaces */
	list = dup_exact("  A=1   B-2=x  ");
	s = list;
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(key, "A");
	assert_string_equal(value, "1");
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(key, "B-2");
	assert_string_equal(value, "x");
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 0);
	untrack_free(list);

	list = dup_exact("");
	s = list;
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 0);
	untrack_free(list);

	/* esmtp-value allows printable ASCII except "=" and, per RFC 6531, UTF-8 */
	list = dup_exact("ENVID=a+2Bb<c>~ ORCPT=rfc822;\xc3\xa9@x");
	s = list;
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(value, "a+2Bb<c>~");
	assert_int_equal(smtp_next_param(&s, key, sizeof(key), value, sizeof(value)), 1);
	assert_string_equal(key, "ORCPT");
	assert_string_equal(value, "rfc822;\xc3\xa9@x");
	untrack_free(list);
}

static int one_param(const char *in, size_t keysz, size_t valuesz)
{
	char key[64], value[64];
	char *copy = dup_exact(in);
	const char *s = copy;
	assert_true(keysz <= sizeof(key) && valuesz <= sizeof(value));
	int r = smtp_next_param(&s, key, keysz, value, valuesz);
	if (r == 1) {
		assert_true(strlen(key) < keysz);
		assert_true(strlen(value) < valuesz);
	}
	untrack_free(copy);
	return r;
}

static void test_next_param_bad(void **state)
{
	(void)state;
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	assert_int_equal(one_param("-SIZE=1", 32, 32), -1);
	assert_int_equal(one_param("SI_ZE=1", 32, 32), -1);
	assert_int_equal(one_param("=1", 32, 32), -1);
	assert_int_equal(one_param("SIZE:1", 32, 32), -1);
	assert_int_equal(one_param("\xc3\xa9=1", 32, 32), -1);
	/* esmtp-value = 1*(%d33-60 / %d62-126): not empty, no "=" */
	assert_int_equal(one_param("SIZE=", 32, 32), -1);
	assert_int_equal(one_param("SIZE= 1", 32, 32), -1);
	assert_int_equal(one_param("SIZE=1=2", 32, 32), -1);
	assert_int_equal(one_param("A=b=", 32, 32), -1);
	assert_int_equal(one_param("SIZE==1", 32, 32), -1);
	assert_int_equal(one_param("X=a\x01", 32, 32), -1);
	assert_int_equal(one_param("X=a\tb", 32, 32), -1);
	assert_int_equal(one_param("X=a\x7f", 32, 32), -1);
	/* key or value longer than the buffers */
	assert_int_equal(one_param("ABCDEFGH=1", 8, 32), -1);
	assert_int_equal(one_param("ABCDEFG=1", 8, 32), 1);
	assert_int_equal(one_param("K=12345678", 32, 8), -1);
	assert_int_equal(one_param("K=1234567", 32, 8), 1);
}

/* ---- smtp_path_address ---- */

static void check_address(const char *in, const char *want)
{
	struct smtp_path path;
	char out[2048];
	parse_ok(in, 1, &path, NULL);
	memset(out, 'Z', sizeof(out));
	smtp_path_address(&path, out, sizeof(out));
	assert_string_equal(out, want);
}

/* 4.1.2: "the sending system SHOULD transmit the form that uses the minimum
 * quoting possible": quote only when the local part is not a Dot-string. */
static void test_path_address(void **state)
{
	(void)state;
	check_address("<a@b.c>", "a@b.c");
	check_address("<A.B@C.D>", "A.B@C.D");
	check_address("<\"a b\"@x.org>", "\"a b\"@x.org");
	check_address("<\"a\\\"b\"@x.org>", "\"a\\\"b\"@x.org");
	check_address("<\"a\\\\b\"@x.org>", "\"a\\\\b\"@x.org");
	check_address("<\"abc\"@x.org>", "abc@x.org");
	check_address("<\"a.b\"@x.org>", "a.b@x.org");
	check_address("<\"a..b\"@x.org>", "\"a..b\"@x.org");
	check_address("<\".a\"@x.org>", "\".a\"@x.org");
	check_address("<\"a.\"@x.org>", "\"a.\"@x.org");
	check_address("<\"a@b\"@x.org>", "\"a@b\"@x.org");
	check_address("<\"Joe\\,Smith\"@x.org>", "\"Joe,Smith\"@x.org");
	check_address("<@r1,@r2:a@b.c>", "a@b.c");
	check_address("<a@[127.0.0.1]>", "a@[127.0.0.1]");
	check_address("<j\xc3\xb6rg@b\xc3\xbc.example>", "j\xc3\xb6rg@b\xc3\xbc.example");
	check_address("<Postmaster>", "Postmaster");
	check_address("<>", "");
}

/* An empty quoted local part (Quoted-string = DQUOTE *QcontentSMTP DQUOTE)
 * must come back quoted, or the address changes meaning. */
static void test_path_address_empty_quoted(void **state)
{
	(void)state;
	check_address("<\"\"@x.org>", "\"\"@x.org");
}

/* Whatever smtp_path_address() writes parses back to the same mailbox. */
static void test_path_address_round_trip(void **state)
{
	static const char *const inputs[] = {
		"<a@b.c>", "<\"a b\"@x.org>", "<\"a\\\"b\\\\c\"@x.org>", "<\".\"@x>",
		"<\"a..b\"@x>", "<\"(x)\"@y>", "<\"\xc3\xa9 \"@x>", "<\xc3\xa9@\xc3\xa9.x>",
		"<a@[IPv6:::1]>", "<Postmaster>", "<\"postmaster\">", "<\"a\\ b\"@c>",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct smtp_path p1, p2;
		char addr[2048], again[2100];
		parse_ok(inputs[i], 0, &p1, NULL);
		smtp_path_address(&p1, addr, sizeof(addr));
		snprintf(again, sizeof(again), "<%s>", addr);
		parse_ok(again, 0, &p2, NULL);
		if (strcmp(p1.local, p2.local) != 0 || strcmp(p1.domain, p2.domain) != 0 ||
		    p1.postmaster_only != p2.postmaster_only)
			fail_msg("%s -> %s -> local \"%s\" domain \"%s\"", inputs[i], addr, p2.local,
				 p2.domain);
	}
}

/* The longest mailbox the parser accepts: a 511-octet quoted local part in
 * which every octet needs a backslash, and a 255-octet domain. With room for
 * it the address is complete and parses back. */
static void test_path_address_worst_case(void **state)
{
	char in[1400], *p = in;
	char *l63 = repeat('d', 63);
	(void)state;
	*p++ = '<';
	*p++ = '"';
	for (int i = 0; i < SMTP_ADDR_MAX - 1; i++) {
		*p++ = '\\';
		*p++ = i % 2 ? '"' : '\\';
	}
	p += sprintf(p, "\"@%s.%s.%s.%s>", l63, l63, l63, l63);
	struct smtp_path p1, p2;
	parse_ok(in, 0, &p1, NULL);
	assert_int_equal(strlen(p1.local), SMTP_ADDR_MAX - 1);
	assert_int_equal(strlen(p1.domain), 255);
	char addr[2 * SMTP_ADDR_MAX + 260], again[sizeof(addr) + 2];
	smtp_path_address(&p1, addr, sizeof(addr));
	assert_int_equal(strlen(addr), 2 * (SMTP_ADDR_MAX - 1) + 2 + 1 + 255);
	snprintf(again, sizeof(again), "<%s>", addr);
	parse_ok(again, 0, &p2, NULL);
	assert_string_equal(p1.local, p2.local);
	assert_string_equal(p1.domain, p2.domain);
	untrack_free(l63);
}

/* Small output buffers: always NUL-terminated, never written past outsz;
 * complete whenever outsz leaves room for it and its NUL (snprintf-like). */
static void test_path_address_truncation(void **state)
{
	static const char *const inputs[] = {
		"<a@b.c>", "<\"a\\\"b c\\\\d\"@example.org>", "<Postmaster>", "<>",
		"<\"x\"@[127.0.0.1]>",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct smtp_path path;
		char full[256];
		parse_ok(inputs[i], 1, &path, NULL);
		smtp_path_address(&path, full, sizeof(full));
		for (size_t outsz = 1; outsz <= strlen(full) + 2; outsz++) {
			char *out = track(malloc(outsz)); /* exact size */
			memset(out, 'Z', outsz);
			smtp_path_address(&path, out, outsz);
			assert_non_null(memchr(out, '\0', outsz));
			if (outsz > strlen(full))
				assert_string_equal(out, full);
			untrack_free(out);
		}
	}
}

/* ---- smtp_parse_bdat (RFC 3030 2: "BDAT" SP chunk-size [SP end-marker]) ---- */

static int bdat(const char *s, uint64_t *size, int *last)
{
	char *copy = dup_exact(s);
	*size = 12345;
	*last = -1;
	int r = smtp_parse_bdat(copy, size, last);
	untrack_free(copy);
	return r;
}

static void test_parse_bdat(void **state)
{
	uint64_t size;
	int last;
	(void)state;

	assert_int_equal(bdat("100", &size, &last), 0);
	assert_int_equal(size, 100);
	assert_int_equal(last, 0);
	assert_int_equal(bdat("100 LAST", &size, &last), 0);
	assert_int_equal(size, 100);
	assert_int_equal(last, 1);
	/* SMTP keywords are case-insensitive (RFC 5321 2.4) */
	assert_int_equal(bdat("100 last", &size, &last), 0);
	assert_int_equal(last, 1);
	assert_int_equal(bdat("100 LaSt", &size, &last), 0);
	assert_int_equal(last, 1);
	assert_int_equal(bdat("0 LAST", &size, &last), 0);
	assert_int_equal(size, 0);
	assert_int_equal(last, 1);
	assert_int_equal(bdat("0", &size, &last), 0);
	assert_int_equal(size, 0);
	assert_int_equal(last, 0);
	assert_int_equal(bdat("007", &size, &last), 0);
	assert_int_equal(size, 7);
	assert_int_equal(bdat("18446744073709551606", &size, &last), 0);
	assert_true(size == UINT64_C(18446744073709551606));

	assert_int_equal(bdat("", &size, &last), -1);
	assert_int_equal(bdat("x", &size, &last), -1);
	assert_int_equal(bdat("LAST", &size, &last), -1);
	assert_int_equal(bdat("100 LASTX", &size, &last), -1);
	assert_int_equal(bdat("100 LAS", &size, &last), -1);
	assert_int_equal(bdat("100 LAST x", &size, &last), -1);
	assert_int_equal(bdat("100x", &size, &last), -1);
	assert_int_equal(bdat("100\tLAST", &size, &last), -1);
	assert_int_equal(bdat("-1", &size, &last), -1);
	assert_int_equal(bdat("+1", &size, &last), -1);
	assert_int_equal(bdat(" 100", &size, &last), -1);
	assert_int_equal(bdat("1 0", &size, &last), -1);
	assert_int_equal(bdat("99999999999999999999999", &size, &last), -1);
	assert_int_equal(bdat("18446744073709551616", &size, &last), -1); /* 2^64 */
	assert_int_equal(bdat("99999999999999999999999 LAST", &size, &last), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_path_simple, free_tracked),
		cmocka_unit_test_teardown(test_path_params_pointer, free_tracked),
		cmocka_unit_test_teardown(test_path_null, free_tracked),
		cmocka_unit_test_teardown(test_path_leading_space, free_tracked),
		cmocka_unit_test_teardown(test_path_missing_brackets, free_tracked),
		cmocka_unit_test_teardown(test_path_missing_domain, free_tracked),
		cmocka_unit_test_teardown(test_path_local_dots, free_tracked),
		cmocka_unit_test_teardown(test_path_bad_local_chars, free_tracked),
		cmocka_unit_test_teardown(test_path_domain_syntax, free_tracked),
		cmocka_unit_test_teardown(test_path_domain_lengths, free_tracked),
		cmocka_unit_test_teardown(test_path_local_lengths, free_tracked),
		cmocka_unit_test_teardown(test_path_quoted, free_tracked),
		cmocka_unit_test_teardown(test_path_source_route, free_tracked),
		cmocka_unit_test_teardown(test_path_source_route_validated, free_tracked),
		cmocka_unit_test_teardown(test_path_address_literal, free_tracked),
		cmocka_unit_test_teardown(test_path_address_literal_empty, free_tracked),
		cmocka_unit_test_teardown(test_path_postmaster, free_tracked),
		cmocka_unit_test_teardown(test_path_utf8, free_tracked),
		cmocka_unit_test_teardown(test_path_utf8_malformed, free_tracked),
		cmocka_unit_test_teardown(test_utf8_valid, free_tracked),
		cmocka_unit_test_teardown(test_next_param, free_tracked),
		cmocka_unit_test_teardown(test_next_param_bad, free_tracked),
		cmocka_unit_test_teardown(test_path_address, free_tracked),
		cmocka_unit_test_teardown(test_path_address_empty_quoted, free_tracked),
		cmocka_unit_test_teardown(test_path_address_round_trip, free_tracked),
		cmocka_unit_test_teardown(test_path_address_worst_case, free_tracked),
		cmocka_unit_test_teardown(test_path_address_truncation, free_tracked),
		cmocka_unit_test_teardown(test_parse_bdat, free_tracked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
