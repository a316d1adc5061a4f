/*
 * store_fixture.h - a store in a directory of its own, made and removed
 * around each store unit test (test_store*.c). Include after <cmocka.h>.
 */
#ifndef PETREL_TEST_STORE_FIXTURE_H
#define PETREL_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"

/* Room for the directory name ("/tmp/petrel-test-XXXXXX"). */
#define STORE_FIXTURE_DIR_MAX 64

static inline int store_fixture_rm_entry(const char *path, const struct stat *st, int flag,
					 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Make a new directory under /tmp (its name in dir) and open a store in
 * it; fails the test otherwise. */
static inline void store_fixture_open(char dir[static STORE_FIXTURE_DIR_MAX], store_t **store_r)
{
	const char *error = NULL;

	strcpy(dir, "/tmp/petrel-test-XXXXXX");
	assert_non_null(mkdtemp(dir));
	if (store_open(dir, store_r, &error) < 0)
		fail_msg("store_open: %s", error);
}

/* Close the store and remove its directory. */
static inline void store_fixture_close(const char *dir, store_t *store)
{
	store_close(store);
	nftw(dir, store_fixture_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Add the domain example.org and the user alice@example.org (with a
 * placeholder password hash); alice's user id. */
static inline int64_t store_fixture_add_alice(store_t *store)
{
	const char *error = NULL;
	int64_t alice = 0;

	assert_int_equal(store_domain_add(store, "example.org", &error), 0);
	if (store_user_add(store, "alice@example.org", "$y$fake", &error) < 0)
		fail_msg("store_user_add: %s", error);
	assert_int_equal(store_user_lookup(store, "alice@example.org", &alice, &error), 1);
	return alice;
}

#endif
