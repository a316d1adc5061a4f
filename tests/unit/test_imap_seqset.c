/*
 * Unit tests for imap/imap_seqset.c: RFC 3501 9 / RFC 9051 9 sequence-set,
 * RFC 5182 "$", "*" resolution (RFC 3501 6.4.8), and compact formatting.
 * Inputs are copied into exact-size buffers so that ASan sees over-reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_seqset.h"

static int parse(const char *s, int allow_dollar, struct imap_seqset *set)
{
	size_t n = strlen(s) + 1;
	char *copy = malloc(n);
	assert_non_null(copy);
	memcpy(copy, s, n);
	int r = imap_seqset_parse(copy, allow_dollar, set);
	free(copy);
	return r;
}

/* The ranges as "lo:hi,..." ("*" for UINT32_MAX while unresolved). */
static void ranges(const struct imap_seqset *set, char *out, size_t outsz)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < set->n; i++) {
		char lo[16], hi[16];
		int star_entry = set->star && i == set->n - 1;
		snprintf(lo, sizeof(lo), "%u", set->r[i].lo);
		snprintf(hi, sizeof(hi), "%u", set->r[i].hi);
		if (star_entry && set->r[i].lo == UINT32_MAX)
			strcpy(lo, "*");
		if (star_entry)
			strcpy(hi, "*");
		int n = snprintf(out + len, outsz - len, "%s%s:%s", i ? "," : "", lo, hi);
		assert_true(n > 0 && (size_t)n < outsz - len);
		len += (size_t)n;
	}
}

static void check_parse(const char *s, const char *want)
{
	struct imap_seqset set;
	char got[1024];
	if (parse(s, 0, &set) != 0)
		fail_msg("\"%s\" refused", s);
	ranges(&set, got, sizeof(got));
	imap_seqset_free(&set);
	if (strcmp(got, want) != 0)
		fail_msg("\"%s\": want %s, got %s", s, want, got);
}

static void check_resolved(const char *s, uint32_t max, const char *want)
{
	struct imap_seqset set;
	char got[1024];
	assert_int_equal(parse(s, 0, &set), 0);
	imap_seqset_resolve(&set, max);
	assert_int_equal(set.star, 0);
	ranges(&set, got, sizeof(got));
	/* sorted, disjoint, not adjacent, no 0 */
	for (size_t i = 0; i < set.n; i++) {
		assert_true(set.r[i].lo >= 1 && set.r[i].lo <= set.r[i].hi);
		if (i > 0)
			assert_true((uint64_t)set.r[i - 1].hi + 1 < set.r[i].lo);
	}
	/* idempotent */
	imap_seqset_resolve(&set, max);
	char again[1024];
	ranges(&set, again, sizeof(again));
	assert_string_equal(got, again);
	imap_seqset_free(&set);
	if (strcmp(got, want) != 0)
		fail_msg("\"%s\" max %u: want %s, got %s", s, max, want, got);
}

static void check_bad(const char *s)
{
	struct imap_seqset set;
	if (parse(s, 1, &set) == 0) {
		imap_seqset_free(&set);
		fail_msg("\"%s\" accepted", s);
	}
	assert_null(set.r);
	assert_int_equal(set.n, 0);
	imap_seqset_free(&set);
}

static void test_parse(void **state)
{
	(void)state;
	check_parse("1", "1:1");
	check_parse("1:3,5", "1:3,5:5");
	check_parse("5:2", "2:5");
	check_parse("3,1,2", "1:3");
	check_parse("1:3,4:6,8", "1:6,8:8");     /* adjacent ranges merge */
	check_parse("1:10,3:4,2", "1:10");
	check_parse("4294967295", "4294967295:4294967295");
	check_parse("1:4294967295", "1:4294967295");
	check_parse("4294967294,4294967295,1", "1:1,4294967294:4294967295");
	check_parse("*", "*:*");
	check_parse("3:*", "3:*");
	check_parse("*:3", "3:*");
	check_parse("*:*", "*:*");
	check_parse("2,5:*,10", "2:2,10:10,5:*");
	check_parse("7:*,3:*", "3:*");
}

static void test_bad(void **state)
{
	(void)state;
	check_bad("");
	check_bad("0");
	check_bad("0:5");
	check_bad("5:0");
	check_bad("01");
	check_bad("1:");
	check_bad(":1");
	check_bad("1,,2");
	check_bad(",1");
	check_bad("1,");
	check_bad("1:2:3");
	check_bad("99999999999");
	check_bad("4294967296");
	check_bad("18446744073709551617");
	check_bad("1 ");
	check_bad(" 1");
	check_bad("a");
	check_bad("-1");
	check_bad("+1");
	check_bad("**");
	check_bad("1*");
	check_bad("$,1");
	check_bad("1,$");
	check_bad("$$");
}

static void test_dollar(void **state)
{
	(void)state;
	struct imap_seqset set;
	assert_int_equal(parse("$", 1, &set), 0);
	assert_int_equal(set.dollar, 1);
	assert_int_equal(set.n, 0);
	assert_int_equal(imap_seqset_contains(&set, 1), 0);
	imap_seqset_resolve(&set, 10);
	assert_int_equal(set.n, 0);
	imap_seqset_free(&set);
	assert_int_equal(parse("$", 0, &set), -1);
	assert_int_equal(parse("1", 1, &set), 0);
	assert_int_equal(set.dollar, 0);
	imap_seqset_free(&set);
}

static void test_resolve(void **state)
{
	(void)state;
	check_resolved("3:*", 5, "3:5");
	check_resolved("3:*", 2, "2:3");
	check_resolved("3:*", 3, "3:3");
	check_resolved("*", 5, "5:5");
	check_resolved("*:*", 5, "5:5");
	check_resolved("1:*", 5, "1:5");
	check_resolved("5:2", 5, "2:5");
	check_resolved("1,3:*", 5, "1:1,3:5");
	check_resolved("1,3:*", 2, "1:3");
	/* nothing lost to an early merge: 10 stays when * is 3 */
	check_resolved("5:*,10", 3, "3:5,10:10");
	check_resolved("5:*,10:*", 3, "3:10");
	check_resolved("5:*,10:*", 7, "5:10");
	check_resolved("*,9", 4, "4:4,9:9");
	/* numbers above max are kept: the caller decides */
	check_resolved("1:20", 5, "1:20");
	/* a literal 4294967295 is not "*" */
	check_resolved("4294967295", 5, "4294967295:4294967295");
	check_resolved("1:4294967295", 5, "1:4294967295");
	/* an empty mailbox: "*" is no message, and no range holds 0 */
	check_resolved("*", 0, "");
	check_resolved("1:*", 0, "1:1");
	check_resolved("1:*,3", 0, "1:1,3:3");
	check_resolved("4:*,2", 0, "1:4");
	check_resolved("1,2", 0, "1:2");
}

static void test_contains(void **state)
{
	(void)state;
	struct imap_seqset set;
	assert_int_equal(parse("2,5:7,10:*", 0, &set), 0);
	/* before resolving, "*" counts as UINT32_MAX */
	assert_false(imap_seqset_contains(&set, 0));
	assert_false(imap_seqset_contains(&set, 1));
	assert_true(imap_seqset_contains(&set, 2));
	assert_false(imap_seqset_contains(&set, 3));
	assert_true(imap_seqset_contains(&set, 5));
	assert_true(imap_seqset_contains(&set, 7));
	assert_false(imap_seqset_contains(&set, 8));
	assert_true(imap_seqset_contains(&set, 10));
	assert_true(imap_seqset_contains(&set, UINT32_MAX));
	imap_seqset_resolve(&set, 8);
	assert_true(imap_seqset_contains(&set, 8));
	assert_true(imap_seqset_contains(&set, 9));
	assert_true(imap_seqset_contains(&set, 10));
	assert_false(imap_seqset_contains(&set, 11));
	assert_false(imap_seqset_contains(&set, UINT32_MAX));
	imap_seqset_free(&set);
	imap_seqset_free(&set); /* harmless twice */

	struct imap_seqset empty = { 0 };
	assert_false(imap_seqset_contains(&empty, 1));
}

static void test_limit(void **state)
{
	(void)state;
	/* 10000 elements: accepted; 10001: refused, merged or not */
	size_t cap = 10001 * 12 + 1;
	char *s = malloc(cap);
	assert_non_null(s);
	size_t len = 0;
	for (unsigned i = 1; i <= 10000; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%u", i > 1 ? "," : "", i * 2);
	struct imap_seqset set;
	assert_int_equal(parse(s, 0, &set), 0);
	assert_int_equal(set.n, 10000);
	assert_true(imap_seqset_contains(&set, 20000));
	assert_false(imap_seqset_contains(&set, 19999));
	imap_seqset_free(&set);
	snprintf(s + len, cap - len, ",1");
	assert_int_equal(parse(s, 0, &set), -1);

	len = 0;
	for (unsigned i = 1; i <= 10001; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s1", i > 1 ? "," : "");
	assert_int_equal(parse(s, 0, &set), -1);
	free(s);
}

static void check_format(const uint32_t *v, size_t n, const char *want)
{
	char *got = imap_seqset_format(v, n);
	assert_non_null(got);
	if (strcmp(got, want) != 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "want %s, got %s", want, got);
		free(got);
		fail_msg("%s", msg);
	}
	/* it parses back (when not empty) */
	if (n > 0) {
		struct imap_seqset set;
		assert_int_equal(parse(got, 0, &set), 0);
		for (size_t i = 0; i < n; i++)
			assert_true(imap_seqset_contains(&set, v[i]));
		imap_seqset_free(&set);
	}
	free(got);
}

static void test_format(void **state)
{
	(void)state;
	check_format(NULL, 0, "");
	uint32_t a[] = { 1, 2, 3, 5 };
	check_format(a, 4, "1:3,5");
	uint32_t b[] = { 7 };
	check_format(b, 1, "7");
	uint32_t c[] = { 1, 3, 5, 6 };
	check_format(c, 4, "1,3,5:6");
	uint32_t d[] = { 4, 4, 5, 5, 9 };
	check_format(d, 5, "4:5,9");
	uint32_t e[] = { 4294967293u, 4294967294u, 4294967295u };
	check_format(e, 3, "4294967293:4294967295");
	uint32_t f[] = { 4294967295u, 4294967295u };
	check_format(f, 2, "4294967295");
	/* worst case for the size bound: every value alone and 10 digits */
	uint32_t g[] = { 1000000000u, 1000000002u, 1000000004u };
	check_format(g, 3, "1000000000,1000000002,1000000004");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_dollar),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
