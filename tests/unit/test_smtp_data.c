/*
 * Unit tests for smtp/smtp_data.c: the resumable DATA decoder and the BDAT
 * line-ending check.
 *
 * Every input is decoded whole, byte by byte, in every 2-way split and (for
 * short inputs) every 3-way split; all must agree with the expectation:
 * output, octets consumed, done, bare_lf, bare_cr. Inputs are copied into
 * malloc'd buffers of exact size so that ASan catches reads past a chunk.
 * Output buffers get exactly the room the header promises (chunk length)
 * followed by a canary, so that writing past it fails a test instead of
 * aborting the whole binary under ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

/* Room smtp_data_decode() may use for a chunk of len octets (smtp_data.h:
 * "out (room for len octets)"); the session passes a SCRATCH_SIZE buffer
 * with at most SCRATCH_SIZE input octets. Should the contract become "room
 * for len + 1 octets", change this and the malloc in fuzz/fuzz_smtp_data.c. */
#define OUT_ROOM(len) ((len) + 1) /* smtp_data.h: room for len + 1 */
#define CANARY_LEN 32
#define CANARY 0xA5

/* Allocations a failing assertion would leak (it longjmps out of the test)
 * are tracked and freed by the per-test teardown, so that LeakSanitizer
 * reports only real leaks. */
#define MAX_TRACKED 64
static void *tracked[MAX_TRACKED];

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == NULL) {
			tracked[i] = p;
			return p;
		}
	fail_msg("test bug: too many live allocations");
	return NULL;
}

static void xfree(void *p)
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

struct result {
	char *out;
	size_t out_len;
	size_t consumed;
	int done;
	int bare_lf;
	int bare_cr;
	char err[256]; /* first contract violation, "" if none */
};

static void result_free(struct result *r)
{
	xfree(r->out);
	memset(r, 0, sizeof(*r));
}

/* Feed in[0..len) in chunks ending at cuts[0] < cuts[1] < ... (cuts within
 * (0, len)); stop once done. */
static void decode_chunks(const char *in, size_t len, const size_t *cuts, size_t ncuts,
			  struct result *r)
{
	struct smtp_data_parser p;
	size_t start = 0;

	memset(r, 0, sizeof(*r));
	r->out = xmalloc(len + 1);
	assert_non_null(r->out);
	smtp_data_init(&p);
	for (size_t c = 0; c <= ncuts && !r->done; c++) {
		size_t end = c < ncuts ? cuts[c] : len;
		size_t n = end - start;
		if (n == 0)
			continue;
		char *chunk = xmalloc(n); /* exact size: over-reads hit ASan */
		unsigned char *out = xmalloc(OUT_ROOM(n) + CANARY_LEN);
		assert_non_null(chunk);
		assert_non_null(out);
		memcpy(chunk, in + start, n);
		memset(out, CANARY, OUT_ROOM(n) + CANARY_LEN);
		size_t out_len = (size_t)-1;
		int done = -1;
		size_t used = smtp_data_decode(&p, chunk, n, (char *)out, &out_len, &done);
		if (r->err[0] == '\0') {
			int canary_ok = 1;
			for (size_t k = 0; k < CANARY_LEN; k++)
				if (out[OUT_ROOM(n) + k] != CANARY)
					canary_ok = 0;
			if (used > n)
				snprintf(r->err, sizeof(r->err), "chunk [%zu,%zu): consumed %zu > %zu",
					 start, end, used, n);
			else if (done != 0 && done != 1)
				snprintf(r->err, sizeof(r->err), "chunk [%zu,%zu): done not set", start,
					 end);
			else if (out_len > OUT_ROOM(n) || !canary_ok)
				snprintf(r->err, sizeof(r->err),
					 "chunk [%zu,%zu): wrote %zu octets (canary %s) into room for %zu",
					 start, end, out_len, canary_ok ? "intact" : "overwritten",
					 (size_t)OUT_ROOM(n));
			else if (!done && used != n)
				snprintf(r->err, sizeof(r->err),
					 "chunk [%zu,%zu): not done but consumed only %zu of %zu", start,
					 end, used, n);
		}
		if (out_len <= OUT_ROOM(n) && r->out_len + out_len <= len) {
			memcpy(r->out + r->out_len, out, out_len);
			r->out_len += out_len;
		} else if (r->err[0] == '\0') {
			snprintf(r->err, sizeof(r->err), "output longer than the input");
		}
		if (used > n)
			used = n;
		r->consumed += used;
		r->done = done == 1;
		xfree(chunk);
		xfree(out);
		start = end;
	}
	r->bare_lf = p.bare_lf;
	r->bare_cr = p.bare_cr;
}

static void escape(const char *s, size_t len, char *buf, size_t bufsz)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < bufsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r')
			o += (size_t)snprintf(buf + o, bufsz - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(buf + o, bufsz - o, "\\n");
		else if (c < 32 || c >= 127)
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
}

struct expect {
	const char *out;
	size_t out_len;
	size_t consumed;
	int done;
	int bare_lf;
	int bare_cr;
};

static void compare(const char *in, size_t len, const char *how, const struct result *r,
		    const struct expect *e)
{
	char ein[512], eout[512], gout[512];

	if (r->err[0] == '\0' && r->out_len == e->out_len &&
	    memcmp(r->out, e->out, e->out_len) == 0 && r->consumed == e->consumed &&
	    r->done == e->done && r->bare_lf == e->bare_lf && r->bare_cr == e->bare_cr)
		return;
	escape(in, len, ein, sizeof(ein));
	escape(e->out, e->out_len, eout, sizeof(eout));
	escape(r->out, r->out_len, gout, sizeof(gout));
	fail_msg("input \"%s\" fed %s: %s%s\n"
		 "  expected out \"%s\" consumed %zu done %d bare_lf %d bare_cr %d\n"
		 "  got      out \"%s\" consumed %zu done %d bare_lf %d bare_cr %d",
		 ein, how, r->err, r->err[0] ? "" : "wrong result", eout, e->consumed, e->done,
		 e->bare_lf, e->bare_cr, gout, r->consumed, r->done, r->bare_lf, r->bare_cr);
}

/* Decode whole, byte by byte, every 2-way split and, for short inputs, every
 * 3-way split; each must give *e. */
static void check_all_splits(const char *in, size_t len, const struct expect *e)
{
	struct result r;
	char how[64];

	decode_chunks(in, len, NULL, 0, &r);
	compare(in, len, "whole", &r, e);
	result_free(&r);

	if (len > 1) {
		size_t *cuts = xmalloc(len * sizeof(*cuts));
		assert_non_null(cuts);
		for (size_t i = 0; i + 1 < len; i++)
			cuts[i] = i + 1;
		decode_chunks(in, len, cuts, len - 1, &r);
		compare(in, len, "byte by byte", &r, e);
		result_free(&r);
		xfree(cuts);
	}
	for (size_t k = 1; k < len; k++) {
		size_t cut = k;
		decode_chunks(in, len, &cut, 1, &r);
		snprintf(how, sizeof(how), "split at %zu", k);
		compare(in, len, how, &r, e);
		result_free(&r);
	}
	if (len <= 64) {
		for (size_t a = 1; a < len; a++)
			for (size_t b = a + 1; b < len; b++) {
				size_t cuts[2] = { a, b };
				decode_chunks(in, len, cuts, 2, &r);
				snprintf(how, sizeof(how), "split at %zu and %zu", a, b);
				compare(in, len, how, &r, e);
				result_free(&r);
			}
	}
}

static void reference(const char *in, size_t len, char *out, struct expect *e);

/* The hand-written expectation must agree with the reference model below
 * (a check of the test itself), then every way of feeding must give it. */
static void check_expect(const char *in, size_t len, const struct expect *e)
{
	char *ref_out = xmalloc(len + 1);
	struct expect ref;
	assert_non_null(ref_out);
	reference(in, len, ref_out, &ref);
	if (ref.out_len != e->out_len || memcmp(ref.out, e->out, e->out_len) != 0 ||
	    ref.consumed != e->consumed || ref.done != e->done || ref.bare_lf != e->bare_lf ||
	    ref.bare_cr != e->bare_cr) {
		char ein[512];
		escape(in, len, ein, sizeof(ein));
		fail_msg("test bug: expectation for \"%s\" disagrees with the reference model "
			 "(consumed %zu done %d bare_lf %d bare_cr %d out_len %zu)",
			 ein, ref.consumed, ref.done, ref.bare_lf, ref.bare_cr, ref.out_len);
	}
	xfree(ref_out);
	check_all_splits(in, len, e);
}

#define CHECK(in_lit, out_lit, consumed_, done_, lf_, cr_)                                   \
	do {                                                                                 \
		const struct expect e_ = { out_lit, sizeof(out_lit) - 1, consumed_, done_, lf_, \
					   cr_ };                                            \
		check_expect(in_lit, sizeof(in_lit) - 1, &e_);                               \
	} while (0)

/*
 * Reference model, on the whole input at once: a line starts at offset 0 or
 * after CR LF; the data ends at the first line that is exactly ".\r\n"; a
 * period starting a line is deleted (RFC 5321 4.5.2); a CR not followed by
 * LF is bare_cr, an LF not preceded by CR is bare_lf (2.3.8). Octets still
 * undecided at the end of the input (a CR, or a line-start ".<CR>") are not
 * flagged; the ".<CR>" CR is not output yet.
 */
static void reference(const char *in, size_t len, char *out, struct expect *e)
{
	size_t o = 0, end = len;
	e->done = 0;
	for (size_t i = 0; i < len; i++) {
		int bol = i == 0 || (i >= 2 && in[i - 2] == '\r' && in[i - 1] == '\n');
		if (bol && in[i] == '.' && i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
			end = i;
			e->done = 1;
			break;
		}
	}
	e->bare_lf = e->bare_cr = 0;
	for (size_t i = 0; i < end; i++) {
		int bol = i == 0 || (i >= 2 && in[i - 2] == '\r' && in[i - 1] == '\n');
		if (bol && in[i] == '.')
			continue;
		if (!e->done && in[i] == '\r' && i == len - 1 && i >= 1 && in[i - 1] == '.' &&
		    (i == 1 || (i >= 3 && in[i - 3] == '\r' && in[i - 2] == '\n')))
			continue; /* held ".<CR>" at the end of the input */
		out[o++] = in[i];
		if (in[i] == '\r' && i + 1 < len && in[i + 1] != '\n')
			e->bare_cr = 1;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			e->bare_lf = 1;
	}
	e->out = out;
	e->out_len = o;
	e->consumed = e->done ? end + 3 : len;
}

/* ------------------------------------------------------------------------ */

static void test_plain_message(void **state)
{
	(void)state;
	CHECK("Subject: hi\r\n\r\nHello\r\nWorld\r\n.\r\n",
	      "Subject: hi\r\n\r\nHello\r\nWorld\r\n", 32, 1, 0, 0);
	/* RFC 5321 4.1.1.4: the first CRLF of CRLF.CRLF ends the last line and
	 * belongs to the message; a period inside a line is content. */
	CHECK("a.b\r\nc .\r\n.\r\n", "a.b\r\nc .\r\n", 13, 1, 0, 0);
}

static void test_no_end_yet(void **state)
{
	(void)state;
	CHECK("line one\r\nline two\r\n", "line one\r\nline two\r\n", 20, 0, 0, 0);
	CHECK("partial", "partial", 7, 0, 0, 0);
	/* ". " at a line start is not the end; the period is deleted (4.5.2). */
	CHECK("a\r\n. \r\n", "a\r\n \r\n", 7, 0, 0, 0);
}

/* RFC 5321 4.5.2: a line-initial period is deleted when the line has more
 * characters; a line of a single period ends the data. */
static void test_dot_stuffing(void **state)
{
	(void)state;
	CHECK("..x\r\n.\r\n", ".x\r\n", 8, 1, 0, 0);
	CHECK("a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", 13, 1, 0, 0);
	CHECK("...\r\n.\r\n", "..\r\n", 8, 1, 0, 0);
	CHECK("..\r\n..\r\n.\r\n", ".\r\n.\r\n", 11, 1, 0, 0);
	/* An unstuffed single leading period is deleted as well. */
	CHECK(".x\r\n.\r\n", "x\r\n", 7, 1, 0, 0);
	CHECK("x\r\n.. y\r\n.\r\n", "x\r\n. y\r\n", 12, 1, 0, 0);
}

static void test_empty_message(void **state)
{
	(void)state;
	/* The data starts at a line start: ".\r\n" at once is an empty message. */
	CHECK(".\r\n", "", 3, 1, 0, 0);
	CHECK(".\r\nQUIT\r\n", "", 3, 1, 0, 0);
	/* An empty line is content. */
	CHECK("\r\n.\r\n", "\r\n", 5, 1, 0, 0);
}

/* Bytes after CRLF.CRLF are the next (pipelined, RFC 2920) commands and
 * must stay unconsumed, whichever chunk the end marker ends in. */
static void test_pipelined_bytes_unconsumed(void **state)
{
	(void)state;
	CHECK("a\r\n.\r\nQUIT\r\n", "a\r\n", 6, 1, 0, 0);
	CHECK("a\r\n.\r\nMAIL FROM:<x@y.z>\r\n.\r\n", "a\r\n", 6, 1, 0, 0);
	CHECK("a\r\n.\r\n.\r\n", "a\r\n", 6, 1, 0, 0);
	CHECK("a\r\n.\r\n\n", "a\r\n", 6, 1, 0, 0);

	/* The decoder resumes cleanly after done (next message on the parser). */
	struct smtp_data_parser p;
	char in[] = "x\r\n.\r\n..y\r\n.\r\n";
	char out[sizeof(in)];
	size_t out_len;
	int done;
	smtp_data_init(&p);
	size_t used = smtp_data_decode(&p, in, sizeof(in) - 1, out, &out_len, &done);
	assert_int_equal(used, 6);
	assert_int_equal(done, 1);
	assert_int_equal(out_len, 3);
	used = smtp_data_decode(&p, in + 6, sizeof(in) - 1 - 6, out, &out_len, &done);
	assert_int_equal(used, 8);
	assert_int_equal(done, 1);
	assert_int_equal(out_len, 4);
	assert_memory_equal(out, ".y\r\n", 4);
}

/*
 * SMTP smuggling (CVE-2023-51764/5/6): only <CRLF>.<CRLF> ends the data
 * (RFC 5321 4.1.1.4); a bare CR or LF is not a line end (2.3.8, 4.1.1.4:
 * "<LF>.<LF>" must not be treated as the end). Each input has a fake end
 * marker followed by a smuggled command and then the real end.
 */
static void test_smuggling_lf_dot_lf(void **state)
{
	(void)state;
	CHECK("Hi\n.\nMAIL FROM:<a@b.c>\r\n.\r\n", "Hi\n.\nMAIL FROM:<a@b.c>\r\n", 27, 1, 1, 0);
	CHECK("Hi\r\n\n.\nX\r\n.\r\n", "Hi\r\n\n.\nX\r\n", 13, 1, 1, 0);
	CHECK("Hi\n.\n", "Hi\n.\n", 5, 0, 1, 0);
	CHECK("\n.\n", "\n.\n", 3, 0, 1, 0);
}

static void test_smuggling_cr_dot_cr(void **state)
{
	(void)state;
	CHECK("Hi\r.\rMAIL FROM:<a@b.c>\r\n.\r\n", "Hi\r.\rMAIL FROM:<a@b.c>\r\n", 27, 1, 0, 1);
	CHECK("Hi\r.\r\r\n.\r\n", "Hi\r.\r\r\n", 10, 1, 0, 1);
	CHECK("\r.\rX", "\r.\rX", 4, 0, 0, 1);
}

static void test_smuggling_lf_dot_crlf(void **state)
{
	(void)state;
	/* The period follows a bare LF: not at a line start, kept as is. */
	CHECK("Hi\n.\r\nX\r\n.\r\n", "Hi\n.\r\nX\r\n", 12, 1, 1, 0);
	CHECK("Hi\n.\r\n", "Hi\n.\r\n", 6, 0, 1, 0);
}

static void test_smuggling_crlf_dot_lf(void **state)
{
	(void)state;
	/* A line-start ".\n" is not a line of a single period: the period goes
	 * as stuffing, the LF is bare. */
	CHECK("Hi\r\n.\nX\r\n.\r\n", "Hi\r\n\nX\r\n", 12, 1, 1, 0);
	CHECK("Hi\r\n.\n", "Hi\r\n\n", 6, 0, 1, 0);
	CHECK(".\nX\r\n.\r\n", "\nX\r\n", 8, 1, 1, 0);
}

static void test_smuggling_dot_cr_other(void **state)
{
	(void)state;
	/* ".<CR>" at a line start not followed by LF: the CR is bare and the
	 * line goes on; the period was stuffing. */
	CHECK("Hi\r\n.\rX\r\n.\r\n", "Hi\r\n\rX\r\n", 12, 1, 0, 1);
	CHECK("Hi\r\n.\r.\r\n.\r\n", "Hi\r\n\r.\r\n", 12, 1, 0, 1);
	CHECK(".\r\r\n.\r\n", "\r\r\n", 7, 1, 0, 1);
	CHECK(".\r\n\n", "", 3, 1, 0, 0);
	CHECK("Hi\r\n.\rX", "Hi\r\n\rX", 7, 0, 0, 1);
	/* Undecided at the end of the input: not flagged, CR held back. */
	CHECK("Hi\r\n.\r", "Hi\r\n", 6, 0, 0, 0);
}

/* RFC 5321 2.3.8: CR CR LF is a bare CR followed by a real line end, so the
 * next line starts a line and CRLF.CRLF after it is the genuine end. */
static void test_cr_cr_lf(void **state)
{
	(void)state;
	CHECK("a\r\r\n.\r\n", "a\r\r\n", 7, 1, 0, 1);
	CHECK("a\r\r\nb\r\n.\r\n", "a\r\r\nb\r\n", 10, 1, 0, 1);
	CHECK("a\r\r\n..b\r\n.\r\n", "a\r\r\n.b\r\n", 12, 1, 0, 1);
	CHECK("\r\r\n.\r\n", "\r\r\n", 6, 1, 0, 1);
	/* CR LF LF: the second LF is bare. */
	CHECK("a\r\n\n.\r\n", "a\r\n\n.\r\n", 7, 0, 1, 0);
}

static void test_binary_and_nul(void **state)
{
	(void)state;
	CHECK("\0\x01\xff\r\n\0.\r\n.\0\r\n.\r\n", "\0\x01\xff\r\n\0.\r\n\0\r\n", 16, 1, 0, 0);
	CHECK("\x80\r\n\xc3\xa9\r\n.\r\n", "\x80\r\n\xc3\xa9\r\n", 10, 1, 0, 0);
	CHECK("\0", "\0", 1, 0, 0, 0);
}

/* The documented contract: out has room for len octets. A ".<CR>" held at
 * the end of one chunk and followed by a non-LF must not make the next call
 * write more than that chunk's length. */
static void test_output_fits_each_chunk(void **state)
{
	struct smtp_data_parser p;
	size_t out_len;
	int done;
	char *in1 = xmalloc(4), *in2 = xmalloc(1);
	unsigned char *out = xmalloc(4 + CANARY_LEN);

	(void)state;
	assert_non_null(in1);
	assert_non_null(in2);
	assert_non_null(out);
	memcpy(in1, "\r\n.\r", 4);
	in2[0] = 'X';
	smtp_data_init(&p);
	memset(out, CANARY, 4 + CANARY_LEN);
	assert_int_equal(smtp_data_decode(&p, in1, 4, (char *)out, &out_len, &done), 4);
	assert_int_equal(done, 0);
	assert_int_equal(out_len, 2);
	memset(out, CANARY, 4 + CANARY_LEN);
	assert_int_equal(smtp_data_decode(&p, in2, 1, (char *)out, &out_len, &done), 1);
	assert_int_equal(done, 0);
	/* 1 input octet, room for 1 + 1 output octets (smtp_data.h) */
	assert_in_range(out_len, 0, 2);
	assert_int_equal(out[2], CANARY);
	xfree(in1);
	xfree(in2);
	xfree(out);
}

/* Random inputs over a small alphabet, checked against the reference model
 * whole, byte by byte and in every 2-way split. */
static void test_random_against_reference(void **state)
{
	static const char alphabet[] = { '.', '\r', '\n', 'a', '\0', '.', '\r', '\n' };
	uint32_t seed = 0x9e3779b9u;
	char in[64], out[64];

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0, n;
		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % 24;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[len++] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		if (iter % 2 == 0) { /* half of them end properly */
			memcpy(in + len, "\r\n.\r\nZ", 6);
			len += 6;
		}
		struct expect e;
		reference(in, len, out, &e);
		check_all_splits(in, len, &e);
	}
}

/* A large message in random chunk sizes gives the same as whole. */
static void test_large_random_chunks(void **state)
{
	const size_t len = 300 * 1024;
	char *in = xmalloc(len);
	char *ref_out = xmalloc(len);
	uint32_t seed = 12345;
	struct expect e;
	struct result r;

	(void)state;
	assert_non_null(in);
	assert_non_null(ref_out);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		unsigned v = (seed >> 16) % 100;
		in[i] = v < 5 ? '.' : v < 10 ? '\r' : v < 15 ? '\n' : (char)('a' + v % 26);
	}
	/* no CR/LF alone: only CRLF line ends, then the end marker */
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (i + 1 < len) {
				in[i] = '\r';
				in[i + 1] = '\n';
				i++;
			} else {
				in[i] = 'z';
			}
		}
	}
	/* remove accidental end markers, then put one near the end */
	for (size_t i = 0; i + 2 < len; i++)
		if (in[i] == '.' && in[i + 1] == '\r' && (i == 0 || in[i - 1] == '\n'))
			in[i] = 'd';
	memcpy(in + len - 9, "\r\n.\r\nRSET", 9);
	reference(in, len, ref_out, &e);
	assert_int_equal(e.done, 1);
	assert_int_equal(e.consumed, len - 4);
	assert_int_equal(e.bare_cr, 0);
	assert_int_equal(e.bare_lf, 0);

	size_t cuts[4096], ncuts = 0, pos = 0;
	while (ncuts < 4096) {
		seed = seed * 1103515245u + 12345u;
		pos += 1 + (seed >> 16) % 300;
		if (pos >= len)
			break;
		cuts[ncuts++] = pos;
	}
	decode_chunks(in, len, cuts, ncuts, &r);
	compare("(large)", 7, "in random chunks", &r, &e);
	result_free(&r);
	decode_chunks(in, len, NULL, 0, &r);
	compare("(large)", 7, "whole", &r, &e);
	result_free(&r);
	xfree(in);
	xfree(ref_out);
}

/* ---- smtp_lineend_check (BDAT, RFC 3030: no dot-stuffing) ---- */

static void lineend(const char *in, size_t len, const size_t *cuts, size_t ncuts, int *lf,
		    int *cr)
{
	struct smtp_data_parser p;
	size_t start = 0;
	smtp_data_init(&p);
	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : len;
		char *chunk = xmalloc(end - start + 1);
		assert_non_null(chunk);
		memcpy(chunk, in + start, end - start);
		smtp_lineend_check(&p, chunk, end - start, 0);
		xfree(chunk);
		start = end;
	}
	smtp_lineend_check(&p, "", 0, 1);
	*lf = p.bare_lf;
	*cr = p.bare_cr;
}

static void check_lineend(const char *in, size_t len, int want_lf, int want_cr)
{
	int lf, cr;
	char esc[256];
	escape(in, len, esc, sizeof(esc));
	lineend(in, len, NULL, 0, &lf, &cr);
	if (lf != want_lf || cr != want_cr)
		fail_msg("\"%s\" whole: bare_lf %d bare_cr %d, want %d %d", esc, lf, cr, want_lf,
			 want_cr);
	for (size_t k = 0; k <= len; k++) {
		lineend(in, len, &k, 1, &lf, &cr);
		if (lf != want_lf || cr != want_cr)
			fail_msg("\"%s\" split at %zu: bare_lf %d bare_cr %d, want %d %d", esc, k, lf,
				 cr, want_lf, want_cr);
	}
	size_t *cuts = xmalloc((len + 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i;
	lineend(in, len, cuts, len, &lf, &cr); /* includes empty chunks */
	if (lf != want_lf || cr != want_cr)
		fail_msg("\"%s\" byte by byte: bare_lf %d bare_cr %d, want %d %d", esc, lf, cr,
			 want_lf, want_cr);
	xfree(cuts);
}

#define LINEEND(lit, lf, cr) check_lineend(lit, sizeof(lit) - 1, lf, cr)

static void test_lineend_check(void **state)
{
	(void)state;
	LINEEND("", 0, 0);
	LINEEND("a\r\nb\r\n", 0, 0);
	LINEEND("a\r\nb", 0, 0);
	LINEEND("a\nb", 1, 0);
	LINEEND("\n", 1, 0);
	LINEEND("a\rb", 0, 1);
	LINEEND("a\r\r\n", 0, 1);
	LINEEND("a\r\n\n", 1, 0);
	LINEEND("\r\n.\r\n", 0, 0); /* no end marker in BDAT: just content */
	LINEEND("a\n.\n", 1, 0);
	/* A CR as the very last octet of the last chunk is bare. */
	LINEEND("a\r", 0, 1);
	LINEEND("a\r\n\r", 0, 1);
}

static void test_lineend_check_chunk_boundary(void **state)
{
	struct smtp_data_parser p;
	(void)state;

	/* CR at the end of one chunk, LF at the start of the next: fine. */
	smtp_data_init(&p);
	smtp_lineend_check(&p, "abc\r", 4, 0);
	assert_int_equal(p.bare_cr, 0);
	smtp_lineend_check(&p, "\ndef\r\n", 6, 0);
	smtp_lineend_check(&p, "", 0, 1);
	assert_int_equal(p.bare_cr, 0);
	assert_int_equal(p.bare_lf, 0);

	/* CR ending the final chunk: bare. */
	smtp_data_init(&p);
	smtp_lineend_check(&p, "abc\r", 4, 1);
	assert_int_equal(p.bare_cr, 1);
	assert_int_equal(p.bare_lf, 0);

	/* CR, then an empty chunk, then LF. */
	smtp_data_init(&p);
	smtp_lineend_check(&p, "abc\r", 4, 0);
	smtp_lineend_check(&p, "", 0, 0);
	smtp_lineend_check(&p, "\n", 1, 1);
	assert_int_equal(p.bare_cr, 0);
	assert_int_equal(p.bare_lf, 0);

	/* CR, then a chunk starting with something else. */
	smtp_data_init(&p);
	smtp_lineend_check(&p, "abc\r", 4, 0);
	smtp_lineend_check(&p, "x\r\n", 3, 1);
	assert_int_equal(p.bare_cr, 1);
	assert_int_equal(p.bare_lf, 0);

	/* LF at the start of the first chunk is bare. */
	smtp_data_init(&p);
	smtp_lineend_check(&p, "\nabc", 4, 1);
	assert_int_equal(p.bare_lf, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_plain_message, free_tracked),
		cmocka_unit_test_teardown(test_no_end_yet, free_tracked),
		cmocka_unit_test_teardown(test_dot_stuffing, free_tracked),
		cmocka_unit_test_teardown(test_empty_message, free_tracked),
		cmocka_unit_test_teardown(test_pipelined_bytes_unconsumed, free_tracked),
		cmocka_unit_test_teardown(test_smuggling_lf_dot_lf, free_tracked),
		cmocka_unit_test_teardown(test_smuggling_cr_dot_cr, free_tracked),
		cmocka_unit_test_teardown(test_smuggling_lf_dot_crlf, free_tracked),
		cmocka_unit_test_teardown(test_smuggling_crlf_dot_lf, free_tracked),
		cmocka_unit_test_teardown(test_smuggling_dot_cr_other, free_tracked),
		cmocka_unit_test_teardown(test_cr_cr_lf, free_tracked),
		cmocka_unit_test_teardown(test_binary_and_nul, free_tracked),
		cmocka_unit_test_teardown(test_output_fits_each_chunk, free_tracked),
		cmocka_unit_test_teardown(test_random_against_reference, free_tracked),
		cmocka_unit_test_teardown(test_large_random_chunks, free_tracked),
		cmocka_unit_test_teardown(test_lineend_check, free_tracked),
		cmocka_unit_test_teardown(test_lineend_check_chunk_boundary, free_tracked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
