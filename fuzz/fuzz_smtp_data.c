/*
 * libFuzzer target for smtp/smtp_data.c (the DATA decoder, RFC 5321 4.5.2,
 * and the BDAT line-ending check).
 *
 * Properties checked (abort() on violation, so libFuzzer keeps the input):
 *  - decoding the input in two chunks, split at an offset derived from the
 *    data, gives the same output, consumed count, done and bare_lf/bare_cr as
 *    decoding it whole; so does feeding it byte by byte (short inputs);
 *  - a call never consumes more than it is given, consumes everything unless
 *    done, and writes at most as many octets as it was given ("out (room for
 *    len octets)"); chunks and output buffers are exact-size heap blocks so
 *    ASan sees any overrun;
 *  - the whole decoding matches a simple non-resumable reference model:
 *    the data ends at the first line that is exactly ".\r\n" where a line
 *    starts at offset 0 or after CR LF; line-initial periods are deleted;
 *    bare CR / bare LF are flagged (SMTP smuggling defence);
 *  - smtp_lineend_check() flags exactly the bare CRs and LFs, whole and
 *    split.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

struct run {
	unsigned char *out;
	size_t out_len;
	size_t consumed;
	int done, bare_lf, bare_cr;
};

static void check(int ok)
{
	if (!ok)
		abort();
}

/* Feed data in chunks ending at cuts[] (ascending, within (0, size)). */
static void decode(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts,
		   struct run *r)
{
	struct smtp_data_parser p;
	size_t start = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(size + 1);
	check(r->out != NULL);
	smtp_data_init(&p);
	for (size_t c = 0; c <= ncuts && !r->done; c++) {
		size_t end = c < ncuts ? cuts[c] : size;
		size_t n = end - start;
		if (n == 0)
			continue;
		char *chunk = malloc(n);
		char *out = malloc(n + 1); /* the room the header promises */
		check(chunk != NULL && out != NULL);
		memcpy(chunk, data + start, n);
		size_t out_len = (size_t)-1;
		int done = -1;
		size_t used = smtp_data_decode(&p, chunk, n, out, &out_len, &done);
		check(used <= n);
		check(done == 0 || done == 1);
		check(out_len <= n + 1); /* a held-back CR may be released */
		check(done || used == n);
		check(r->out_len + out_len <= size);
		memcpy(r->out + r->out_len, out, out_len);
		r->out_len += out_len;
		r->consumed += used;
		r->done = done;
		free(chunk);
		free(out);
		start = end;
	}
	r->bare_lf = p.bare_lf;
	r->bare_cr = p.bare_cr;
}

static void same(const struct run *a, const struct run *b)
{
	check(a->out_len == b->out_len);
	check(memcmp(a->out, b->out, a->out_len) == 0);
	check(a->consumed == b->consumed);
	check(a->done == b->done);
	check(a->bare_lf == b->bare_lf);
	check(a->bare_cr == b->bare_cr);
}

static int at_bol(const uint8_t *d, size_t i)
{
	return i == 0 || (i >= 2 && d[i - 2] == '\r' && d[i - 1] == '\n');
}

/* The reference model (see the comment at the top). Octets still undecided
 * at the end of an unfinished input (a trailing CR; a line-start ".<CR>")
 * are not flagged, and the ".<CR>" CR is not output yet. */
static void reference(const uint8_t *d, size_t size, struct run *r)
{
	size_t end = size;
	memset(r, 0, sizeof(*r));
	r->out = malloc(size + 1);
	check(r->out != NULL);
	for (size_t i = 0; i + 2 < size; i++)
		if (at_bol(d, i) && d[i] == '.' && d[i + 1] == '\r' && d[i + 2] == '\n') {
			end = i;
			r->done = 1;
			break;
		}
	for (size_t i = 0; i < end; i++) {
		if (at_bol(d, i) && d[i] == '.')
			continue;
		if (!r->done && i == size - 1 && d[i] == '\r' && i >= 1 && d[i - 1] == '.' &&
		    at_bol(d, i - 1))
			continue;
		r->out[r->out_len++] = d[i];
		if (d[i] == '\r' && i + 1 < size && d[i + 1] != '\n')
			r->bare_cr = 1;
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			r->bare_lf = 1;
	}
	r->consumed = r->done ? end + 3 : size;
}

static void lineend(const uint8_t *data, size_t size, size_t cut, int *lf, int *cr)
{
	struct smtp_data_parser p;
	smtp_data_init(&p);
	char *a = malloc(cut ? cut : 1), *b = malloc(size - cut ? size - cut : 1);
	check(a != NULL && b != NULL);
	memcpy(a, data, cut);
	memcpy(b, data + cut, size - cut);
	smtp_lineend_check(&p, a, cut, 0);
	smtp_lineend_check(&p, b, size - cut, 1);
	*lf = p.bare_lf;
	*cr = p.bare_cr;
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, split, model;

	decode(data, size, NULL, 0, &whole);

	/* split point derived from the data */
	size_t cut = 0;
	if (size > 0) {
		uint32_t h = 2166136261u;
		for (size_t i = 0; i < size && i < 16; i++)
			h = (h ^ data[i]) * 16777619u;
		cut = h % (size + 1);
	}
	if (cut > 0 && cut < size) {
		decode(data, size, &cut, 1, &split);
		same(&whole, &split);
		free(split.out);
	}

	if (size > 1 && size <= 4096) {
		size_t *cuts = malloc((size - 1) * sizeof(*cuts));
		check(cuts != NULL);
		for (size_t i = 0; i + 1 < size; i++)
			cuts[i] = i + 1;
		decode(data, size, cuts, size - 1, &split);
		same(&whole, &split);
		free(split.out);
		free(cuts);
	}

	reference(data, size, &model);
	same(&whole, &model);
	free(model.out);
	free(whole.out);

	/* BDAT: a CR not followed by LF (also at the very end) is bare_cr, an
	 * LF not preceded by CR is bare_lf; whole and split agree. */
	int lf1, cr1, lf2, cr2, want_lf = 0, want_cr = 0;
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\r' && (i + 1 == size || data[i + 1] != '\n'))
			want_cr = 1;
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			want_lf = 1;
	}
	lineend(data, size, 0, &lf1, &cr1);
	lineend(data, size, cut, &lf2, &cr2);
	check(lf1 == want_lf && cr1 == want_cr);
	check(lf1 == lf2 && cr1 == cr2);
	return 0;
}
