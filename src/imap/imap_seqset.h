/*
 * imap_seqset.h - IMAP sequence sets (RFC 3501 9 / RFC 9051 9 "sequence-set",
 * RFC 5182 "$"): parse, resolve "*", test membership, and format a list of
 * numbers compactly for COPYUID, ESEARCH and VANISHED.
 */
#ifndef PETREL_IMAP_SEQSET_H
#define PETREL_IMAP_SEQSET_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_SEQSET_MAX_ELEMENTS 10000 /* numbers and ranges in one set, before merging */

struct imap_seq_range {
	uint32_t lo, hi; /* lo <= hi */
};

/* After imap_seqset_resolve(): r[0..n) sorted, disjoint, not adjacent, and
 * free of 0 ("1:3,5").
 * Before it, when star is set, r[n-1] stands for everything the "*" ranges
 * cover: {lo, UINT32_MAX}, where lo is the smallest number paired with a "*"
 * (UINT32_MAX for a lone "*"); it is kept apart from r[0..n-1), which are
 * sorted and merged, so that resolving loses nothing ("5:*,10" with max 3 is
 * 3:5,10). A literal 4294967295 is a number, not "*". */
struct imap_seqset {
	struct imap_seq_range *r;
	size_t n;
	int dollar;        /* the set is "$" (RFC 5182; only when allowed): n is 0 */
	int star;          /* r[n-1] is the unresolved "*" range (see above) */
	uint32_t star_hi;  /* largest number paired with a "*" (0: none) */
};

/* Parse an RFC 3501 sequence-set ("1:3,5,7:*", "*", and "$" alone when
 * allow_dollar). nz-numbers only: "0", leading zeros, values over 4294967295,
 * empty elements ("1,,2", "1:", ",1") and more than IMAP_SEQSET_MAX_ELEMENTS
 * elements are refused. Ranges are unordered ("5:2" is "2:5").
 * Returns 0, or -1 with *out empty (nothing to free, but freeing is harmless). */
int imap_seqset_parse(const char *s, int allow_dollar, struct imap_seqset *out);

/* Replace "*" by max, the largest message number or UID in use (RFC 3501
 * 6.4.8, 9): "3:*" is 3:5 when max is 5 and 2:3 when max is 2. With max 0 (an
 * empty mailbox) a lone "*" resolves to nothing and no range holds 0. Numbers above
 * max are kept; the caller decides whether they are an error (message
 * numbers) or simply match nothing (UIDs). Idempotent. */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t max);

/* Whether v is in the set (before resolving, "*" counts as UINT32_MAX). */
int imap_seqset_contains(const struct imap_seqset *set, uint32_t v);

void imap_seqset_free(struct imap_seqset *set);

/* Format an ascending list of numbers compactly ("1:3,5"; duplicates are
 * folded) into a malloc'd string; "" for n == 0; NULL when out of memory. */
char *imap_seqset_format(const uint32_t *vals, size_t n);

#endif
