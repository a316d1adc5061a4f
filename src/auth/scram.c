/* SCRAM-SHA-256 secrets: see scram.h. */
#include "auth/scram.h"

#include <gsasl.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int scram_secrets_salted(const char *password, const unsigned char *salt, size_t salt_len,
			 unsigned iter, char **scram_r, const char **error_r)
{
	char salted[GSASL_HASH_MAX_SIZE], client_key[GSASL_HASH_MAX_SIZE];
	char server_key[GSASL_HASH_MAX_SIZE], stored_key[GSASL_HASH_MAX_SIZE];
	char *salt64 = NULL, *stored_hex = NULL, *server_hex = NULL;
	size_t n;
	int ret = -1;

	*scram_r = NULL;
	if (gsasl_scram_secrets_from_password(GSASL_HASH_SHA256, password, iter,
					      (const char *)salt, salt_len, salted, client_key,
					      server_key, stored_key) != GSASL_OK) {
		/* SASLprep refuses some strings (e.g. control characters) */
		*error_r = "cannot compute SCRAM secrets (password refused by SASLprep?)";
		goto out;
	}
	if (gsasl_base64_to((const char *)salt, salt_len, &salt64, &n) != GSASL_OK ||
	    gsasl_hex_to(stored_key, GSASL_HASH_SHA256_SIZE, &stored_hex, &n) != GSASL_OK ||
	    gsasl_hex_to(server_key, GSASL_HASH_SHA256_SIZE, &server_hex, &n) != GSASL_OK) {
		*error_r = "out of memory";
		goto out;
	}
	if (asprintf(scram_r, "%u:%s:%s:%s", iter, salt64, stored_hex, server_hex) < 0) {
		*scram_r = NULL;
		*error_r = "out of memory";
		goto out;
	}
	ret = 0;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(server_key, sizeof(server_key));
	explicit_bzero(stored_key, sizeof(stored_key));
	gsasl_free(salt64);
	gsasl_free(stored_hex);
	gsasl_free(server_hex);
	return ret;
}

int scram_secrets(const char *password, char **scram_r, const char **error_r)
{
	unsigned char salt[SCRAM_SALT_LEN];

	if (gsasl_random((char *)salt, sizeof(salt)) != GSASL_OK) {
		*scram_r = NULL;
		*error_r = "no random bytes for the SCRAM salt";
		return -1;
	}
	return scram_secrets_salted(password, salt, sizeof(salt), SCRAM_ITERATIONS, scram_r,
				    error_r);
}

static int copy_field(const char **p, char sep, char *out, size_t size, const char *allowed)
{
	const char *end = sep != '\0' ? strchr(*p, sep) : *p + strlen(*p);
	if (end == NULL || end == *p || (size_t)(end - *p) >= size ||
	    strspn(*p, allowed) < (size_t)(end - *p))
		return -1;
	memcpy(out, *p, (size_t)(end - *p));
	out[end - *p] = '\0';
	*p = sep != '\0' ? end + 1 : end;
	return 0;
}

int scram_parse(const char *scram, struct scram_secrets *out)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
	static const char hex[] = "0123456789abcdefABCDEF";
	char iter[12];
	const char *p = scram;
	char *end;

	memset(out, 0, sizeof(*out));
	if (copy_field(&p, ':', iter, sizeof(iter), "0123456789") < 0 ||
	    copy_field(&p, ':', out->salt, sizeof(out->salt), b64) < 0 ||
	    copy_field(&p, ':', out->stored_key, sizeof(out->stored_key), hex) < 0 ||
	    copy_field(&p, '\0', out->server_key, sizeof(out->server_key), hex) < 0)
		return -1;
	unsigned long v = strtoul(iter, &end, 10);
	if (*end != '\0' || v == 0 || v > 10000000 || strlen(out->stored_key) != 64 ||
	    strlen(out->server_key) != 64)
		return -1;
	out->iter = (unsigned)v;
	return 0;
}
