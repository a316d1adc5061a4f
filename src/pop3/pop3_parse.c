/* The pure parts of the POP3 server; see pop3_parse.h. */
#include "pop3/pop3_parse.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ line reader */

void pop3_parser_init(struct pop3_parser *p, size_t max)
{
	memset(p, 0, sizeof(*p));
	p->max = max < 3 ? 3 : max;
}

void pop3_parser_free(struct pop3_parser *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}

void pop3_parser_set_max(struct pop3_parser *p, size_t max)
{
	p->max = max < 3 ? 3 : max;
}

void pop3_parser_reset(struct pop3_parser *p)
{
	p->len = 0;
	p->discarding = 0;
	p->bad_nul = 0;
	p->complete = 0;
}

/* Room for n more octets plus a NUL; the buffer grows with the line, so an
 * idle session holds none (it is kept between lines, at most max + 1). */
static int reserve(struct pop3_parser *p, size_t n)
{
	if (p->len + n + 1 <= p->cap)
		return 0;
	size_t cap = p->cap ? p->cap : 128;
	while (cap < p->len + n + 1)
		cap *= 2;
	if (cap > p->max + 1)
		cap = p->max + 1;
	char *b = realloc(p->buf, cap);
	if (b == NULL)
		return -1;
	p->buf = b;
	p->cap = cap;
	return 0;
}

enum pop3_parse_result pop3_parser_feed(struct pop3_parser *p, const char *data, size_t len,
					size_t *used_r)
{
	if (p->complete) {
		p->complete = 0;
		p->len = 0;
	}
	if (p->discarding) {
		const char *lf = memchr(data, '\n', len);
		if (lf == NULL) {
			*used_r = len;
			return POP3_PARSE_NEED_MORE;
		}
		p->discarding = 0;
		p->len = 0;
		p->bad_nul = 0;
		/* go on after the LF: the next line may be in this chunk */
		size_t skip = (size_t)(lf - data) + 1;
		size_t used = 0;
		enum pop3_parse_result r = pop3_parser_feed(p, data + skip, len - skip, &used);
		*used_r = skip + used;
		return r;
	}
	if (len == 0) {
		*used_r = 0;
		return POP3_PARSE_NEED_MORE;
	}
	const char *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) + 1 : len;
	/* The line with its LF may hold max octets (CR LF counted). Past
	 * that, even without a LF yet, it can only be too long. A bare-LF
	 * line is allowed the same content length as a CRLF one. */
	size_t content_max = p->max - 2;
	size_t content = p->len + (lf != NULL ? take - 1 : take);
	int cr_before = 0;
	if (lf != NULL) {
		if (take >= 2)
			cr_before = data[take - 2] == '\r';
		else
			cr_before = p->len > 0 && p->buf[p->len - 1] == '\r';
	}
	/* without the LF we cannot know yet whether a trailing CR is part of
	 * the ending: allow it one octet */
	size_t limit = content_max + (lf != NULL ? (size_t)cr_before : 1);
	if (content > limit) {
		p->len = 0;
		p->bad_nul = 0;
		if (lf != NULL) {
			*used_r = take; /* the whole line is here: dropped */
		} else {
			p->discarding = 1;
			*used_r = len;
		}
		return POP3_PARSE_TOO_LONG;
	}
	if (reserve(p, take) < 0) {
		/* out of memory: treat like an overlong line */
		p->len = 0;
		if (lf != NULL) {
			*used_r = take;
		} else {
			p->discarding = 1;
			*used_r = len;
		}
		return POP3_PARSE_TOO_LONG;
	}
	if (memchr(data, '\0', take) != NULL)
		p->bad_nul = 1;
	memcpy(p->buf + p->len, data, take);
	p->len += take;
	*used_r = take;
	if (lf == NULL)
		return POP3_PARSE_NEED_MORE;
	p->len--; /* the LF */
	if (p->len > 0 && p->buf[p->len - 1] == '\r')
		p->len--;
	p->buf[p->len] = '\0';
	if (p->bad_nul) {
		p->bad_nul = 0;
		p->len = 0;
		return POP3_PARSE_NUL;
	}
	p->complete = 1;
	return POP3_PARSE_LINE;
}

const char *pop3_parser_line(const struct pop3_parser *p, size_t *len_r)
{
	*len_r = p->len;
	return p->buf != NULL ? p->buf : "";
}

void pop3_parser_wipe(struct pop3_parser *p)
{
	if (p->buf != NULL)
		explicit_bzero(p->buf, p->cap);
}

/* ---------------------------------------------------------------- command */

int pop3_command_parse(const char *line, size_t len, char *buf, struct pop3_command *cmd,
		       const char **error_r)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->rest = line + len; /* "" */
	size_t klen = 0;
	while (klen < len && line[klen] != ' ')
		klen++;
	if (klen == 0) {
		*error_r = "Empty command";
		return -1;
	}
	if (klen > POP3_KEYWORD_MAX) {
		*error_r = "Unknown command";
		return -1;
	}
	for (size_t i = 0; i < klen; i++) {
		char c = line[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
			*error_r = "Unknown command";
			return -1;
		}
		cmd->keyword[i] = (char)(c >= 'a' ? c - ('a' - 'A') : c);
	}
	cmd->keyword[klen] = '\0';
	if (klen < len)
		cmd->rest = line + klen + 1;
	memcpy(buf, line, len);
	buf[len] = '\0';
	size_t i = klen;
	for (;;) {
		while (i < len && buf[i] == ' ')
			buf[i++] = '\0';
		if (i >= len)
			break;
		if (cmd->n_args == POP3_ARGS_MAX) {
			cmd->too_many = 1;
			break;
		}
		cmd->args[cmd->n_args++] = buf + i;
		while (i < len && buf[i] != ' ')
			i++;
	}
	return 0;
}

int pop3_parse_number(const char *s, uint64_t *value_r)
{
	uint64_t v = 0;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			v = UINT64_MAX;
		else
			v = v * 10 + d;
	}
	*value_r = v;
	return 0;
}

/* ----------------------------------------------------- multi-line encoder */

void pop3_stuffer_init(struct pop3_stuffer *st, int limit, uint64_t body_lines)
{
	memset(st, 0, sizeof(*st));
	st->line_start = 1;
	st->limit = limit;
	st->in_header = 1;
	st->body_left = body_lines;
}

/* A line ended inside the TOP cut: count it, and stop at the cut. */
static void top_line_end(struct pop3_stuffer *st)
{
	int empty = st->line_len == 0 || (st->line_len == 1 && st->line_cr_only);
	st->line_len = 0;
	st->line_cr_only = 0;
	if (st->in_header) {
		if (!empty)
			return;
		st->in_header = 0; /* the blank line is sent with the header */
	} else {
		st->body_left--;
	}
	if (st->body_left == 0)
		st->done = 1;
}

size_t pop3_stuffer_encode(struct pop3_stuffer *st, const char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;
	/* By runs: a line (or the part of it in this chunk) is copied whole;
	 * only the octet after each LF can need a "." in front. */
	while (i < len && !st->done) {
		if (st->line_start && in[i] == '.')
			out[o++] = '.';
		const char *lf = memchr(in + i, '\n', len - i);
		size_t end = lf != NULL ? (size_t)(lf - in) + 1 : len;
		size_t n = end - i;
		memcpy(out + o, in + i, n);
		o += n;
		st->line_start = lf != NULL;
		if (st->limit) {
			/* TOP: the octets of the line before its LF (if any) */
			size_t text = n - (lf != NULL);
			if (text > 0) {
				st->line_cr_only = st->line_len == 0 && text == 1 && in[i] == '\r';
				st->line_len += text;
			}
			if (lf != NULL)
				top_line_end(st);
		}
		i = end;
	}
	if (i > 0) {
		st->emitted = 1;
		st->last_lf = in[i - 1] == '\n';
	}
	return o;
}

size_t pop3_stuffer_finish(const struct pop3_stuffer *st, char *out)
{
	size_t o = 0;
	if (st->emitted && !st->last_lf) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* -------------------------------------------------------------------- MD5 */

/* RFC 1321, written out from the specification: APOP is the only user, and
 * OpenSSL stays inside src/tls/ (GNU SASL 2 no longer exports its MD5). */

struct md5_ctx {
	uint32_t a, b, c, d;
	uint64_t len;
	unsigned char block[64];
	size_t fill;
};

static const uint32_t md5_k[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
	0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
	0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
	0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
	0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
	0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
	0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
	0xeb86d391,
};

static const unsigned char md5_r[64] = {
	7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
	5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
	4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
	6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
};

static uint32_t rol32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void md5_block(struct md5_ctx *c, const unsigned char *p)
{
	uint32_t m[16];
	for (int i = 0; i < 16; i++)
		m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
		       (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
	uint32_t a = c->a, b = c->b, cc = c->c, d = c->d;
	for (unsigned i = 0; i < 64; i++) {
		uint32_t f;
		unsigned g;
		if (i < 16) {
			f = (b & cc) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & cc);
			g = (5 * i + 1) % 16;
		} else if (i < 48) {
			f = b ^ cc ^ d;
			g = (3 * i + 5) % 16;
		} else {
			f = cc ^ (b | ~d);
			g = (7 * i) % 16;
		}
		uint32_t t = d;
		d = cc;
		cc = b;
		b = b + rol32(a + f + md5_k[i] + m[g], md5_r[i]);
		a = t;
	}
	c->a += a;
	c->b += b;
	c->c += cc;
	c->d += d;
}

static void md5_init(struct md5_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->a = 0x67452301;
	c->b = 0xefcdab89;
	c->c = 0x98badcfe;
	c->d = 0x10325476;
}

static void md5_update(struct md5_ctx *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	c->len += len;
	while (len > 0) {
		size_t n = 64 - c->fill < len ? 64 - c->fill : len;
		memcpy(c->block + c->fill, p, n);
		c->fill += n;
		p += n;
		len -= n;
		if (c->fill == 64) {
			md5_block(c, c->block);
			c->fill = 0;
		}
	}
}

static void md5_final(struct md5_ctx *c, unsigned char digest[16])
{
	uint64_t bits = c->len * 8;
	unsigned char pad = 0x80;
	md5_update(c, &pad, 1);
	pad = 0;
	while (c->fill != 56)
		md5_update(c, &pad, 1);
	unsigned char lenb[8];
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)(bits >> (8 * i));
	md5_update(c, lenb, 8);
	uint32_t words[4] = { c->a, c->b, c->c, c->d };
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 4; k++)
			digest[4 * i + k] = (unsigned char)(words[i] >> (8 * k));
	memset(c, 0, sizeof(*c));
}

void pop3_md5(const void *data, size_t len, unsigned char digest[16])
{
	struct md5_ctx c;
	md5_init(&c);
	md5_update(&c, data, len);
	md5_final(&c, digest);
}

void pop3_apop_digest(const char *timestamp, const char *secret, char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	struct md5_ctx c;
	unsigned char d[16];
	md5_init(&c);
	md5_update(&c, timestamp, strlen(timestamp));
	md5_update(&c, secret, strlen(secret));
	md5_final(&c, d);
	for (int i = 0; i < 16; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[32] = '\0';
	memset(d, 0, sizeof(d));
}

int pop3_apop_check(const char *timestamp, const char *secret, const char *client_hex)
{
	char want[33];
	pop3_apop_digest(timestamp, secret, want);
	if (strlen(client_hex) != 32)
		return 0;
	unsigned diff = 0;
	for (int i = 0; i < 32; i++) {
		unsigned char c = (unsigned char)client_hex[i];
		if (c >= 'A' && c <= 'F')
			c = (unsigned char)(c + ('a' - 'A'));
		diff |= (unsigned)(c ^ (unsigned char)want[i]);
	}
	memset(want, 0, sizeof(want));
	return diff == 0;
}
