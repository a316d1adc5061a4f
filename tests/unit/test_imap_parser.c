/*
 * Unit tests for imap/imap_parser.c (RFC 3501 9, RFC 7888, RFC 3516).
 *
 * Every case is fed whole, one octet at a time, and split in two at every
 * position; each way must give the same transcript of events:
 *   DONE <tag> <COMMAND> <args>      a command (args serialized, see put_args)
 *   ERR <tag> <reason>               an error (then reset)
 *   LIT <n> sync|nonsync[8] <CMD> <nargs so far>
 *   STREAM <octets>                  a literal the driver consumed itself
 *   FATAL                            the parser gave up on the connection
 * Every chunk is copied into a malloc'd buffer of exactly its size, so that
 * ASan reports any read past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parser.h"

/* ------------------------------------------------------------ transcript */

struct sbuf {
	char *s;
	size_t len, alloc;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->alloc) {
		size_t a = b->alloc ? b->alloc : 256;
		while (a < b->len + n + 1)
			a *= 2;
		b->s = realloc(b->s, a);
		assert_non_null(b->s);
		b->alloc = a;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	sb_putn(b, tmp, (size_t)n);
}

/* octets, with non-printables as \xNN */
static void sb_escaped(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			sb_printf(b, "\\x%02x", c);
		else
			sb_putn(b, (const char *)&c, 1);
	}
}

static void put_args(struct sbuf *b, const struct imap_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sb_puts(b, " ");
		switch (a[i].type) {
		case IMAP_ARG_ATOM:
			sb_puts(b, "A:");
			break;
		case IMAP_ARG_QUOTED:
			sb_puts(b, "Q:");
			break;
		case IMAP_ARG_LITERAL:
			sb_puts(b, a[i].literal8 ? "L8:" : "L:");
			break;
		case IMAP_ARG_NIL:
			sb_puts(b, "NIL:");
			break;
		case IMAP_ARG_STREAMED:
			assert_null(a[i].str);
			sb_printf(b, "%s:%zu", a[i].literal8 ? "S8" : "S", a[i].len);
			continue;
		case IMAP_ARG_LIST:
			assert_true(a[i].list_count == 0 ? a[i].list == NULL : a[i].list != NULL);
			sb_puts(b, "(");
			put_args(b, a[i].list, a[i].list_count);
			sb_puts(b, ")");
			continue;
		}
		assert_non_null(a[i].str);
		assert_int_equal(a[i].str[a[i].len], '\0');
		if (a[i].type != IMAP_ARG_LITERAL || !a[i].literal8)
			assert_int_equal(strlen(a[i].str), a[i].len);
		sb_escaped(b, a[i].str, a[i].len);
	}
}

/* ------------------------------------------------------------ driver */

struct drv {
	const char *policy; /* per literal: a accept, s stream, r reject, x abandon (reset) */
	const struct imap_parser_limits *lim;
};

static void event_sep(struct sbuf *out)
{
	if (out->len > 0)
		sb_puts(out, "|");
}

static void put_error(struct sbuf *out, imap_parser_t *p)
{
	event_sep(out);
	const char *err = imap_parser_error(p);
	assert_non_null(err);
	assert_null(strpbrk(err, "\r\n"));
	sb_printf(out, "ERR %s %s", imap_parser_error_tag(p), err);
}

/* Feed in[0..len) in the chunks that end at cuts[0..ncuts) (the last cut is
 * len); return the transcript (malloc'd). */
static char *run(const char *in, size_t len, const size_t *cuts, size_t ncuts,
		 const struct drv *d)
{
	struct sbuf out = { 0 }, stream = { 0 };
	imap_parser_t *p = imap_parser_new(d->lim);
	assert_non_null(p);
	size_t lit_index = 0, start = 0;
	uint64_t stream_left = 0;
	int streaming = 0, fatal = 0;
	sb_puts(&out, "");
	assert_true(ncuts > 0 && cuts[ncuts - 1] == len);

	for (size_t c = 0; c < ncuts && !fatal; c++) {
		size_t n = cuts[c] - start;
		char *buf = malloc(n ? n : 1);
		assert_non_null(buf);
		memcpy(buf, in + start, n);
		start = cuts[c];
		size_t off = 0;
		for (unsigned guard = 0; off < n && !fatal; guard++) {
			assert_true(guard < 100000);
			if (streaming) {
				size_t take = n - off;
				if (take > stream_left)
					take = (size_t)stream_left;
				sb_escaped(&stream, buf + off, take);
				off += take;
				stream_left -= take;
				if (stream_left == 0) {
					streaming = 0;
					event_sep(&out);
					sb_printf(&out, "STREAM %s", stream.s ? stream.s : "");
					stream.len = 0;
					if (stream.s)
						stream.s[0] = '\0';
					imap_parser_literal_streamed(p);
				}
				continue;
			}
			size_t used = (size_t)-1;
			enum imap_parse_result r = imap_parser_feed(p, buf + off, n - off, &used);
			assert_true(used <= n - off);
			off += used;
			switch (r) {
			case IMAP_PARSE_NEED_MORE:
				assert_int_equal(off, n);
				break;
			case IMAP_PARSE_DONE: {
				size_t na;
				const struct imap_arg *a = imap_parser_args(p, &na);
				event_sep(&out);
				sb_printf(&out, "DONE %s %s", imap_parser_tag(p), imap_parser_command(p));
				if (na > 0) {
					sb_puts(&out, " ");
					put_args(&out, a, na);
				}
				imap_parser_reset(p);
				break;
			}
			case IMAP_PARSE_ERROR:
				put_error(&out, p);
				if (imap_parser_error_fatal(p)) {
					event_sep(&out);
					sb_puts(&out, "FATAL");
					fatal = 1;
				}
				imap_parser_reset(p);
				break;
			case IMAP_PARSE_LITERAL: {
				size_t na;
				imap_parser_args(p, &na);
				uint64_t size = imap_parser_literal_size(p);
				event_sep(&out);
				sb_printf(&out, "LIT %llu %s%s %s %zu", (unsigned long long)size,
					  imap_parser_literal_is_sync(p) ? "sync" : "nonsync",
					  imap_parser_literal_is_literal8(p) ? "8" : "",
					  imap_parser_command(p), na);
				char pol = d->policy && d->policy[lit_index] ? d->policy[lit_index] : 'a';
				lit_index++;
				if (pol == 'a') {
					if (imap_parser_literal_accept(p) < 0) {
						put_error(&out, p);
						imap_parser_reset(p);
					}
				} else if (pol == 's') {
					imap_parser_literal_stream(p);
					streaming = 1;
					stream_left = size;
					if (size == 0) {
						streaming = 0;
						event_sep(&out);
						sb_puts(&out, "STREAM ");
						imap_parser_literal_streamed(p);
					}
				} else if (pol == 'r') {
					imap_parser_literal_reject(p, "Rejected\r\nby caller");
					put_error(&out, p);
					imap_parser_reset(p);
				} else {
					event_sep(&out);
					sb_puts(&out, "ABANDON");
					imap_parser_reset(p);
				}
				break;
			}
			}
		}
		free(buf);
	}
	imap_parser_free(p);
	free(stream.s);
	return out.s;
}

static void check_run(const char *in, size_t len, const size_t *cuts, size_t ncuts,
		      const struct drv *d, const char *expect, const char *how)
{
	char *got = run(in, len, cuts, ncuts, d);
	if (strcmp(got, expect) != 0) {
		struct sbuf b = { 0 };
		sb_escaped(&b, in, len);
		print_error("input: %s\nfed:   %s\nwant:  %s\ngot:   %s\n", b.s, how, expect, got);
		free(b.s);
		free(got);
		fail();
	}
	free(got);
}

/* Whole, octet by octet, and every 2-way split. */
static void check_lim(const char *in, size_t len, const char *policy,
		      const struct imap_parser_limits *lim, const char *expect)
{
	struct drv d = { policy, lim };
	size_t whole = len;
	check_run(in, len, &whole, 1, &d, expect, "whole");
	if (len == 0)
		return;
	size_t *cuts = malloc(len * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	check_run(in, len, cuts, len, &d, expect, "byte by byte");
	free(cuts);
	for (size_t k = 1; k < len; k++) {
		size_t two[2] = { k, len };
		char how[64];
		snprintf(how, sizeof(how), "split at %zu", k);
		check_run(in, len, two, 2, &d, expect, how);
	}
}

#define CHECK(in, policy, expect) check_lim((in), sizeof(in) - 1, (policy), NULL, (expect))
#define CHECK_LIM(in, policy, lim, expect) check_lim((in), sizeof(in) - 1, (policy), (lim), (expect))

/* ------------------------------------------------------------ basics */

static void test_simple(void **state)
{
	(void)state;
	CHECK("a1 NOOP\r\n", NULL, "DONE a1 NOOP");
	CHECK("a1 noop\r\n", NULL, "DONE a1 NOOP");
	CHECK("A1 CapaBility\r\n", NULL, "DONE A1 CAPABILITY");
	CHECK("a1 NOOP\n", NULL, "DONE a1 NOOP");
	CHECK("a1 NOOP\r\nb2 LOGOUT\nc3 NOOP\r\n", NULL, "DONE a1 NOOP|DONE b2 LOGOUT|DONE c3 NOOP");
	CHECK("x] NOOP\r\n", NULL, "DONE x] NOOP"); /* "]" is an ASTRING-CHAR */
	CHECK("a1 SELECT INBOX\r\n", NULL, "DONE a1 SELECT A:INBOX");
	CHECK("a1 uid fetch 1:* flags\r\n", NULL, "DONE a1 UID A:fetch A:1:* A:flags");
	CHECK("a1 STORE 1 +FLAGS (\\Seen \\Deleted)\r\n", NULL,
	      "DONE a1 STORE A:1 A:+FLAGS (A:\\Seen A:\\Deleted)");
	CHECK("a1 LIST \"\" %\r\n", NULL, "DONE a1 LIST Q: A:%");
	CHECK("a1 LIST \"\" *\r\n", NULL, "DONE a1 LIST Q: A:*");
	CHECK("a1 X () (a () b)\r\n", NULL, "DONE a1 X () (A:a () A:b)");
	CHECK("a1 X ~foo ~\r\n", NULL, "DONE a1 X A:~foo A:~");
}

static void test_long_tokens(void **state)
{
	(void)state;
	/* tokens longer than the buffer kept between commands */
	size_t n = 3000;
	char *in = malloc(n + 64), *want = malloc(2 * n + 64);
	assert_non_null(in);
	assert_non_null(want);
	int k = snprintf(in, 64, "a LOGIN \"");
	memset(in + k, 'q', n);
	snprintf(in + k + n, 64, "\" x\r\nb NOOP\r\n");
	k = snprintf(want, 64, "DONE a LOGIN Q:");
	memset(want + k, 'q', n);
	snprintf(want + k + n, 64, " A:x|DONE b NOOP");
	check_lim(in, strlen(in), NULL, NULL, want);
	free(in);
	free(want);
}

static void test_nil(void **state)
{
	(void)state;
	CHECK("a X NIL nil \"NIL\" (NIL) NILS\r\n", NULL,
	      "DONE a X NIL:NIL NIL:nil Q:NIL (NIL:NIL) A:NILS");
}

static void test_partial_input(void **state)
{
	(void)state;
	/* nothing complete: no events, whatever the split */
	CHECK("a1 NOOP", NULL, "");
	CHECK("a1 LOGIN \"us", NULL, "");
	CHECK("", NULL, "");
}

/* ------------------------------------------------------------ quoted */

static void test_quoted(void **state)
{
	(void)state;
	CHECK("a LOGIN \"user\" \"p w\"\r\n", NULL, "DONE a LOGIN Q:user Q:p w");
	CHECK("a LOGIN \"us\\\"er\" \"p\\\\w\"\r\n", NULL, "DONE a LOGIN Q:us\"er Q:p\\w");
	CHECK("a LOGIN \"\" \"\"\r\n", NULL, "DONE a LOGIN Q: Q:");
	CHECK("a X \"(){}*%]\"\r\n", NULL, "DONE a X Q:(){}*%]");
	/* 8-bit in quoted strings (UTF8=ACCEPT) */
	CHECK("a SELECT \"Entw\xc3\xbcrfe\"\r\n", NULL, "DONE a SELECT Q:Entw\\xc3\\xbcrfe");
	CHECK("a X \"t\tab\"\r\n", NULL, "DONE a X Q:t\\x09ab");
}

static void test_quoted_bad(void **state)
{
	(void)state;
	CHECK("a LOGIN \"a\\b\" x\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid escape in quoted string|DONE b NOOP");
	CHECK("a LOGIN \"abc\r\nb NOOP\r\n", NULL,
	      "ERR a Unterminated quoted string|DONE b NOOP");
	CHECK("a LOGIN \"a\\\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid escape in quoted string|DONE b NOOP");
	CHECK("a LOGIN \"a\"b\r\nb NOOP\r\n", NULL,
	      "ERR a Missing space between arguments|DONE b NOOP");
	CHECK("a LOGIN a\"b\"\r\nb NOOP\r\n", NULL, "ERR a Invalid character in atom|DONE b NOOP");
}

/* ------------------------------------------------------------ bad lines */

static void test_nul(void **state)
{
	(void)state;
	CHECK("a NO\0OP\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid character in command name|DONE b NOOP");
	CHECK("a LOGIN \"x\0y\" z\r\nb NOOP\r\n", NULL, "ERR a NUL in quoted string|DONE b NOOP");
	CHECK("a LOGIN x\0y z\r\nb NOOP\r\n", NULL, "ERR a Invalid character in atom|DONE b NOOP");
	CHECK("\0\r\nb NOOP\r\n", NULL, "ERR * Invalid tag|DONE b NOOP");
	CHECK("a\0 NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid character in tag|DONE b NOOP");
}

static void test_empty_and_tag_only(void **state)
{
	(void)state;
	CHECK("\r\nb NOOP\r\n", NULL, "ERR * Empty command line|DONE b NOOP");
	CHECK("\nb NOOP\r\n", NULL, "ERR * Empty command line|DONE b NOOP");
	CHECK("\r\n\r\n", NULL, "ERR * Empty command line|ERR * Empty command line");
	CHECK("a1\r\nb NOOP\r\n", NULL, "ERR a1 Missing command|DONE b NOOP");
	CHECK("a1 \r\nb NOOP\r\n", NULL, "ERR a1 Missing command|DONE b NOOP");
	CHECK("a1  NOOP\r\nb NOOP\r\n", NULL, "ERR a1 Missing command|DONE b NOOP");
	CHECK(" NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid tag|DONE b NOOP");
}

static void test_tag_chars(void **state)
{
	(void)state;
	CHECK("a+1 NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid character in tag|DONE b NOOP");
	CHECK("+ NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid tag|DONE b NOOP");
	CHECK("* NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid tag|DONE b NOOP");
	CHECK("a* NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid character in tag|DONE b NOOP");
	CHECK("a\\ NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid character in tag|DONE b NOOP");
	CHECK("a{1} NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid character in tag|DONE b NOOP");
	CHECK("\xc3\xa9 NOOP\r\nb NOOP\r\n", NULL, "ERR * Invalid tag|DONE b NOOP");
	/* command names are plain atoms */
	CHECK("a NO*OP\r\nb NOOP\r\n", NULL, "ERR a Invalid character in command name|DONE b NOOP");
	CHECK("a (NOOP)\r\nb NOOP\r\n", NULL, "ERR a Invalid command name|DONE b NOOP");
}

static void test_spaces_and_line_ends(void **state)
{
	(void)state;
	CHECK("a NOOP \r\nb NOOP\r\n", NULL, "ERR a Missing argument after space|DONE b NOOP");
	CHECK("a SELECT  INBOX\r\nb NOOP\r\n", NULL, "ERR a Unexpected space|DONE b NOOP");
	CHECK("a X ( a)\r\nb NOOP\r\n", NULL, "ERR a Unexpected space|DONE b NOOP");
	CHECK("a X (a )\r\nb NOOP\r\n", NULL, "ERR a Unexpected ')'|DONE b NOOP");
	CHECK("a X (a b\r\nb NOOP\r\n", NULL, "ERR a Unterminated list|DONE b NOOP");
	CHECK("a X (\r\nb NOOP\r\n", NULL, "ERR a Unterminated list|DONE b NOOP");
	CHECK("a X a)\r\nb NOOP\r\n", NULL, "ERR a Unexpected ')'|DONE b NOOP");
	CHECK("a X (a))\r\nb NOOP\r\n", NULL, "ERR a Unexpected ')'|DONE b NOOP");
	CHECK("a X (a)b\r\nb NOOP\r\n", NULL, "ERR a Missing space between arguments|DONE b NOOP");
	CHECK("a NOOP\rx\r\nb NOOP\r\n", NULL, "ERR a CR not followed by LF|DONE b NOOP");
	CHECK("a X a\rb\r\nb NOOP\r\n", NULL, "ERR a CR not followed by LF|DONE b NOOP");
	CHECK("a X a\tb\r\nb NOOP\r\n", NULL, "ERR a Invalid character in atom|DONE b NOOP");
	/* 8-bit octets only in quoted strings and literals */
	CHECK("a SELECT Entw\xc3\xbcrfe\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid character in atom|DONE b NOOP");
}

/* ------------------------------------------------------------ FETCH sections */

static void test_fetch_sections(void **state)
{
	(void)state;
	CHECK("a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.512> UID)\r\n", NULL,
	      "DONE a FETCH A:1:* (A:FLAGS A:BODY.PEEK[HEADER.FIELDS (From Subject)]<0.512> A:UID)");
	CHECK("a FETCH 1 BODY[]\r\n", NULL, "DONE a FETCH A:1 A:BODY[]");
	CHECK("a FETCH 1 (BODY[])\r\n", NULL, "DONE a FETCH A:1 (A:BODY[])");
	CHECK("a UID FETCH 1 (BODY.PEEK[1.2] BINARY[1]<0.10> BINARY.SIZE[1])\r\n", NULL,
	      "DONE a UID A:FETCH A:1 (A:BODY.PEEK[1.2] A:BINARY[1]<0.10> A:BINARY.SIZE[1])");
	CHECK("a FETCH 1 BODY[HEADER.FIELDS.NOT (A B)]\r\n", NULL,
	      "DONE a FETCH A:1 A:BODY[HEADER.FIELDS.NOT (A B)]");
	/* quoted header names, with "]" and ")" inside, kept raw */
	CHECK("a FETCH 1 (BODY[HEADER.FIELDS (\"X-A\" \"a])\\\"\")])\r\n", NULL,
	      "DONE a FETCH A:1 (A:BODY[HEADER.FIELDS (\"X-A\" \"a])\\\"\")])");
	/* a "[" that spans nothing is part of a plain atom */
	CHECK("a SELECT foo[bar\r\n", NULL, "DONE a SELECT A:foo[bar");
	CHECK("a X (foo[bar) x]y\r\n", NULL, "DONE a X (A:foo[bar) A:x]y");
	/* an open section that spanned a space must be closed */
	CHECK("a FETCH 1 BODY[HEADER.FIELDS (A B)\r\nb NOOP\r\n", NULL,
	      "ERR a Unterminated [ in atom|DONE b NOOP");
	CHECK("a FETCH 1 (BODY[HEADER.FIELDS (A B))\r\nb NOOP\r\n", NULL,
	      "ERR a Unterminated [ in atom|DONE b NOOP");
	CHECK("a FETCH 1 BODY[HEADER.FIELDS (A]\r\nb NOOP\r\n", NULL,
	      "ERR a Unbalanced brackets in section|DONE b NOOP");
	CHECK("a FETCH 1 BODY[HEADER.FIELDS (\"A\\x\")]\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid escape in quoted string|DONE b NOOP");
	/* a header-fld-name is an astring (RFC 9051 9): a literal too; it
	 * joins the atom as a quoted string */
	CHECK("a FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7}\r\nSubject {3+}\r\na\"b)] UID)\r\n", NULL,
	      "LIT 7 sync FETCH 1|LIT 3 nonsync FETCH 1|"
	      "DONE a FETCH A:1 (A:BODY.PEEK[HEADER.FIELDS (\"Subject\" \"a\\\"b\")] A:UID)");
	CHECK("a FETCH 1 BODY[HEADER.FIELDS ({2}\r\na\n)]\r\nb NOOP\r\n", NULL,
	      "LIT 2 sync FETCH 1|ERR a Invalid header field name|DONE b NOOP");
	/* only where a name may start */
	CHECK("a FETCH 1 BODY[HEADER{3+}\r\nabc]\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid character in atom|DONE b NOOP");
	CHECK("a FETCH 1 BODY[HEADER.FIELDS (a{3+}\r\nabc)]\r\nb NOOP\r\n", NULL,
	      "ERR a Invalid character in atom|DONE b NOOP");
	/* the literal's octet comes, then the section must still close */
	CHECK("a FETCH 1 BODY[HEADER.FIELDS ({1}\r\nb NOOP\r\nc NOOP\r\n", NULL,
	      "LIT 1 sync FETCH 1|ERR a Unterminated [ in atom|DONE c NOOP");
}

/* ------------------------------------------------------------ lists, limits */

static void test_depth(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_depth = 3 };
	CHECK_LIM("a X (((a)))\r\n", NULL, &lim, "DONE a X (((A:a)))");
	CHECK_LIM("a X ((((a))))\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Lists nested too deeply|DONE b NOOP");
	CHECK_LIM("a X (((a))) ((((b))))\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Lists nested too deeply|DONE b NOOP");
	CHECK_LIM("a X B[((a))]\r\n", NULL, &lim, "DONE a X A:B[((a))]");
	CHECK_LIM("a X B[(((a)))]\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Section nested too deeply|DONE b NOOP");
}

static void test_max_args(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_args = 4 };
	CHECK_LIM("a X 1 2 3 4\r\n", NULL, &lim, "DONE a X A:1 A:2 A:3 A:4");
	CHECK_LIM("a X (1 2) 3\r\n", NULL, &lim, "DONE a X (A:1 A:2) A:3");
	CHECK_LIM("a X 1 2 3 4 5\r\nb NOOP\r\n", NULL, &lim, "ERR a Too many arguments|DONE b NOOP");
	CHECK_LIM("a X (1 2) (3)\r\nb NOOP\r\n", NULL, &lim, "ERR a Too many arguments|DONE b NOOP");
	CHECK_LIM("a X 1 2 3 \"4\" \"5\"\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Too many arguments|DONE b NOOP");
	/* a literal over the limit is refused at its announcement: {n} ends the
	 * line (no "+" is sent), {n+} octets are skipped */
	CHECK_LIM("a X 1 2 3 4 {3}\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Too many arguments|DONE b NOOP");
	CHECK_LIM("a X 1 2 3 4 {3+}\r\nc X\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Too many arguments|DONE b NOOP");
}

static void test_line_too_long(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_line = 32 };
	/* exactly 32 octets with the CRLF */
	CHECK_LIM("a X 01234567890123456789012345\r\n", NULL, &lim,
		  "DONE a X A:01234567890123456789012345");
	CHECK_LIM("a X 012345678901234567890123456\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Command line too long|DONE b NOOP");
	CHECK_LIM("a X 0123456789012345678901234567890123456789\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Command line too long|DONE b NOOP");
	/* the tag itself too long: no tag for the reply */
	CHECK_LIM("0123456789012345678901234567890123456789 NOOP\r\nb NOOP\r\n", NULL, &lim,
		  "ERR * Command line too long|DONE b NOOP");
	/* the discarded rest still has literals: {n+} octets are skipped, even
	 * when they look like a command; {n} ends the line */
	CHECK_LIM("a X 0123456789012345678901234567890 {16+}\r\nc DELETE INBOX\r\n\r\nb NOOP\r\n",
		  NULL, &lim, "ERR a Command line too long|DONE b NOOP");
	CHECK_LIM("a X 0123456789012345678901234567890 {16}\r\nb NOOP\r\n", NULL, &lim,
		  "ERR a Command line too long|DONE b NOOP");
	/* the error strikes inside the {n+} announcement itself */
	CHECK_LIM("a X 0123456789012345678901234 {16+}\r\nc DELETE INBOX\r\n\r\nb NOOP\r\n", NULL,
		  &lim, "ERR a Command line too long|DONE b NOOP");
	CHECK_LIM("a X 01234567890123456789012 {16+}\r\nc DELETE INBOX\r\n\r\nb NOOP\r\n", NULL,
		  &lim, "ERR a Command line too long|DONE b NOOP");
	/* literal bodies do not count toward the line */
	CHECK_LIM("a X {40}\r\n0123456789012345678901234567890123456789 {3}\r\nabc\r\n", NULL, &lim,
		  "LIT 40 sync X 0|LIT 3 sync X 1|"
		  "DONE a X L:0123456789012345678901234567890123456789 L:abc");
}

/* ------------------------------------------------------------ literals */

static void test_literal_sync(void **state)
{
	(void)state;
	CHECK("a LOGIN \"user\" {5}\r\npass!\r\nb NOOP\r\n", NULL,
	      "LIT 5 sync LOGIN 1|DONE a LOGIN Q:user L:pass!|DONE b NOOP");
	CHECK("a LOGIN {4}\r\nuser {5}\r\npa\r\n!\r\n", NULL,
	      "LIT 4 sync LOGIN 0|LIT 5 sync LOGIN 1|DONE a LOGIN L:user L:pa\\x0d\\x0a!");
	CHECK("a X {0}\r\n\r\n", NULL, "LIT 0 sync X 0|DONE a X L:");
	CHECK("a X {0}\r\n {0}\n\n", NULL, "LIT 0 sync X 0|LIT 0 sync X 1|DONE a X L: L:");
	CHECK("a X {3}\r\n8\xff\xfe\r\n", NULL, "LIT 3 sync X 0|DONE a X L:8\\xff\\xfe");
	/* a literal inside a list: the open list is not among the partial args */
	CHECK("a X y (a {3}\r\nabc b)\r\n", NULL,
	      "LIT 3 sync X 1|DONE a X A:y (A:a L:abc A:b)");
	CHECK("a X {003}\r\nabc\r\n", NULL, "LIT 3 sync X 0|DONE a X L:abc");
}

static void test_literal_nonsync(void **state)
{
	(void)state;
	CHECK("A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n", NULL,
	      "LIT 11 nonsync LOGIN 0|LIT 7 nonsync LOGIN 1|DONE A001 LOGIN L:FRED FOOBAR L:fat man");
}

static void test_literal8(void **state)
{
	(void)state;
	CHECK("a APPEND box ~{3}\r\na\0b\r\n", NULL,
	      "LIT 3 sync8 APPEND 1|DONE a APPEND A:box L8:a\\x00b");
	CHECK("a APPEND box ~{3+}\r\nabc\r\n", NULL,
	      "LIT 3 nonsync8 APPEND 1|DONE a APPEND A:box L8:abc");
	/* NUL only in literal8; the rest of the refused literal is skipped */
	CHECK("a X {5}\r\nab\0de more {3+}\r\nxyz\r\nb NOOP\r\n", NULL,
	      "LIT 5 sync X 0|ERR a NUL in literal (use literal8)|DONE b NOOP");
}

static void test_literal_syntax(void **state)
{
	(void)state;
	CHECK("a X {3}x\r\nb NOOP\r\n", NULL, "ERR a Literal must end the line|DONE b NOOP");
	CHECK("a X {}\r\nb NOOP\r\n", NULL, "ERR a Invalid literal|DONE b NOOP");
	CHECK("a X {+}\r\nb NOOP\r\n", NULL, "ERR a Invalid literal|DONE b NOOP");
	CHECK("a X {3-}\r\nb NOOP\r\n", NULL, "ERR a Invalid literal|DONE b NOOP");
	CHECK("a X {3++}\r\nb NOOP\r\n", NULL, "ERR a Invalid literal|DONE b NOOP");
	CHECK("a X {3}\rx\r\nb NOOP\r\n", NULL, "ERR a CR not followed by LF|DONE b NOOP");
	CHECK("a X x{3}\r\nb NOOP\r\n", NULL, "ERR a Invalid character in atom|DONE b NOOP");
	/* number64: 2^63-1 is a size (refused later as too large), 2^63 is not */
	CHECK("a X {9223372036854775807}\r\nb NOOP\r\n", NULL,
	      "LIT 9223372036854775807 sync X 0|ERR a [TOOBIG] Literal too large|DONE b NOOP");
	CHECK("a X {9223372036854775808}\r\nb NOOP\r\n", NULL,
	      "ERR a [TOOBIG] Literal too large|DONE b NOOP");
	CHECK("a X {99999999999999999999999999}\r\nb NOOP\r\n", NULL,
	      "ERR a [TOOBIG] Literal too large|DONE b NOOP");
	/* a {n+} whose octets cannot be counted: the connection cannot go on */
	CHECK("a X {99999999999999999999999999+}\r\nb NOOP\r\n", NULL,
	      "ERR a [TOOBIG] Literal too large|FATAL");
	/* ... also when found while discarding a bad line */
	CHECK("a X ( {99999999999999999999999999+}\r\nb NOOP\r\n", NULL,
	      "ERR a Unexpected space|ERR * Literal too large to skip|FATAL");
}

static void test_literal_too_large(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_literal = 10, .max_literal_total = 15 };
	CHECK_LIM("a LOGIN {10}\r\n0123456789 x\r\n", NULL, &lim,
		  "LIT 10 sync LOGIN 0|DONE a LOGIN L:0123456789 A:x");
	/* synchronizing: no "+" was sent, the next octets are the next command */
	CHECK_LIM("a LOGIN {11}\r\nb NOOP\r\n", NULL, &lim,
		  "LIT 11 sync LOGIN 0|ERR a [TOOBIG] Literal too large|DONE b NOOP");
	/* non-synchronizing: its 16 octets are skipped, then the rest of the line */
	CHECK_LIM("a LOGIN {16+}\r\nc DELETE INBOX\r\n x\r\nb NOOP\r\n", NULL, &lim,
		  "LIT 16 nonsync LOGIN 0|ERR a [TOOBIG] Literal too large|DONE b NOOP");
	/* ... including further {n+} literals on that line */
	CHECK_LIM("a LOGIN {16+}\r\nc DELETE INBOX\r\n {3+}\r\n{}\n\r\nb NOOP\r\n", NULL, &lim,
		  "LIT 16 nonsync LOGIN 0|ERR a [TOOBIG] Literal too large|DONE b NOOP");
	/* max_literal_total */
	CHECK_LIM("a LOGIN {10}\r\n0123456789 {6}\r\nb NOOP\r\n", NULL, &lim,
		  "LIT 10 sync LOGIN 0|LIT 6 sync LOGIN 1|ERR a [TOOBIG] Literal too large|DONE b NOOP");
	CHECK_LIM("a LOGIN {10}\r\n0123456789 {5}\r\n01234\r\n", NULL, &lim,
		  "LIT 10 sync LOGIN 0|LIT 5 sync LOGIN 1|DONE a LOGIN L:0123456789 L:01234");
	/* the total is per command */
	CHECK_LIM("a X {10}\r\n0123456789\r\nb X {10}\r\n0123456789\r\n", NULL, &lim,
		  "LIT 10 sync X 0|DONE a X L:0123456789|LIT 10 sync X 0|DONE b X L:0123456789");
}

static void test_literal_reject(void **state)
{
	(void)state;
	CHECK("a LOGIN {5}\r\nb NOOP\r\n", "r",
	      "LIT 5 sync LOGIN 0|ERR a Rejected  by caller|DONE b NOOP");
	CHECK("a LOGIN {5+}\r\nhello x\r\nb NOOP\r\n", "r",
	      "LIT 5 nonsync LOGIN 0|ERR a Rejected  by caller|DONE b NOOP");
	/* abandoning the command by a reset works the same */
	CHECK("a LOGIN {5}\r\nb NOOP\r\n", "x", "LIT 5 sync LOGIN 0|ABANDON|DONE b NOOP");
	CHECK("a LOGIN {5+}\r\nhello {2+}\r\nxy\r\nb NOOP\r\n", "x",
	      "LIT 5 nonsync LOGIN 0|ABANDON|DONE b NOOP");
}

static void test_literal_stream(void **state)
{
	(void)state;
	CHECK("a APPEND box (\\Seen) {5}\r\nhello\r\nb NOOP\r\n", "s",
	      "LIT 5 sync APPEND 2|STREAM hello|DONE a APPEND A:box (A:\\Seen) S:5|DONE b NOOP");
	/* MULTIAPPEND (RFC 3502): a second message follows on the same line */
	CHECK("a APPEND box (\\Seen) \"01-Jan-2024 10:00:00 +0000\" {5}\r\nhello"
	      " {3+}\r\nabc\r\nb NOOP\r\n",
	      "ss",
	      "LIT 5 sync APPEND 3|STREAM hello|LIT 3 nonsync APPEND 4|STREAM abc|"
	      "DONE a APPEND A:box (A:\\Seen) Q:01-Jan-2024 10:00:00 +0000 S:5 S:3|DONE b NOOP");
	/* streamed octets are not checked by the parser, nor limited */
	struct imap_parser_limits lim = { .max_literal = 2, .max_literal_total = 2 };
	CHECK_LIM("a APPEND box ~{4}\r\n\0\r\n\n {0}\r\n\r\n", "ss", &lim,
		  "LIT 4 sync8 APPEND 1|STREAM \\x00\\x0d\\x0a\\x0a|LIT 0 sync APPEND 2|STREAM |"
		  "DONE a APPEND A:box S8:4 S:0");
	/* mixing: stream the first, buffer the second */
	CHECK("a X {2}\r\nab {2}\r\ncd\r\n", "sa", "LIT 2 sync X 0|STREAM ab|LIT 2 sync X 1|DONE a X S:2 L:cd");
	/* an error after a streamed literal: the rest of the line goes */
	CHECK("a APPEND box {2}\r\nab x\"\r\nb NOOP\r\n", "s",
	      "LIT 2 sync APPEND 1|STREAM ab|ERR a Invalid character in atom|DONE b NOOP");
}

/* ------------------------------------------------------------ API details */

static imap_parser_t *feed_str(imap_parser_t *p, const char *s, enum imap_parse_result want,
			       size_t want_used)
{
	size_t n = strlen(s), used = 0;
	char *buf = malloc(n ? n : 1);
	assert_non_null(buf);
	memcpy(buf, s, n);
	enum imap_parse_result r = imap_parser_feed(p, buf, n, &used);
	free(buf);
	assert_int_equal(r, want);
	assert_int_equal(used, want_used);
	return p;
}

static void test_consumed_and_implicit_reset(void **state)
{
	(void)state;
	imap_parser_t *p = imap_parser_new(NULL);
	assert_non_null(p);
	assert_string_equal(imap_parser_tag(p), "");
	assert_string_equal(imap_parser_command(p), "");
	/* DONE stops after the LF; the rest is the next command */
	feed_str(p, "a NOOP\r\nb CHECK\r\n", IMAP_PARSE_DONE, 8);
	assert_string_equal(imap_parser_tag(p), "a");
	/* feeding without reset resets */
	feed_str(p, "b CHECK\r\n", IMAP_PARSE_DONE, 9);
	assert_string_equal(imap_parser_command(p), "CHECK");
	/* an error stops at the offending octet; the rest is discarded later */
	feed_str(p, "c X (a )\r\nd NOOP\r\n", IMAP_PARSE_ERROR, 7);
	assert_string_equal(imap_parser_error_tag(p), "c");
	assert_int_equal(imap_parser_error_fatal(p), 0);
	feed_str(p, ")\r\nd NOOP\r\n", IMAP_PARSE_DONE, 11);
	assert_string_equal(imap_parser_tag(p), "d");
	size_t n = 99;
	assert_null(imap_parser_args(p, &n));
	assert_int_equal(n, 0);
	imap_parser_free(p);
	imap_parser_free(NULL);
}

static void test_misuse_is_fatal(void **state)
{
	(void)state;
	imap_parser_t *p = imap_parser_new(NULL);
	feed_str(p, "a X {3}\r\nabc\r\n", IMAP_PARSE_LITERAL, 9);
	/* neither accepted, streamed nor rejected */
	feed_str(p, "abc\r\n", IMAP_PARSE_ERROR, 0);
	assert_int_equal(imap_parser_error_fatal(p), 1);
	feed_str(p, "b NOOP\r\n", IMAP_PARSE_ERROR, 8);
	imap_parser_free(p);

	p = imap_parser_new(NULL);
	assert_int_equal(imap_parser_literal_accept(p), -1);
	assert_int_equal(imap_parser_error_fatal(p), 1);
	imap_parser_free(p);
}

static void test_refusal_reported_by_feed(void **state)
{
	(void)state;
	struct imap_parser_limits lim = { .max_literal = 4 };
	imap_parser_t *p = imap_parser_new(&lim);
	/* reject, then feed without reset: one ERROR, nothing consumed */
	feed_str(p, "a APPEND box {5}\r\n", IMAP_PARSE_LITERAL, 18);
	imap_parser_literal_reject(p, "[TOOBIG] Too big");
	feed_str(p, "b NOOP\r\n", IMAP_PARSE_ERROR, 0);
	assert_string_equal(imap_parser_error(p), "[TOOBIG] Too big");
	assert_string_equal(imap_parser_error_tag(p), "a");
	feed_str(p, "b NOOP\r\n", IMAP_PARSE_DONE, 8);
	assert_string_equal(imap_parser_tag(p), "b");
	/* a refused accept, the same; {n+}: the octets are skipped after it */
	feed_str(p, "c LOGIN {5+}\r\n", IMAP_PARSE_LITERAL, 14);
	assert_int_equal(imap_parser_literal_accept(p), -1);
	assert_string_equal(imap_parser_error(p), "[TOOBIG] Literal too large");
	feed_str(p, "hello\r\nd NOOP\r\n", IMAP_PARSE_ERROR, 0);
	assert_string_equal(imap_parser_error_tag(p), "c");
	feed_str(p, "hello\r\nd NOOP\r\n", IMAP_PARSE_DONE, 15);
	assert_string_equal(imap_parser_tag(p), "d");
	/* with a reset in between, no second report */
	feed_str(p, "e LOGIN {5}\r\n", IMAP_PARSE_LITERAL, 13);
	assert_int_equal(imap_parser_literal_accept(p), -1);
	imap_parser_reset(p);
	feed_str(p, "f NOOP\r\n", IMAP_PARSE_DONE, 8);
	imap_parser_free(p);
}

static void test_set_limits(void **state)
{
	(void)state;
	struct imap_parser_limits small = { .max_line = 16, .max_literal = 4 };
	struct imap_parser_limits big = { .max_line = 1000, .max_literal = 1000 };
	imap_parser_t *p = imap_parser_new(&small);
	feed_str(p, "a LOGIN 0123456789\r\n", IMAP_PARSE_ERROR, 16);
	imap_parser_reset(p);
	feed_str(p, "89\r\n", IMAP_PARSE_NEED_MORE, 4);
	imap_parser_set_limits(p, &big);
	feed_str(p, "a LOGIN 0123456789\r\n", IMAP_PARSE_DONE, 20);
	imap_parser_reset(p);
	feed_str(p, "b X {5}\r\n", IMAP_PARSE_LITERAL, 9);
	assert_int_equal(imap_parser_literal_accept(p), 0);
	feed_str(p, "hello\r\n", IMAP_PARSE_DONE, 7);
	imap_parser_free(p);
}

static void test_reset_mid_command(void **state)
{
	(void)state;
	imap_parser_t *p = imap_parser_new(NULL);
	/* abandoned in the middle of the line: its rest is discarded */
	feed_str(p, "a LOGIN \"us", IMAP_PARSE_NEED_MORE, 11);
	imap_parser_reset(p);
	feed_str(p, "er\" x\r\nb NOOP\r\n", IMAP_PARSE_DONE, 15);
	assert_string_equal(imap_parser_tag(p), "b");
	/* in the middle of an accepted literal: its rest is skipped */
	feed_str(p, "c X {10+}\r\n", IMAP_PARSE_LITERAL, 11);
	assert_int_equal(imap_parser_literal_accept(p), 0);
	feed_str(p, "01234", IMAP_PARSE_NEED_MORE, 5);
	imap_parser_reset(p);
	feed_str(p, "56789\r\ne NOOP\r\n", IMAP_PARSE_DONE, 15);
	assert_string_equal(imap_parser_tag(p), "e");
	imap_parser_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_long_tokens),
		cmocka_unit_test(test_nil),
		cmocka_unit_test(test_partial_input),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_quoted_bad),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_empty_and_tag_only),
		cmocka_unit_test(test_tag_chars),
		cmocka_unit_test(test_spaces_and_line_ends),
		cmocka_unit_test(test_fetch_sections),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_max_args),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_literal_sync),
		cmocka_unit_test(test_literal_nonsync),
		cmocka_unit_test(test_literal8),
		cmocka_unit_test(test_literal_syntax),
		cmocka_unit_test(test_literal_too_large),
		cmocka_unit_test(test_literal_reject),
		cmocka_unit_test(test_literal_stream),
		cmocka_unit_test(test_consumed_and_implicit_reset),
		cmocka_unit_test(test_misuse_is_fatal),
		cmocka_unit_test(test_refusal_reported_by_feed),
		cmocka_unit_test(test_set_limits),
		cmocka_unit_test(test_reset_mid_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
