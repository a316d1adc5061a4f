/*
 * libFuzzer target for pop3/pop3_parse.c: the line reader, command
 * splitting, numbers, the multi-line encoder (byte-stuffing, TOP) and
 * base64. The first input octet picks the line limit and the TOP line count;
 * the rest is the client's octets (and, for the encoder, a message).
 *
 * Properties checked (abort() on violation):
 *  - the line reader gives the same transcript (lines, too-long, NUL) fed
 *    whole, split at a point derived from the input, and byte by byte;
 *    consumes within its chunk; every line is NUL-terminated, holds no LF or
 *    NUL and fits the limit;
 *  - every line splits into an upper-case keyword of letters and arguments
 *    without spaces, inside the copy, rest inside the line;
 *  - pop3_parse_number agrees with strtoull on digit strings (saturating);
 *  - stuffing is undone by removing the first "." of every line, never
 *    leaves a line of just "." before the terminator, and is the same in
 *    chunks as whole; TOP's output is a prefix of RETR's;
 *  - base64 that decodes encodes back to the same text.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "pop3/pop3_parse.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

struct out {
	char *s;
	size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n + 1)
			cap *= 2;
		o->s = realloc(o->s, cap);
		check(o->s != NULL);
		o->cap = cap;
	}
	memcpy(o->s + o->len, p, n);
	o->len += n;
}

static void check_command(const char *line, size_t len)
{
	char *buf = malloc(len + 1);
	check(buf != NULL);
	struct pop3_command cmd;
	const char *why = NULL;
	if (pop3_command_parse(line, len, buf, &cmd, &why) < 0) {
		check(why != NULL);
		free(buf);
		return;
	}
	size_t k = strlen(cmd.keyword);
	check(k >= 1 && k <= POP3_KEYWORD_MAX);
	for (size_t i = 0; i < k; i++)
		check(cmd.keyword[i] >= 'A' && cmd.keyword[i] <= 'Z');
	check(cmd.n_args <= POP3_ARGS_MAX);
	for (size_t i = 0; i < cmd.n_args; i++) {
		check(cmd.args[i] >= buf && cmd.args[i] < buf + len);
		size_t n = strlen(cmd.args[i]);
		check(n > 0 && cmd.args[i] + n <= buf + len);
		check(memchr(cmd.args[i], ' ', n) == NULL);
	}
	check(cmd.rest >= line && cmd.rest <= line + len);
	/* a line with a NUL never gets here (the reader refuses it) */
	check(strlen(cmd.rest) == (size_t)(line + len - cmd.rest));
	free(buf);
}

/* Feed data in chunks ending at cuts[]; the transcript goes to o. */
static void lines(const uint8_t *data, size_t size, size_t max, const size_t *cuts,
		  size_t n_cuts, struct out *o, int commands)
{
	struct pop3_parser p;
	pop3_parser_init(&p, max);
	size_t prev = 0;
	for (size_t k = 0; k <= n_cuts; k++) {
		size_t end = k < n_cuts ? cuts[k] : size;
		size_t clen = end - prev;
		char *chunk = malloc(clen ? clen : 1);
		check(chunk != NULL);
		memcpy(chunk, data + prev, clen);
		size_t off = 0;
		do {
			size_t used = 0;
			enum pop3_parse_result r = pop3_parser_feed(&p, chunk + off, clen - off, &used);
			check(used <= clen - off);
			off += used;
			if (r == POP3_PARSE_NEED_MORE) {
				check(off == clen);
			} else if (r == POP3_PARSE_LINE) {
				size_t n;
				const char *line = pop3_parser_line(&p, &n);
				check(line[n] == '\0');
				check(n + 2 <= max);
				check(memchr(line, '\n', n) == NULL && memchr(line, '\0', n) == NULL);
				put(o, "L", 1);
				put(o, line, n);
				put(o, "\n", 1);
				if (commands)
					check_command(line, n);
			} else {
				put(o, r == POP3_PARSE_TOO_LONG ? "T\n" : "N\n", 2);
			}
		} while (off < clen);
		free(chunk);
		prev = end;
	}
	pop3_parser_free(&p);
}

static void check_lines(const uint8_t *data, size_t size, size_t max)
{
	struct out whole = { 0 }, split = { 0 }, bytes = { 0 };
	lines(data, size, max, NULL, 0, &whole, 1);
	size_t at = size ? (data[0] * 131u + size) % (size + 1) : 0;
	lines(data, size, max, &at, 1, &split, 0);
	size_t *cuts = malloc((size ? size : 1) * sizeof(*cuts));
	check(cuts != NULL);
	for (size_t i = 0; i < size; i++)
		cuts[i] = i;
	lines(data, size, max, cuts, size, &bytes, 0);
	free(cuts);
	check(whole.len == split.len && whole.len == bytes.len);
	check(whole.len == 0 || (memcmp(whole.s, split.s, whole.len) == 0 &&
				 memcmp(whole.s, bytes.s, whole.len) == 0));
	free(whole.s);
	free(split.s);
	free(bytes.s);
}

static void check_number(const uint8_t *data, size_t size)
{
	char s[32];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, n);
	s[n] = '\0';
	n = strlen(s);
	uint64_t v;
	int r = pop3_parse_number(s, &v);
	int digits = n > 0 && strspn(s, "0123456789") == n;
	check((r == 0) == digits);
	if (!digits)
		return;
	errno = 0;
	unsigned long long want = strtoull(s, NULL, 10);
	check(errno == ERANGE ? v == UINT64_MAX : v == want);
}

static void encode(const uint8_t *data, size_t size, int top, uint64_t n, size_t at,
		   struct out *o, size_t *body_len_r)
{
	struct pop3_stuffer st;
	pop3_stuffer_init(&st, top, n);
	size_t parts[2] = { at, size - at };
	const uint8_t *p = data;
	for (int k = 0; k < 2; k++) {
		char *in = malloc(parts[k] ? parts[k] : 1);
		char *buf = malloc(parts[k] ? 2 * parts[k] : 1);
		check(in != NULL && buf != NULL);
		memcpy(in, p, parts[k]);
		size_t w = pop3_stuffer_encode(&st, in, parts[k], buf);
		check(w <= 2 * parts[k]);
		put(o, buf, w);
		free(in);
		free(buf);
		p += parts[k];
	}
	*body_len_r = o->len;
	char end[5];
	size_t e = pop3_stuffer_finish(&st, end);
	check(e == 3 || e == 5);
	put(o, end, e);
}

static void check_stuffing(const uint8_t *data, size_t size, uint64_t top_lines)
{
	struct out whole = { 0 }, split = { 0 }, top = { 0 };
	size_t body, body2, body_top;
	encode(data, size, 0, 0, 0, &whole, &body);
	size_t at = size ? (size * 7 + 3) % (size + 1) : 0;
	encode(data, size, 0, 0, at, &split, &body2);
	check(whole.len == split.len && memcmp(whole.s, split.s, whole.len) == 0);
	/* unstuff: the first "." of every line goes */
	char *back = malloc(body + 1);
	check(back != NULL);
	size_t o = 0;
	int start = 1;
	for (size_t i = 0; i < body; i++) {
		if (start && whole.s[i] == '.') {
			check(i + 1 < body && whole.s[i + 1] == '.');
			start = 0;
			continue;
		}
		back[o++] = whole.s[i];
		start = whole.s[i] == '\n';
	}
	check(o == size && (size == 0 || memcmp(back, data, size) == 0));
	free(back);
	/* TOP: a prefix of the whole (before the terminators) */
	encode(data, size, 1, top_lines, 0, &top, &body_top);
	check(body_top <= body && memcmp(top.s, whole.s, body_top) == 0);
	free(whole.s);
	free(split.s);
	free(top.s);
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void check_base64(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1);
	char *dec = malloc(size / 4 * 3 + 1);
	check(in != NULL && dec != NULL);
	memcpy(in, data, size);
	size_t n;
	if (base64_decode(in, size, dec, &n) == 0) {
		check(n == size / 4 * 3 - (size >= 1 && in[size - 1] == '=') -
			       (size >= 2 && in[size - 2] == '='));
		check(dec[n] == '\0');
		char *enc = malloc(size + 1);
		check(enc != NULL);
		size_t e = 0;
		const unsigned char *u = (const unsigned char *)dec;
		for (size_t i = 0; i < n; i += 3) {
			uint32_t v = (uint32_t)u[i] << 16 | (i + 1 < n ? (uint32_t)u[i + 1] << 8 : 0) |
				     (i + 2 < n ? u[i + 2] : 0);
			enc[e++] = b64chars[v >> 18 & 63];
			enc[e++] = b64chars[v >> 12 & 63];
			enc[e++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
			enc[e++] = i + 2 < n ? b64chars[v & 63] : '=';
		}
		check(e == size && memcmp(enc, in, size) == 0);
		free(enc);
	}
	free(in);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t max = 3 + data[0] % 62;
	uint64_t top_lines = data[0] % 5;
	data++;
	size--;
	check_lines(data, size, max);
	check_number(data, size);
	check_stuffing(data, size, top_lines);
	check_base64(data, size);
	char *secret = malloc(size + 1);
	check(secret != NULL);
	memcpy(secret, data, size);
	secret[size] = '\0';
	char hex[33];
	pop3_apop_digest("<1.2.3@x>", secret, hex);
	check(strlen(hex) == 32 && pop3_apop_check("<1.2.3@x>", secret, hex));
	free(secret);
	return 0;
}
