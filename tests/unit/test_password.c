/* Unit tests for auth/password.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth/password.h"

static void test_hash_is_yescrypt(void **state)
{
	const char *error = NULL;
	char *hash = NULL;

	(void)state;
	assert_int_equal(password_hash("correct horse", &hash, &error), 0);
	assert_non_null(hash);
	assert_memory_equal(hash, "$y$", 3);
	free(hash);
}

static void test_verify_right_and_wrong(void **state)
{
	const char *error = NULL;
	char *hash = NULL;

	(void)state;
	assert_int_equal(password_hash("correct horse", &hash, &error), 0);
	assert_int_equal(password_verify("correct horse", hash), 1);
	assert_int_equal(password_verify("correct horsE", hash), 0);
	assert_int_equal(password_verify("correct hors", hash), 0);
	assert_int_equal(password_verify("", hash), 0);
	free(hash);
}

static void test_empty_password_round_trips(void **state)
{
	const char *error = NULL;
	char *hash = NULL;

	(void)state;
	assert_int_equal(password_hash("", &hash, &error), 0);
	assert_int_equal(password_verify("", hash), 1);
	assert_int_equal(password_verify("x", hash), 0);
	free(hash);
}

static void test_verify_rejects_bad_hashes(void **state)
{
	(void)state;
	assert_int_equal(password_verify("secret", "*"), 0);
	assert_int_equal(password_verify("secret", "!"), 0);
	assert_int_equal(password_verify("secret", ""), 0);
	assert_int_equal(password_verify("secret", "$y$garbage"), 0);
	assert_int_equal(password_verify("secret", NULL), 0);
	assert_int_equal(password_verify(NULL, "$y$j9T$x$y"), 0);
}

/* password_verify_dummy() uses a fixed hash of this method and cost; if
 * libxcrypt's default cost ever changes, the dummy must follow or unknown
 * users would answer faster than known ones. */
static void test_default_cost_matches_dummy(void **state)
{
	const char *error = NULL;
	char *hash = NULL;

	(void)state;
	assert_int_equal(password_hash("x", &hash, &error), 0);
	assert_memory_equal(hash, "$y$j9T$", 7);
	free(hash);
}

static void test_dummy_returns_zero(void **state)
{
	(void)state;
	assert_int_equal(password_verify_dummy("anything"), 0);
	assert_int_equal(password_verify_dummy(""), 0);
	assert_int_equal(password_verify_dummy(NULL), 0);
}

static void test_salt_differs(void **state)
{
	const char *error = NULL;
	char *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(password_hash("same", &a, &error), 0);
	assert_int_equal(password_hash("same", &b, &error), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(password_verify("same", a), 1);
	assert_int_equal(password_verify("same", b), 1);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_is_yescrypt),
		cmocka_unit_test(test_verify_right_and_wrong),
		cmocka_unit_test(test_empty_password_round_trips),
		cmocka_unit_test(test_verify_rejects_bad_hashes),
		cmocka_unit_test(test_default_cost_matches_dummy),
		cmocka_unit_test(test_dummy_returns_zero),
		cmocka_unit_test(test_salt_differs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
