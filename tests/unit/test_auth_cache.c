/* Unit tests for auth/auth_cache.c: matching, expiry, eviction. Times are
 * passed in (milliseconds), so nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"

#define H1 "$y$j9T$saltsaltsalt$hashhashhashhashhashhashhashhashhashhash1"
#define H2 "$y$j9T$othersaltxyz$hashhashhashhashhashhashhashhashhashhash2"

static auth_cache_t *make(unsigned ttl, size_t size)
{
	const char *err = NULL;
	auth_cache_t *c = auth_cache_new(ttl, size, &err);
	assert_non_null(c);
	return c;
}

static void test_refuses_zero(void **state)
{
	const char *err = NULL;
	(void)state;
	assert_null(auth_cache_new(0, 10, &err));
	assert_non_null(err);
	err = NULL;
	assert_null(auth_cache_new(10, 0, &err));
	assert_non_null(err);
}

static void test_match_needs_user_hash_and_password(void **state)
{
	(void)state;
	auth_cache_t *c = make(60, 10);
	assert_int_equal(auth_cache_check(c, 1, H1, "pw", 1000), 0);
	auth_cache_store(c, 1, H1, "pw", 1000);
	assert_int_equal(auth_cache_check(c, 1, H1, "pw", 1001), 1);
	assert_int_equal(auth_cache_check(c, 1, H1, "pW", 1001), 0);
	assert_int_equal(auth_cache_check(c, 1, H1, "pw ", 1001), 0);
	assert_int_equal(auth_cache_check(c, 1, H1, "", 1001), 0);
	/* a password change rewrites the stored hash */
	assert_int_equal(auth_cache_check(c, 1, H2, "pw", 1001), 0);
	/* another user with the same hash and password has no entry */
	assert_int_equal(auth_cache_check(c, 2, H1, "pw", 1001), 0);
	/* a miss does not drop the entry; only forget does */
	assert_int_equal(auth_cache_check(c, 1, H1, "pw", 1002), 1);
	auth_cache_forget(c, 1, 1003);
	assert_int_equal(auth_cache_check(c, 1, H1, "pw", 1004), 0);
	assert_int_equal(auth_cache_count(c), 0);
	auth_cache_forget(c, 1, 1005); /* nothing to forget */
	auth_cache_free(c);
}

/* The hash and the password are MACed apart: moving octets from one to the
 * other must not give the same MAC. */
static void test_parts_are_separated(void **state)
{
	(void)state;
	auth_cache_t *c = make(60, 10);
	auth_cache_store(c, 1, "$1$ab", "cd", 0);
	assert_int_equal(auth_cache_check(c, 1, "$1$ab", "cd", 1), 1);
	assert_int_equal(auth_cache_check(c, 1, "$1$abc", "d", 1), 0);
	auth_cache_free(c);
}

static void test_expiry_counts_from_verification(void **state)
{
	(void)state;
	auth_cache_t *c = make(2, 10);
	auth_cache_store(c, 7, H1, "pw", 10000);
	assert_int_equal(auth_cache_check(c, 7, H1, "pw", 11999), 1);
	/* the hit above did not extend it */
	assert_int_equal(auth_cache_check(c, 7, H1, "pw", 12000), 0);
	assert_int_equal(auth_cache_count(c), 0); /* pruned, wiped */
	/* a new verification starts a new TTL */
	auth_cache_store(c, 7, H1, "pw", 20000);
	auth_cache_store(c, 7, H1, "pw", 21000);
	assert_int_equal(auth_cache_count(c), 1);
	assert_int_equal(auth_cache_check(c, 7, H1, "pw", 22500), 1);
	assert_int_equal(auth_cache_check(c, 7, H1, "pw", 23000), 0);
	auth_cache_free(c);
}

static void test_full_evicts_oldest(void **state)
{
	(void)state;
	auth_cache_t *c = make(60, 3);
	auth_cache_store(c, 1, H1, "a", 0);
	auth_cache_store(c, 2, H1, "b", 1);
	auth_cache_store(c, 3, H1, "c", 2);
	/* re-verifying 1 makes it the newest */
	auth_cache_store(c, 1, H1, "a", 3);
	auth_cache_store(c, 4, H1, "d", 4);
	assert_int_equal(auth_cache_count(c), 3);
	assert_int_equal(auth_cache_check(c, 2, H1, "b", 5), 0);
	assert_int_equal(auth_cache_check(c, 1, H1, "a", 5), 1);
	assert_int_equal(auth_cache_check(c, 3, H1, "c", 5), 1);
	assert_int_equal(auth_cache_check(c, 4, H1, "d", 5), 1);
	auth_cache_free(c);
}

static void test_full_evicts_expired_first(void **state)
{
	(void)state;
	auth_cache_t *c = make(10, 3);
	auth_cache_store(c, 1, H1, "a", 0);
	auth_cache_store(c, 2, H1, "b", 5000);
	auth_cache_store(c, 3, H1, "c", 6000);
	/* 1 has expired at 10000: it goes, and nothing else does */
	auth_cache_store(c, 4, H1, "d", 10000);
	auth_cache_store(c, 5, H1, "e", 10001); /* full again: 2, the oldest, goes */
	assert_int_equal(auth_cache_count(c), 3);
	assert_int_equal(auth_cache_check(c, 1, H1, "a", 10002), 0);
	assert_int_equal(auth_cache_check(c, 2, H1, "b", 10002), 0);
	assert_int_equal(auth_cache_check(c, 3, H1, "c", 10002), 1);
	assert_int_equal(auth_cache_check(c, 4, H1, "d", 10002), 1);
	assert_int_equal(auth_cache_check(c, 5, H1, "e", 10002), 1);
	auth_cache_free(c);
}

/* Many users through a small table: chains, eviction and reuse of slots
 * keep the structure consistent (ASan and the counts check it). */
static void test_churn(void **state)
{
	(void)state;
	auth_cache_t *c = make(1, 100); /* 1 s: entries outlive 1000 stores */
	char pw[32];
	for (int64_t u = 0; u < 5000; u++) {
		snprintf(pw, sizeof(pw), "pw%lld", (long long)u);
		auth_cache_store(c, u * 16, H1, pw, (uint64_t)u);
		if (u % 7 == 0)
			auth_cache_forget(c, (u / 2) * 16, (uint64_t)u);
	}
	assert_true(auth_cache_count(c) <= 100);
	/* the newest users are there, the first ones are not */
	for (int64_t u = 4990; u < 5000; u++) {
		snprintf(pw, sizeof(pw), "pw%lld", (long long)u);
		assert_int_equal(auth_cache_check(c, u * 16, H1, pw, 5000), 1);
	}
	assert_int_equal(auth_cache_check(c, 0, H1, "pw0", 5000), 0);
	/* all expire together (last stored at 4999 + 1 s) */
	assert_int_equal(auth_cache_check(c, 4999 * 16, H1, "pw4999", 5999), 0);
	assert_int_equal(auth_cache_count(c), 0);
	auth_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refuses_zero),
		cmocka_unit_test(test_match_needs_user_hash_and_password),
		cmocka_unit_test(test_parts_are_separated),
		cmocka_unit_test(test_expiry_counts_from_verification),
		cmocka_unit_test(test_full_evicts_oldest),
		cmocka_unit_test(test_full_evicts_expired_first),
		cmocka_unit_test(test_churn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
