/*
 * imap_seqset.c - IMAP sequence sets; the contract is in imap_seqset.h.
 */
#include "imap/imap_seqset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_range(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (x->hi > y->hi) - (x->hi < y->hi);
}

/* Sort r[0..n) and merge overlapping or adjacent ranges; returns the new n. */
static size_t sort_merge(struct imap_seq_range *r, size_t n)
{
	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), cmp_range);
	size_t out = 0;
	for (size_t i = 1; i < n; i++) {
		if ((uint64_t)r[i].lo <= (uint64_t)r[out].hi + 1) {
			if (r[i].hi > r[out].hi)
				r[out].hi = r[i].hi;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

/* nz-number: digit-nz *DIGIT, at most 4294967295. "*" gives *star_r = 1. */
static int parse_number(const char **sp, uint32_t *v_r, int *star_r)
{
	const char *s = *sp;
	*star_r = 0;
	if (*s == '*') {
		*star_r = 1;
		*v_r = UINT32_MAX;
		*sp = s + 1;
		return 0;
	}
	if (*s < '1' || *s > '9')
		return -1;
	uint64_t v = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*v_r = (uint32_t)v;
	*sp = s;
	return 0;
}

int imap_seqset_parse(const char *s, int allow_dollar, struct imap_seqset *out)
{
	memset(out, 0, sizeof(*out));
	if (s == NULL || *s == '\0')
		return -1;
	if (strcmp(s, "$") == 0) {
		if (!allow_dollar)
			return -1;
		out->dollar = 1;
		return 0;
	}

	struct imap_seq_range *r = NULL;
	size_t n = 0, alloc = 0, elements = 0;
	int star = 0;
	uint32_t star_lo = UINT32_MAX, star_hi = 0;
	for (;;) {
		uint32_t a, b;
		int a_star, b_star;
		if (++elements > IMAP_SEQSET_MAX_ELEMENTS || parse_number(&s, &a, &a_star) < 0)
			goto bad;
		b = a;
		b_star = a_star;
		if (*s == ':') {
			s++;
			if (parse_number(&s, &b, &b_star) < 0)
				goto bad;
		}
		if (a_star || b_star) {
			/* "n:*" / "*:n" / "*": remember the numbers paired with "*" */
			star = 1;
			if (!(a_star && b_star)) {
				uint32_t v = a_star ? b : a;
				if (v < star_lo)
					star_lo = v;
				if (v > star_hi)
					star_hi = v;
			}
		} else {
			if (n == alloc) {
				size_t na = alloc ? alloc * 2 : 8;
				struct imap_seq_range *nr = realloc(r, (na + 1) * sizeof(*nr));
				if (nr == NULL)
					goto bad;
				r = nr;
				alloc = na;
			}
			r[n].lo = a < b ? a : b;
			r[n].hi = a < b ? b : a;
			n++;
		}
		if (*s == '\0')
			break;
		if (*s != ',')
			goto bad;
		s++;
	}
	n = sort_merge(r, n);
	if (star) {
		/* alloc always leaves room for one more */
		if (r == NULL && (r = malloc(sizeof(*r))) == NULL)
			goto bad;
		r[n].lo = star_lo;
		r[n].hi = UINT32_MAX;
		n++;
	}
	out->r = r;
	out->n = n;
	out->star = star;
	out->star_hi = star_hi;
	return 0;
bad:
	free(r);
	return -1;
}

void imap_seqset_resolve(struct imap_seqset *set, uint32_t max)
{
	if (!set->star)
		return;
	struct imap_seq_range *st = &set->r[set->n - 1];
	/* every "n:*" becomes the range between n and max; their union is one
	 * range from the smallest n (or max) to the largest n (or max) */
	uint32_t lo = st->lo < max ? st->lo : max;
	uint32_t hi = set->star_hi > max ? set->star_hi : max;
	set->star = 0;
	set->star_hi = 0;
	if (lo == 0)
		lo = 1; /* max 0: "*" is no message */
	if (hi == 0) {
		set->n--;
	} else {
		st->lo = lo;
		st->hi = hi;
	}
	set->n = sort_merge(set->r, set->n);
}

int imap_seqset_contains(const struct imap_seqset *set, uint32_t v)
{
	size_t n = set->n;
	if (set->star) {
		if (v >= set->r[n - 1].lo)
			return 1;
		n--;
	}
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->r[mid].hi < v)
			lo = mid + 1;
		else if (set->r[mid].lo > v)
			hi = mid;
		else
			return 1;
	}
	return 0;
}

void imap_seqset_free(struct imap_seqset *set)
{
	if (set == NULL)
		return;
	free(set->r);
	memset(set, 0, sizeof(*set));
}

char *imap_seqset_format(const uint32_t *vals, size_t n)
{
	/* at most "4294967295:4294967295," per run, and a run takes >= 2 values
	 * when it needs both ends: 11 octets per value bound it */
	if (n > (SIZE_MAX - 1) / 11)
		return NULL;
	char *out = malloc(n * 11 + 1);
	if (out == NULL)
		return NULL;
	size_t len = 0;
	for (size_t i = 0; i < n;) {
		uint32_t first = vals[i], last = vals[i];
		size_t j = i + 1;
		while (j < n && (vals[j] == last || (last != UINT32_MAX && vals[j] == last + 1))) {
			last = vals[j];
			j++;
		}
		if (len > 0)
			out[len++] = ',';
		if (first == last)
			len += (size_t)sprintf(out + len, "%" PRIu32, first);
		else
			len += (size_t)sprintf(out + len, "%" PRIu32 ":%" PRIu32, first, last);
		i = j;
	}
	out[len] = '\0';
	return out;
}
