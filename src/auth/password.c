/*
 * password.c - yescrypt hashes through libxcrypt.
 */
#include "auth/password.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

/* A valid hash with the same method and cost as password_hash() makes, so
 * that password_verify_dummy() costs what a real verification costs. Its
 * password is irrelevant: the result is thrown away. */
static const char dummy_hash[] =
	"$y$j9T$WI1hl0tVdWWASD.YJCsGe.$prcLMuyzN.KVpS8K/t25uUE.hRl.OhbpdjjfT9ytFx4";

/* Equal-length buffers compared without an early exit, so the time taken
 * does not tell an attacker how many leading bytes matched. */
static int equal_constant_time(const char *a, const char *b, size_t len)
{
	volatile unsigned char diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return diff == 0;
}

/* crypt_r() into a heap crypt_data (it is far too big for a worker's stack),
 * then compare. The data is wiped before it is freed: it held the password. */
static int verify(const char *password, const char *hash)
{
	struct crypt_data *data;
	const char *out;
	size_t hash_len;
	int match = 0;

	if (password == NULL || hash == NULL)
		return 0;
	data = calloc(1, sizeof(*data));
	if (data == NULL)
		return 0;
	out = crypt_r(password, hash, data);
	/* Failure is NULL or a string starting with '*', depending on how
	 * libxcrypt was built; a stored "*" must never match either way. */
	if (out != NULL && out[0] != '*') {
		hash_len = strlen(hash);
		if (strlen(out) == hash_len)
			match = equal_constant_time(out, hash, hash_len);
	}
	explicit_bzero(data, sizeof(*data));
	free(data);
	return match;
}

int password_hash(const char *password, char **hash_r, const char **error_r)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data;
	const char *out;

	*hash_r = NULL;
	if (password == NULL) {
		*error_r = "no password given";
		return -1;
	}
	/* NULL random bytes: libxcrypt reads the salt from the OS entropy
	 * source itself; count 0 picks yescrypt's default cost. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		*error_r = "cannot make a yescrypt salt";
		return -1;
	}
	data = calloc(1, sizeof(*data));
	if (data == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	out = crypt_r(password, setting, data);
	if (out == NULL || out[0] == '*') {
		*error_r = "yescrypt hashing failed";
	} else if ((*hash_r = strdup(out)) == NULL) {
		*error_r = "out of memory";
	}
	explicit_bzero(data, sizeof(*data));
	free(data);
	return *hash_r == NULL ? -1 : 0;
}

int password_verify(const char *password, const char *hash)
{
	return verify(password, hash);
}

int password_verify_dummy(const char *password)
{
	(void)verify(password != NULL ? password : "", dummy_hash);
	return 0;
}
