/* Unit tests for SCRAM-SHA-256: auth/scram.c secrets and the auth/sasl.c
 * server, driven by GNU SASL's client side in-process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/sasl.h"
#include "auth/scram.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	store_t *store;
	int64_t uid;
};

static Gsasl *client_ctx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void add_user(store_t *store, const char *address, const char *password)
{
	const char *err = NULL;
	char *scram = NULL;
	if (store_user_add(store, address, "*", &err) < 0)
		fail_msg("store_user_add: %s", err);
	if (password != NULL) {
		assert_int_equal(scram_secrets(password, &scram, &err), 0);
		if (store_user_set_scram(store, address, scram, &err) < 0)
			fail_msg("store_user_set_scram: %s", err);
		free(scram);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;
	assert_non_null(f);
	strcpy(f->dir, "/tmp/petrel-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	if (store_open(f->dir, &f->store, &err) < 0)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_domain_add(f->store, "example.org", &err), 0);
	add_user(f->store, "alice@example.org", "pencil");
	add_user(f->store, "nosecrets@example.org", NULL);
	assert_int_equal(store_user_lookup(f->store, "alice@example.org", &f->uid, &err), 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->store);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ------------------------------------------------------------- secrets */

static void unhex(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
}

static void test_secrets_format(void **state)
{
	(void)state;
	char *a, *b;
	const char *err;
	struct scram_secrets s;
	assert_int_equal(scram_secrets("pencil", &a, &err), 0);
	assert_int_equal(scram_secrets("pencil", &b, &err), 0);
	assert_string_not_equal(a, b); /* fresh salt each time */
	assert_int_equal(scram_parse(a, &s), 0);
	assert_int_equal(s.iter, 4096);
	assert_int_equal(strlen(s.salt), 24); /* 16 bytes */
	assert_int_equal(strlen(s.stored_key), 64);
	assert_int_equal(strlen(s.server_key), 64);
	assert_true(strncmp(a, "4096:", 5) == 0);
	free(a);
	free(b);
	assert_int_equal(scram_parse("4096:abc", &s), -1);
	assert_int_equal(scram_parse("x:abc:00:00", &s), -1);
	assert_int_equal(scram_parse("", &s), -1);
}

/* StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
 * HMAC(SaltedPassword, "Server Key") (RFC 5802 3), computed here with
 * OpenSSL on the RFC 7677 example salt. */
static void test_secrets_values(void **state)
{
	(void)state;
	static const unsigned char salt[] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
					      0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
	char *text;
	const char *err;
	struct scram_secrets s;
	assert_int_equal(scram_secrets_salted("pencil", salt, sizeof(salt), 4096, &text, &err), 0);
	assert_int_equal(scram_parse(text, &s), 0);
	assert_string_equal(s.salt, "W22ZaJ0SNY7soEsUEjb6gQ==");

	unsigned char salted[32], ck[32], sk[32], stored[32], got[32];
	unsigned len = 32;
	assert_int_equal(PKCS5_PBKDF2_HMAC("pencil", 6, salt, sizeof(salt), 4096, EVP_sha256(),
					   32, salted),
			 1);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &len);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, sk, &len);
	EVP_Digest(ck, 32, stored, NULL, EVP_sha256(), NULL);
	unhex(s.stored_key, got, 32);
	assert_memory_equal(got, stored, 32);
	unhex(s.server_key, got, 32);
	assert_memory_equal(got, sk, 32);
	free(text);
}

/* ------------------------------------------------------------ exchanges */

/* Returns the server's last step result; *failed_step_r the client message
 * (1 client-first, 2 client-final) the server refused; *salt_r the salt the
 * server-first message offered (decoded text, caller frees). */
static int exchange(store_t *store, const char *user, const char *password,
		    int *failed_step_r, char **server_first_r, sasl_server_t **srv_r)
{
	Gsasl_session *c;
	char *cout = NULL, *sout = NULL;
	int done = 0, r;
	assert_int_equal(gsasl_client_start(client_ctx, "SCRAM-SHA-256", &c), GSASL_OK);
	gsasl_property_set(c, GSASL_AUTHID, user);
	gsasl_property_set(c, GSASL_PASSWORD, password);
	sasl_server_t *srv = sasl_scram_start(store);
	assert_non_null(srv);
	*failed_step_r = 0;

	assert_int_equal(gsasl_step64(c, "", &cout), GSASL_NEEDS_MORE); /* client-first */
	r = sasl_scram_step(srv, cout, &sout, &done);
	gsasl_free(cout);
	if (r != 0) {
		*failed_step_r = 1;
		goto out;
	}
	assert_int_equal(done, 0);
	if (server_first_r != NULL) {
		char *dec;
		size_t n;
		assert_int_equal(gsasl_base64_from(sout, strlen(sout), &dec, &n), GSASL_OK);
		*server_first_r = strndup(dec, n);
		gsasl_free(dec);
	}
	assert_int_equal(gsasl_step64(c, sout, &cout), GSASL_NEEDS_MORE); /* client-final */
	free(sout);
	sout = NULL;
	r = sasl_scram_step(srv, cout, &sout, &done);
	gsasl_free(cout);
	if (r != 0) {
		assert_null(sout);
		*failed_step_r = 2;
		goto out;
	}
	assert_int_equal(done, 1);
	/* the client checks the server signature */
	assert_int_equal(gsasl_step64(c, sout, &cout), GSASL_OK);
	gsasl_free(cout);
	free(sout);
out:
	gsasl_finish(c);
	if (srv_r != NULL)
		*srv_r = srv;
	else
		sasl_free(srv);
	return r;
}

static void test_exchange_ok(void **state)
{
	struct fixture *f = *state;
	int failed;
	sasl_server_t *srv;
	char *sf = NULL;
	assert_int_equal(exchange(f->store, "alice@example.org", "pencil", &failed, &sf, &srv), 0);
	assert_int_equal(failed, 0);
	assert_int_equal(sasl_user_id(srv), f->uid);
	assert_string_equal(sasl_authid(srv), "alice@example.org");
	assert_non_null(strstr(sf, ",i=4096"));
	/* no second round after success */
	char *out;
	int done;
	assert_int_equal(sasl_scram_step(srv, "", &out, &done), -1);
	sasl_free(srv);
	free(sf);
}

static void test_wrong_password(void **state)
{
	struct fixture *f = *state;
	int failed;
	sasl_server_t *srv;
	assert_int_equal(exchange(f->store, "alice@example.org", "pencil2", &failed, NULL, &srv),
			 -1);
	assert_int_equal(failed, 2);
	assert_int_equal(sasl_user_id(srv), 0);
	assert_null(sasl_authid(srv));
	sasl_free(srv);
}

/* salt and iteration count of a server-first message "r=..,s=..,i=.." */
static char *salt_iter(const char *sf)
{
	const char *s = strstr(sf, ",s=");
	assert_non_null(s);
	return strdup(s + 3);
}

static void test_unknown_user(void **state)
{
	struct fixture *f = *state;
	int failed;
	char *sf1, *sf2, *sf3;
	assert_int_equal(exchange(f->store, "bob@example.org", "pencil", &failed, &sf1, NULL), -1);
	assert_int_equal(failed, 2); /* same step as a wrong password */
	assert_int_equal(exchange(f->store, "bob@example.org", "x", &failed, &sf2, NULL), -1);
	assert_int_equal(failed, 2);
	assert_int_equal(exchange(f->store, "carol@nowhere.test", "x", &failed, &sf3, NULL), -1);
	assert_int_equal(failed, 2);
	char *a = salt_iter(sf1), *b = salt_iter(sf2), *c = salt_iter(sf3);
	assert_string_equal(a, b); /* stable for one name */
	assert_string_not_equal(a, c);
	assert_non_null(strstr(a, ",i=4096"));
	assert_int_equal(strlen(a), strlen("W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
	free(a);
	free(b);
	free(c);
	free(sf1);
	free(sf2);
	free(sf3);
}

static void test_user_without_secrets(void **state)
{
	struct fixture *f = *state;
	int failed;
	const char *err;
	assert_int_equal(exchange(f->store, "nosecrets@example.org", "", &failed, NULL, NULL), -1);
	assert_int_equal(failed, 2);
	/* a new password hash removes the old secrets */
	assert_int_equal(store_user_set_password(f->store, "alice@example.org", "*", &err), 0);
	char *scram = (char *)"x";
	assert_int_equal(store_user_scram(f->store, "alice@example.org", NULL, &scram, &err), 0);
	assert_null(scram);
	assert_int_equal(exchange(f->store, "alice@example.org", "pencil", &failed, NULL, NULL), -1);
	assert_int_equal(failed, 2);
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	char *out = NULL;
	int done;
	sasl_server_t *srv = sasl_scram_start(f->store);
	assert_int_equal(sasl_scram_step(srv, "!!!", &out, &done), -1);
	assert_null(out);
	sasl_free(srv);
	srv = sasl_scram_start(f->store);
	/* "x,,n=a,r=b": bad gs2 header */
	assert_int_equal(sasl_scram_step(srv, "eCwsbj1hLHI9Yg==", &out, &done), -1);
	sasl_free(srv);
	/* an authzid naming someone else */
	Gsasl_session *c;
	char *cout;
	assert_int_equal(gsasl_client_start(client_ctx, "SCRAM-SHA-256", &c), GSASL_OK);
	gsasl_property_set(c, GSASL_AUTHID, "alice@example.org");
	gsasl_property_set(c, GSASL_AUTHZID, "nosecrets@example.org");
	gsasl_property_set(c, GSASL_PASSWORD, "pencil");
	srv = sasl_scram_start(f->store);
	assert_int_equal(gsasl_step64(c, "", &cout), GSASL_NEEDS_MORE);
	assert_int_equal(sasl_scram_step(srv, cout, &out, &done), 0);
	gsasl_free(cout);
	assert_int_equal(gsasl_step64(c, out, &cout), GSASL_NEEDS_MORE);
	free(out);
	assert_int_equal(sasl_scram_step(srv, cout, &out, &done), -1);
	gsasl_free(cout);
	gsasl_finish(c);
	sasl_free(srv);
}

/* A schema 3 database (no users.scram_sha256) moves to 4 when opened. */
static void test_migration(void **state)
{
	struct fixture *f = *state;
	const char *err;
	char path[128];
	sqlite3 *db;
	store_close(f->store);
	snprintf(path, sizeof(path), "%s/petrel.db", f->dir);
	struct stat st;
	if (stat(path, &st) < 0)
		skip(); /* the database file has another name */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "ALTER TABLE users DROP COLUMN scram_sha256;"
				      "UPDATE meta SET value = 3 WHERE key = 'schema_version';",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	if (store_open(f->dir, &f->store, &err) < 0)
		fail_msg("store_open: %s", err);
	char *scram = NULL;
	assert_int_equal(store_user_scram(f->store, "alice@example.org", NULL, &scram, &err), 0);
	add_user(f->store, "dave@example.org", "pw");
	int64_t uid = 0;
	assert_int_equal(store_user_scram(f->store, "dave@example.org", &uid, &scram, &err), 1);
	assert_true(uid > 0);
	free(scram);
}

int main(void)
{
	if (gsasl_init(&client_ctx) != GSASL_OK)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secrets_format),
		cmocka_unit_test(test_secrets_values),
		cmocka_unit_test_setup_teardown(test_exchange_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_without_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	gsasl_done(client_ctx);
	return rc;
}
