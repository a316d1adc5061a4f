/*
 * password.h - password hashes for Petrel's own users.
 *
 * Hashes are crypt(3) strings made with yescrypt (libxcrypt). Verification
 * accepts any method libxcrypt knows, so hashes imported from elsewhere keep
 * working. Every function may take tens of milliseconds by design: do not
 * call them on an event-loop thread.
 */
#ifndef PETREL_AUTH_PASSWORD_H
#define PETREL_AUTH_PASSWORD_H

/* Hash password with a fresh random salt. 0 with a malloc'd string in
 * *hash_r (the caller frees it), -1 with a static message in *error_r. */
int password_hash(const char *password, char **hash_r, const char **error_r);

/* 1 when password matches hash, 0 otherwise (including a malformed or
 * disabled hash such as "*"). The final comparison is constant-time. */
int password_verify(const char *password, const char *hash);

/* Spend the time of a real verification and return 0. Call it when the user
 * does not exist, so that timing does not reveal which addresses exist. */
int password_verify_dummy(const char *password);

#endif
