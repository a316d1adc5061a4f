/*
 * Unit tests for pop3/pop3_parse.c: the line reader, command splitting,
 * numbers, the multi-line encoder (byte-stuffing, TOP), base64, MD5/APOP.
 *
 * The line reader and the encoder are streaming: every case is fed whole,
 * one octet at a time, and split in two at every position, and each way must
 * give the same transcript. Every chunk is copied into a malloc'd buffer of
 * exactly its size, so that ASan reports any read past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "pop3/pop3_parse.h"

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

static void sb_escaped(struct sbuf *b, const char *s, size_t n)
{
	char tmp[8];
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '\\') {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			sb_puts(b, tmp);
		} else {
			sb_putn(b, (const char *)&c, 1);
		}
	}
}

/* ------------------------------------------------------------ line reader */

/* Feed one chunk (an exact-size copy) until it is used up. */
static void feed_chunk(struct pop3_parser *p, const char *data, size_t len, struct sbuf *out)
{
	char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, data, len);
	size_t off = 0;
	do {
		size_t used = 0;
		enum pop3_parse_result r = pop3_parser_feed(p, copy + off, len - off, &used);
		assert_true(used <= len - off);
		off += used;
		switch (r) {
		case POP3_PARSE_NEED_MORE:
			assert_int_equal(off, len);
			break;
		case POP3_PARSE_LINE: {
			size_t n;
			const char *line = pop3_parser_line(p, &n);
			assert_int_equal(line[n], '\0');
			sb_puts(out, "LINE ");
			sb_escaped(out, line, n);
			sb_puts(out, "\n");
			break;
		}
		case POP3_PARSE_TOO_LONG:
			sb_puts(out, "TOO_LONG\n");
			break;
		case POP3_PARSE_NUL:
			sb_puts(out, "NUL\n");
			break;
		}
	} while (off < len);
	free(copy);
}

static char *lines_whole(const char *in, size_t len, size_t max)
{
	struct pop3_parser p;
	struct sbuf out = { 0 };
	pop3_parser_init(&p, max);
	feed_chunk(&p, in, len, &out);
	pop3_parser_free(&p);
	sb_puts(&out, "");
	return out.s;
}

static char *lines_split(const char *in, size_t len, size_t max, size_t at)
{
	struct pop3_parser p;
	struct sbuf out = { 0 };
	pop3_parser_init(&p, max);
	feed_chunk(&p, in, at, &out);
	feed_chunk(&p, in + at, len - at, &out);
	pop3_parser_free(&p);
	sb_puts(&out, "");
	return out.s;
}

static char *lines_bytes(const char *in, size_t len, size_t max)
{
	struct pop3_parser p;
	struct sbuf out = { 0 };
	pop3_parser_init(&p, max);
	for (size_t i = 0; i < len; i++)
		feed_chunk(&p, in + i, 1, &out);
	pop3_parser_free(&p);
	sb_puts(&out, "");
	return out.s;
}

static void check_lines(const char *in, size_t len, size_t max, const char *want)
{
	char *whole = lines_whole(in, len, max);
	assert_string_equal(whole, want);
	char *bytes = lines_bytes(in, len, max);
	assert_string_equal(bytes, want);
	for (size_t at = 0; at <= len; at++) {
		char *split = lines_split(in, len, max, at);
		assert_string_equal(split, want);
		free(split);
	}
	free(whole);
	free(bytes);
}

#define LINES(lit, max, want) check_lines(lit, sizeof(lit) - 1, max, want)

static void test_lines_basic(void **state)
{
	(void)state;
	LINES("USER alice\r\nPASS a b\r\n", 512, "LINE USER alice\nLINE PASS a b\n");
	LINES("NOOP\nSTAT\r\n", 512, "LINE NOOP\nLINE STAT\n");          /* bare LF */
	LINES("\r\n\n", 512, "LINE \nLINE \n");                            /* empty */
	LINES("A\rB\r\n", 512, "LINE A\\x0dB\n");                          /* inner CR */
	LINES("A\r\r\n", 512, "LINE A\\x0d\n");                            /* one CR dropped */
	LINES("QUIT", 512, "");                                            /* no end yet */
	LINES("\xff\xfe\r\n", 512, "LINE \\xff\\xfe\n");
	/* pipelined, many in one chunk */
	LINES("STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nQUIT\r\n", 512,
	      "LINE STAT\nLINE LIST\nLINE UIDL\nLINE RETR 1\nLINE QUIT\n");
}

static void test_lines_limits(void **state)
{
	(void)state;
	/* max 16 octets with CR LF: 14 of content */
	LINES("0123456789ABCD\r\n", 16, "LINE 0123456789ABCD\n");
	LINES("0123456789ABCD\n", 16, "LINE 0123456789ABCD\n");
	LINES("0123456789ABCDE\r\nNOOP\r\n", 16, "TOO_LONG\nLINE NOOP\n");
	LINES("0123456789ABCDE\nNOOP\r\n", 16, "TOO_LONG\nLINE NOOP\n");
	/* a CR at the limit is the line's ending only if LF follows */
	LINES("0123456789ABCD\r\r\nNOOP\n", 16, "TOO_LONG\nLINE NOOP\n");
	LINES("0123456789ABCD\rx\r\nNOOP\n", 16, "TOO_LONG\nLINE NOOP\n");
	/* far too long: one report, the rest discarded through the LF */
	LINES("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nQUIT\r\n", 16,
	      "TOO_LONG\nLINE QUIT\n");
	LINES("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 16, "TOO_LONG\n");
	/* two long ones in a row, then a good one */
	LINES("aaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\nc\r\n", 16,
	      "TOO_LONG\nTOO_LONG\nLINE c\n");
	/* the smallest limit still takes an empty line */
	LINES("\r\nx\r\n", 3, "LINE \nLINE x\n");
}

static void test_lines_nul(void **state)
{
	(void)state;
	LINES("NO\0OP\r\nNOOP\r\n", 512, "NUL\nLINE NOOP\n");
	LINES("\0\n", 512, "NUL\n");
	/* a NUL in an overlong line: just too long */
	LINES("\0aaaaaaaaaaaaaaaaaaaaaa\r\nx\n", 16, "TOO_LONG\nLINE x\n");
}

static void test_lines_reset_and_max(void **state)
{
	(void)state;
	struct pop3_parser p;
	struct sbuf out = { 0 };
	pop3_parser_init(&p, 16);
	feed_chunk(&p, "STLS\r\nUSER x", 12, &out);
	pop3_parser_reset(&p); /* STLS: the partial "USER x" is forgotten */
	feed_chunk(&p, "CAPA\r\n", 6, &out);
	/* a SASL response may be longer than a command */
	pop3_parser_set_max(&p, 64);
	feed_chunk(&p, "AGFsaWNlAHNlY3JldC1hbGljZQ==\r\n", 30, &out);
	pop3_parser_set_max(&p, 16);
	feed_chunk(&p, "AGFsaWNlAHNlY3JldC1hbGljZQ==\r\n", 30, &out);
	sb_puts(&out, "");
	assert_string_equal(out.s,
			    "LINE STLS\nLINE CAPA\nLINE AGFsaWNlAHNlY3JldC1hbGljZQ==\nTOO_LONG\n");
	pop3_parser_free(&p);
	free(out.s);
}

/* ---------------------------------------------------------------- command */

static char *parse_cmd(const char *line)
{
	size_t len = strlen(line);
	char *copy = malloc(len + 1);
	char *buf = malloc(len + 1);
	assert_non_null(copy);
	assert_non_null(buf);
	memcpy(copy, line, len + 1);
	struct pop3_command cmd;
	const char *why = NULL;
	struct sbuf out = { 0 };
	if (pop3_command_parse(copy, len, buf, &cmd, &why) < 0) {
		assert_non_null(why);
		sb_puts(&out, "ERR ");
		sb_puts(&out, why);
	} else {
		sb_puts(&out, cmd.keyword);
		for (size_t i = 0; i < cmd.n_args; i++) {
			sb_puts(&out, " [");
			sb_puts(&out, cmd.args[i]);
			sb_puts(&out, "]");
		}
		if (cmd.too_many)
			sb_puts(&out, " +");
		sb_puts(&out, " rest=<");
		sb_puts(&out, cmd.rest);
		sb_puts(&out, ">");
		assert_true(cmd.rest >= copy && cmd.rest <= copy + len);
	}
	free(copy);
	free(buf);
	return out.s;
}

#define CMD(line, want)                             \
	do {                                        \
		char *got_ = parse_cmd(line);       \
		assert_string_equal(got_, want);    \
		free(got_);                         \
	} while (0)

static void test_command(void **state)
{
	(void)state;
	CMD("STAT", "STAT rest=<>");
	CMD("stat", "STAT rest=<>");
	CMD("List 1", "LIST [1] rest=<1>");
	CMD("LIST  1 ", "LIST [1] rest=< 1 >");
	CMD("STAT ", "STAT rest=<>");
	CMD("TOP 1 10", "TOP [1] [10] rest=<1 10>");
	CMD("PASS my secret  pass ", "PASS [my] [secret] [pass] rest=<my secret  pass >");
	CMD("APOP mrose c4c9334bac560ecc979e58001b3e22fb",
	    "APOP [mrose] [c4c9334bac560ecc979e58001b3e22fb] "
	    "rest=<mrose c4c9334bac560ecc979e58001b3e22fb>");
	CMD("X 1 2 3 4 5 6", "X [1] [2] [3] [4] + rest=<1 2 3 4 5 6>");
	CMD("AUTH PLAIN =", "AUTH [PLAIN] [=] rest=<PLAIN =>");
	CMD("", "ERR Empty command");
	CMD(" STAT", "ERR Empty command");
	CMD("ST4T", "ERR Unknown command");
	CMD("RETR\t1", "ERR Unknown command");
	CMD("ABCDEFGHIJKLMNOPQ", "ERR Unknown command"); /* 17 letters */
	CMD("ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP rest=<>");
	CMD("\xc3\xa9TAT", "ERR Unknown command");
}

static void test_number(void **state)
{
	(void)state;
	uint64_t v = 7;
	assert_int_equal(pop3_parse_number("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(pop3_parse_number("42", &v), 0);
	assert_true(v == 42);
	assert_int_equal(pop3_parse_number("0001", &v), 0);
	assert_true(v == 1);
	assert_int_equal(pop3_parse_number("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(pop3_parse_number("18446744073709551616", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(pop3_parse_number("99999999999999999999999999999", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(pop3_parse_number("", &v), -1);
	assert_int_equal(pop3_parse_number("-1", &v), -1);
	assert_int_equal(pop3_parse_number("+1", &v), -1);
	assert_int_equal(pop3_parse_number("1a", &v), -1);
	assert_int_equal(pop3_parse_number(" 1", &v), -1);
	assert_int_equal(pop3_parse_number("0x10", &v), -1);
}

/* ----------------------------------------------------- multi-line encoder */

static char *encode_chunks(const char *in, size_t len, int top, uint64_t n, const size_t *cuts,
			   size_t n_cuts)
{
	struct pop3_stuffer st;
	struct sbuf out = { 0 };
	pop3_stuffer_init(&st, top, n);
	size_t prev = 0;
	for (size_t k = 0; k <= n_cuts; k++) {
		size_t end = k < n_cuts ? cuts[k] : len;
		size_t clen = end - prev;
		char *chunk = malloc(clen ? clen : 1);
		char *o = malloc(clen ? 2 * clen : 1);
		assert_non_null(chunk);
		assert_non_null(o);
		memcpy(chunk, in + prev, clen);
		size_t w = pop3_stuffer_encode(&st, chunk, clen, o);
		assert_true(w <= 2 * clen);
		sb_putn(&out, o, w);
		free(chunk);
		free(o);
		prev = end;
	}
	char end[5];
	sb_putn(&out, end, pop3_stuffer_finish(&st, end));
	sb_puts(&out, "");
	return out.s;
}

static void check_encode(const char *in, size_t len, int top, uint64_t n, const char *want,
			 size_t want_len)
{
	char *whole = encode_chunks(in, len, top, n, NULL, 0);
	assert_memory_equal(whole, want, want_len);
	assert_int_equal(strlen(whole), want_len);
	free(whole);
	size_t *cuts = malloc((len ? len : 1) * sizeof(*cuts));
	for (size_t i = 0; i < len; i++)
		cuts[i] = i;
	char *bytes = encode_chunks(in, len, top, n, cuts, len);
	assert_memory_equal(bytes, want, want_len);
	free(bytes);
	for (size_t at = 0; at <= len; at++) {
		char *split = encode_chunks(in, len, top, n, &at, 1);
		assert_memory_equal(split, want, want_len);
		free(split);
	}
	free(cuts);
}

#define RETR(in, want) check_encode(in, sizeof(in) - 1, 0, 0, want, sizeof(want) - 1)
#define TOP(in, n, want) check_encode(in, sizeof(in) - 1, 1, n, want, sizeof(want) - 1)

static void test_stuffing(void **state)
{
	(void)state;
	RETR("a\r\n.b\r\n..\r\n.\r\n", "a\r\n..b\r\n...\r\n..\r\n.\r\n");
	RETR(".first\r\n", "..first\r\n.\r\n");
	RETR("", ".\r\n");
	RETR("no end", "no end\r\n.\r\n");                 /* CRLF added, not counted */
	RETR("x\r\n.", "x\r\n..\r\n.\r\n");
	RETR("a\n.\n", "a\n..\n.\r\n");                  /* bare LF: a line start too */
	RETR("a\r.b\r\n", "a\r.b\r\n.\r\n");              /* bare CR is not */
	RETR("mid.dle\r\n", "mid.dle\r\n.\r\n");
	RETR("\r\n.\r\n", "\r\n..\r\n.\r\n");
	RETR("x\r", "x\r\r\n.\r\n");
}

static void test_top(void **state)
{
	(void)state;
	static const char msg[] = "From: a\r\nSubject: s\r\n\r\nl1\r\n.l2\r\nl3\r\n";
	TOP(msg, 0, "From: a\r\nSubject: s\r\n\r\n.\r\n");
	TOP(msg, 1, "From: a\r\nSubject: s\r\n\r\nl1\r\n.\r\n");
	TOP(msg, 2, "From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\n.\r\n");
	TOP(msg, 3, "From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n");
	TOP(msg, 99, "From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n");
	TOP(msg, UINT64_MAX, "From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n");
	/* no blank line: all header */
	TOP("From: a\r\nSubject: s\r\n", 0, "From: a\r\nSubject: s\r\n.\r\n");
	/* empty header */
	TOP("\r\nbody\r\nmore\r\n", 0, "\r\n.\r\n");
	TOP("\r\nbody\r\nmore\r\n", 1, "\r\nbody\r\n.\r\n");
	/* LF line ends */
	TOP("H: 1\n\nb1\nb2\n", 1, "H: 1\n\nb1\n.\r\n");
	/* a header line of one CR is not the blank line of "\r\r\n" */
	TOP("H: 1\r\r\nX: 2\r\n\r\nb\r\n", 0, "H: 1\r\r\nX: 2\r\n\r\n.\r\n");
	/* last body line without CRLF */
	TOP("H: 1\r\n\r\nb1", 5, "H: 1\r\n\r\nb1\r\n.\r\n");
}

/* Undo the stuffing of a RETR response (without its terminator). */
static size_t unstuff(const char *in, size_t len, char *out)
{
	size_t o = 0;
	int start = 1;
	for (size_t i = 0; i < len; i++) {
		if (start && in[i] == '.') {
			start = 0;
			continue; /* the first "." of a line is always the added one */
		}
		out[o++] = in[i];
		start = in[i] == '\n';
	}
	return o;
}

static void test_stuffing_roundtrip(void **state)
{
	(void)state;
	static const char alphabet[] = ".\r\nab";
	unsigned seed = 12345;
	char in[64], enc[128], back[128];
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(round % 40);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % 5];
		}
		struct pop3_stuffer st;
		pop3_stuffer_init(&st, 0, 0);
		size_t w = pop3_stuffer_encode(&st, in, len, enc);
		/* never a line of just "." before the terminator */
		for (size_t i = 0; i + 1 < w; i++)
			if ((i == 0 || enc[i - 1] == '\n') && enc[i] == '.')
				assert_int_equal(enc[i + 1], '.');
		if (w == 1)
			assert_int_not_equal(enc[0], '.');
		size_t u = unstuff(enc, w, back);
		assert_int_equal(u, len);
		assert_memory_equal(back, in, len);
		char end[5];
		size_t e = pop3_stuffer_finish(&st, end);
		assert_true(e == 3 || e == 5);
	}
}

/* The whole response by the rules themselves (RFC 1939 3 and 7), octet by
 * octet, on the complete input: a "." in front of every line starting with
 * "."; for TOP the header through its blank line (empty, or a lone CR
 * before the LF), then n lines; CR LF before the terminator when the output
 * does not end with LF. */
static size_t reference_encode(const char *in, size_t len, int top, uint64_t n, char *out)
{
	size_t o = 0, line_len = 0;
	int header = 1, cr_only = 0;
	for (size_t i = 0; i < len; i++) {
		if ((i == 0 || in[i - 1] == '\n') && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		if (in[i] != '\n') {
			cr_only = line_len == 0 && in[i] == '\r';
			line_len++;
			continue;
		}
		int blank = line_len == 0 || (line_len == 1 && cr_only);
		line_len = 0;
		if (!top)
			continue;
		if (header && !blank)
			continue;
		if (header)
			header = 0;
		else
			n--;
		if (n == 0)
			break;
	}
	if (o > 0 && out[o - 1] != '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* Random messages rich in line ends and dots, cut into random chunks (from
 * one octet to all of them): the streamed encoder must give exactly the
 * reference output, for RETR and for TOP with small n. */
static void test_stuffing_random_chunks(void **state)
{
	(void)state;
	static const char alphabet[] = "..\r\n\nab";
	unsigned seed = 4242;
	char in[200], want[512];
	size_t cuts[200];
	for (int round = 0; round < 20000; round++) {
		seed = seed * 1103515245u + 12345u;
		size_t len = (seed >> 16) % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		int top = round % 3 == 0;
		uint64_t n = top ? (uint64_t)(round / 3 % 5) : 0;
		size_t want_len = reference_encode(in, len, top, n, want);
		/* sorted cut points, some repeated (empty chunks) */
		size_t n_cuts = 0, at = 0;
		while (at < len && n_cuts < sizeof(cuts) / sizeof(cuts[0])) {
			seed = seed * 1103515245u + 12345u;
			at += (seed >> 16) % (round % 2 ? 3 : 40);
			cuts[n_cuts++] = at < len ? at : len;
		}
		char *got = encode_chunks(in, len, top, n, cuts, n_cuts);
		assert_int_equal(strlen(got), want_len);
		assert_memory_equal(got, want, want_len);
		free(got);
	}
}

/* ----------------------------------------------------------------- base64 */

static void check_b64(const char *in, int ok, const char *want, size_t want_len)
{
	size_t len = strlen(in);
	char *copy = malloc(len ? len : 1);
	char *out = malloc(len / 4 * 3 + 1);
	memcpy(copy, in, len);
	size_t n = 99;
	int r = base64_decode(copy, len, out, &n);
	assert_int_equal(r, ok ? 0 : -1);
	if (ok) {
		assert_int_equal(n, want_len);
		assert_memory_equal(out, want, want_len);
		assert_int_equal(out[n], '\0');
	}
	free(copy);
	free(out);
}

static void test_base64(void **state)
{
	(void)state;
	check_b64("", 1, "", 0);
	check_b64("QQ==", 1, "A", 1);
	check_b64("QUI=", 1, "AB", 2);
	check_b64("QUJD", 1, "ABC", 3);
	check_b64("AGFsaWNlAHNlY3JldA==", 1, "\0alice\0secret", 13);
	check_b64("VXNlcm5hbWU6", 1, "Username:", 9);
	check_b64("+/+/", 1, "\xfb\xff\xbf", 3);
	check_b64("Q", 0, NULL, 0);
	check_b64("QQ=", 0, NULL, 0);
	check_b64("QQ", 0, NULL, 0);
	check_b64("====", 0, NULL, 0);
	check_b64("Q===", 0, NULL, 0);
	check_b64("QR==", 0, NULL, 0);   /* non-zero spare bits */
	check_b64("QUJ=", 0, NULL, 0);
	check_b64("QQ==QQ==", 0, NULL, 0); /* padding in the middle */
	check_b64("QU=D", 0, NULL, 0);
	check_b64("QU I", 0, NULL, 0);
	check_b64("QUJD\r\n", 0, NULL, 0);
	check_b64("*", 0, NULL, 0);
}

/* -------------------------------------------------------------------- MD5 */

static void md5_hex(const char *s, size_t len, char hex[33])
{
	unsigned char d[16];
	char *copy = malloc(len ? len : 1);
	memcpy(copy, s, len);
	pop3_md5(copy, len, d);
	free(copy);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void test_md5(void **state)
{
	(void)state;
	/* RFC 1321 A.5 */
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "d41d8cd98f00b204e9800998ecf8427e" },
		{ "a", "0cc175b9c0f1b6a831c399e269772661" },
		{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
		{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
		{ "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b" },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		  "d174ab98d277d9f5a5611c2c9f419d9f" },
		{ "1234567890123456789012345678901234567890123456789012345678901234567890"
		  "1234567890",
		  "57edf4a22be3c955ac49da2e2107b67a" },
	};
	char hex[33];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		md5_hex(v[i].in, strlen(v[i].in), hex);
		assert_string_equal(hex, v[i].out);
	}
	/* block boundaries: 55, 56, 63, 64, 65 octets (padding edge cases) */
	static const char *const lens[] = {
		"ef1772b6dff9a122358552954ad0df65", "3b0c8ac703f828b04c6c197006d17218",
		"b06521f39153d618550606be297466d5", "014842d480b571495a4a0363793f7367",
		"c743a45e0d2e6a95cb859adae0248435",
	};
	static const size_t ns[] = { 55, 56, 63, 64, 65 };
	char buf[65];
	memset(buf, 'a', sizeof(buf));
	for (size_t i = 0; i < 5; i++) {
		md5_hex(buf, ns[i], hex);
		assert_string_equal(hex, lens[i]);
	}
}

static void test_apop(void **state)
{
	(void)state;
	/* RFC 1939 7 */
	const char *ts = "<1896.697170952@dbc.mtview.ca.us>";
	char hex[33];
	pop3_apop_digest(ts, "tanstaaf", hex);
	assert_string_equal(hex, "c4c9334bac560ecc979e58001b3e22fb");
	assert_true(pop3_apop_check(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"));
	assert_true(pop3_apop_check(ts, "tanstaaf", "C4C9334BAC560ECC979E58001B3E22FB"));
	assert_false(pop3_apop_check(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fa"));
	assert_false(pop3_apop_check(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22f"));
	assert_false(pop3_apop_check(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb0"));
	assert_false(pop3_apop_check(ts, "tanstaaf", ""));
	assert_false(pop3_apop_check(ts, "TANSTAAF", "c4c9334bac560ecc979e58001b3e22fb"));
	assert_false(pop3_apop_check("<1896.697170953@dbc.mtview.ca.us>", "tanstaaf",
				     "c4c9334bac560ecc979e58001b3e22fb"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_basic),
		cmocka_unit_test(test_lines_limits),
		cmocka_unit_test(test_lines_nul),
		cmocka_unit_test(test_lines_reset_and_max),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_stuffing),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_stuffing_random_chunks),
		cmocka_unit_test(test_stuffing_roundtrip),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_md5),
		cmocka_unit_test(test_apop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
