/*
 * scram.h - SCRAM-SHA-256 secrets (RFC 5802, RFC 7677) for Petrel's users.
 *
 * The store keeps, next to the password hash, one text per user:
 * "iter:salt_base64:storedkey_hex:serverkey_hex". With StoredKey and
 * ServerKey the server checks a SCRAM exchange without knowing the password
 * and without PBKDF2 at login time. Computing them costs SCRAM_ITERATIONS
 * rounds of PBKDF2-HMAC-SHA-256: do it when the password is set.
 */
#ifndef PETREL_AUTH_SCRAM_H
#define PETREL_AUTH_SCRAM_H

#include <stddef.h>

#define SCRAM_ITERATIONS 4096 /* the RFC 7677 minimum, what clients expect */
#define SCRAM_SALT_LEN 16

struct scram_secrets {
	unsigned iter;
	char salt[64];        /* base64 */
	char stored_key[65];  /* hex, 32 bytes */
	char server_key[65];  /* hex, 32 bytes */
};

/* Secrets for password with a fresh random salt: 0 with a malloc'd string in
 * *scram_r (the caller frees it), -1 with a static message in *error_r. */
int scram_secrets(const char *password, char **scram_r, const char **error_r);

/* Same, with the given salt and iteration count (tests, fixed vectors). */
int scram_secrets_salted(const char *password, const unsigned char *salt, size_t salt_len,
			 unsigned iter, char **scram_r, const char **error_r);

/* Split a stored text into its parts; -1 when malformed. */
int scram_parse(const char *scram, struct scram_secrets *out);

#endif
