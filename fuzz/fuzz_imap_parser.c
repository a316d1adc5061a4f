/*
 * libFuzzer target for imap/imap_parser.c: the IMAP command parser fed a
 * client's byte stream (RFC 3501 9, RFC 7888, RFC 3516).
 *
 * Input: byte 0 picks the limits and the literal policy, byte 1 the chunking,
 * the rest is what the client sends. Each literal is accepted (the parser
 * refuses it when over max_literal / max_literal_total), streamed by the
 * harness, rejected, or abandoned with a reset, as byte 0 and its index say;
 * a refusal is handled at once (reset) or left for the next feed to report.
 *
 * Properties checked (abort() on violation):
 *  - a literal is refused by accept() exactly when it is over a limit, and a
 *    refusal not reset is reported by the next feed (ERROR, nothing consumed);
 *  - feed() stays within its chunk: consumed <= len, everything consumed on
 *    NEED_MORE, and the stream always makes progress (bounded number of calls);
 *  - fed whole, in data-derived chunks and one octet at a time, the parser
 *    produces the same events (a hash over commands, arguments, errors,
 *    literal announcements and streamed octets);
 *  - a DONE command has a tag without "+", an upper-case command name, and
 *    an argument tree within max_depth / max_args, with NUL-terminated
 *    strings of the stated length, no NUL outside literal8, no CR/LF in
 *    atoms and quoted strings; errors have a reason without CR/LF;
 *  - memory held by the parser stays within a bound computed from the limits
 *    (counted with ASan's malloc/free hooks), whatever literal sizes are
 *    announced; and all of it is freed.
 * Chunks are exact-size heap copies, so ASan reports any over-read.
 */
#include <sanitizer/allocator_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parser.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

/* Octets allocated by this thread and not yet freed, from ASan's hooks (the
 * global counter would also see libFuzzer's own threads). */
static _Thread_local int64_t live_bytes;

static void on_malloc(const volatile void *ptr, size_t size)
{
	(void)ptr;
	live_bytes += (int64_t)size;
}

static void on_free(const volatile void *ptr)
{
	if (ptr != NULL)
		live_bytes -= (int64_t)__sanitizer_get_allocated_size((const void *)ptr);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
	return 0;
}

/* FNV-1a */
static void h_bytes(uint64_t *h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		*h ^= p[i];
		*h *= 1099511628211ull;
	}
}

static void h_u64(uint64_t *h, uint64_t v)
{
	h_bytes(h, &v, sizeof(v));
}

static void h_str(uint64_t *h, const char *s)
{
	h_bytes(h, s, strlen(s) + 1);
}

struct cfg {
	struct imap_parser_limits lim;
	uint8_t policy;
	uint8_t chunking;
};

static size_t check_args(const struct imap_arg *a, size_t n, unsigned depth,
			 const struct cfg *c, uint64_t *h)
{
	size_t count = n;
	check(depth <= c->lim.max_depth);
	h_u64(h, n);
	for (size_t i = 0; i < n; i++) {
		h_u64(h, a[i].type);
		h_u64(h, (uint64_t)a[i].literal8);
		switch (a[i].type) {
		case IMAP_ARG_LIST:
			check(a[i].str == NULL);
			check((a[i].list == NULL) == (a[i].list_count == 0));
			count += check_args(a[i].list, a[i].list_count, depth + 1, c, h);
			break;
		case IMAP_ARG_STREAMED:
			check(a[i].str == NULL);
			h_u64(h, a[i].len);
			break;
		case IMAP_ARG_ATOM:
		case IMAP_ARG_NIL:
		case IMAP_ARG_QUOTED:
		case IMAP_ARG_LITERAL:
			check(a[i].str != NULL && a[i].str[a[i].len] == '\0');
			check(a[i].list == NULL && a[i].list_count == 0);
			if (a[i].type != IMAP_ARG_LITERAL || !a[i].literal8)
				check(memchr(a[i].str, '\0', a[i].len) == NULL);
			if (a[i].type == IMAP_ARG_ATOM || a[i].type == IMAP_ARG_NIL ||
			    a[i].type == IMAP_ARG_QUOTED)
				check(strpbrk(a[i].str, "\r\n") == NULL);
			if (a[i].type == IMAP_ARG_ATOM || a[i].type == IMAP_ARG_NIL)
				check(a[i].len > 0);
			if (a[i].type == IMAP_ARG_NIL)
				check(a[i].len == 3);
			if (a[i].type != IMAP_ARG_LITERAL)
				check(a[i].len < c->lim.max_line);
			h_u64(h, a[i].len);
			h_bytes(h, a[i].str, a[i].len);
			break;
		default:
			check(0);
		}
	}
	return count;
}

/* What the parser may hold: the token buffer (doubling), tag, command and
 * argument strings (all within one line), buffered literals, argument arrays
 * (doubling, at least 4 per list), list frames, the parser itself. */
static size_t mem_bound(const struct cfg *c)
{
	return 4 * c->lim.max_line + 1024 + c->lim.max_literal_total +
	       (size_t)c->lim.max_args * (8 * sizeof(struct imap_arg) + 2) +
	       ((size_t)c->lim.max_depth + 2) * 64 + 4096;
}

/* Policy for the i-th literal of the stream: a accept, s stream, r reject,
 * x abandon (reset). Mostly accept. */
static char policy(const struct cfg *c, size_t i)
{
	unsigned v = (unsigned)((c->policy * 131u + i * 29u) >> 2) & 7u;
	return "aaaassrx"[v];
}

/* Feed data[0..len) in chunks: mode 0 whole, 1 octet by octet, 2 derived
 * from cfg->chunking. Returns the event hash. */
static uint64_t run(const uint8_t *data, size_t len, const struct cfg *c, int mode)
{
	uint64_t h = 1469598103934665603ull;
	int64_t base = live_bytes;
	size_t bound = mem_bound(c);
	imap_parser_t *p = imap_parser_new(&c->lim);
	check(p != NULL);
	uint32_t rng = 0x9e3779b9u ^ c->chunking ^ (uint32_t)len;
	size_t off = 0, lit_index = 0, calls = 0;
	uint64_t stream_left = 0, lit_total = 0; /* buffered literal octets, this command */
	int streaming = 0, fatal = 0;
	int pending = 0; /* a refusal left for the next feed to report */

	while (off < len && !fatal) {
		size_t n = len - off;
		if (mode == 1) {
			n = 1;
		} else if (mode == 2) {
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			size_t want = 1 + (rng % ((c->chunking & 0x80) ? 7 : 97));
			if (want < n)
				n = want;
		}
		uint8_t *chunk = malloc(n);
		check(chunk != NULL);
		memcpy(chunk, data + off, n);
		off += n;
		size_t pos = 0;
		while (pos < n && !fatal) {
			check(++calls <= 4 * len + 1000);
			if (streaming) {
				size_t take = n - pos;
				if (take > stream_left)
					take = (size_t)stream_left;
				h_bytes(&h, chunk + pos, take);
				pos += take;
				stream_left -= take;
				if (stream_left == 0) {
					streaming = 0;
					h_str(&h, "streamed");
					imap_parser_literal_streamed(p);
				}
				continue;
			}
			size_t used = (size_t)-1;
			enum imap_parse_result r =
				imap_parser_feed(p, (const char *)chunk + pos, n - pos, &used);
			check(used <= n - pos);
			if (pending)
				check(r == IMAP_PARSE_ERROR && used == 0);
			pending = 0;
			pos += used;
			int64_t held = live_bytes - base - (int64_t)n;
			check(held >= 0 && (uint64_t)held <= bound);
			switch (r) {
			case IMAP_PARSE_NEED_MORE:
				check(pos == n);
				break;
			case IMAP_PARSE_DONE: {
				const char *tag = imap_parser_tag(p), *cmd = imap_parser_command(p);
				check(tag[0] != '\0' && strchr(tag, '+') == NULL);
				check(cmd[0] != '\0');
				for (const char *q = cmd; *q; q++)
					check(!(*q >= 'a' && *q <= 'z') && *q > ' ' && *q < 0x7f);
				h_str(&h, "done");
				h_str(&h, tag);
				h_str(&h, cmd);
				size_t na;
				const struct imap_arg *a = imap_parser_args(p, &na);
				check((a == NULL) == (na == 0));
				check(check_args(a, na, 0, c, &h) <= c->lim.max_args);
				lit_total = 0;
				imap_parser_reset(p);
				break;
			}
			case IMAP_PARSE_ERROR: {
				const char *err = imap_parser_error(p), *tag = imap_parser_error_tag(p);
				check(err != NULL && err[0] != '\0' && strpbrk(err, "\r\n") == NULL);
				check(tag != NULL && tag[0] != '\0');
				h_str(&h, "error");
				h_str(&h, err);
				h_str(&h, tag);
				if (imap_parser_error_fatal(p)) {
					h_str(&h, "fatal");
					fatal = 1;
				}
				lit_total = 0;
				imap_parser_reset(p);
				break;
			}
			case IMAP_PARSE_LITERAL: {
				uint64_t size = imap_parser_literal_size(p);
				size_t na;
				imap_parser_args(p, &na);
				h_str(&h, "literal");
				h_u64(&h, size);
				h_u64(&h, (uint64_t)imap_parser_literal_is_sync(p));
				h_u64(&h, (uint64_t)imap_parser_literal_is_literal8(p));
				h_u64(&h, na);
				char pol = policy(c, lit_index++);
				if (pol == 'a') {
					/* refused exactly when over a limit */
					int over = size > c->lim.max_literal ||
						   size > c->lim.max_literal_total - lit_total;
					if (imap_parser_literal_accept(p) < 0) {
						check(over && !imap_parser_error_fatal(p));
						h_str(&h, "refused");
						h_str(&h, imap_parser_error(p));
						lit_total = 0;
						/* either style: reset now, or let feed report it */
						if (lit_index & 1)
							pending = 1;
						else
							imap_parser_reset(p);
					} else {
						check(!over);
						lit_total += size;
					}
				} else if (pol == 's') {
					imap_parser_literal_stream(p);
					streaming = 1;
					stream_left = size;
					if (size == 0) {
						streaming = 0;
						h_str(&h, "streamed");
						imap_parser_literal_streamed(p);
					}
				} else if (pol == 'r') {
					imap_parser_literal_reject(p, "no\r\nthanks");
					check(strpbrk(imap_parser_error(p), "\r\n") == NULL);
					h_str(&h, "rejected");
					lit_total = 0;
					if (lit_index & 1)
						pending = 1;
					else
						imap_parser_reset(p);
				} else {
					h_str(&h, "abandoned");
					lit_total = 0;
					imap_parser_reset(p);
				}
				break;
			}
			default:
				check(0);
			}
		}
		free(chunk);
	}
	imap_parser_free(p);
	check(live_bytes == base); /* nothing leaked */
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct cfg c;
	uint8_t b = data[0];
	memset(&c, 0, sizeof(c));
	c.lim.max_line = (size_t)64 << (b & 3);           /* 64 .. 512 */
	c.lim.max_literal = (size_t)16 << ((b >> 2) & 3); /* 16 .. 128 */
	c.lim.max_literal_total = c.lim.max_literal * (1 + ((b >> 4) & 1));
	c.lim.max_depth = 1 + ((b >> 5) & 3) * 3;          /* 1 .. 10 */
	c.lim.max_args = 8 + (b >> 6) * 40;                /* 8 .. 128 */
	c.policy = b;
	c.chunking = data[1];
	data += 2;
	size -= 2;

	uint64_t whole = run(data, size, &c, 0);
	check(run(data, size, &c, 2) == whole);
	if (size <= 2048)
		check(run(data, size, &c, 1) == whole);
	return 0;
}
