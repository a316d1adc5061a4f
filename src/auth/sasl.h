/*
 * sasl.h - SCRAM-SHA-256 server exchanges (RFC 5802, RFC 7677) through GNU
 * SASL, so that protocol code never sees gsasl types.
 *
 * One exchange per sasl_server_t, used by one thread at a time (the
 * session's). The user's secrets (auth/scram.h) are read from the store on
 * the calling thread when the client-first message names the user: a quick
 * SQLite read, no PBKDF2. Unknown users and users without SCRAM secrets get
 * made-up secrets that look like real ones, so the exchange fails at the
 * final step exactly like a wrong password (no user enumeration).
 */
#ifndef PETREL_AUTH_SASL_H
#define PETREL_AUTH_SASL_H

#include <stdint.h>

typedef struct store store_t;
typedef struct sasl_server sasl_server_t;

/* NULL when GNU SASL cannot be set up (or out of memory). */
sasl_server_t *sasl_scram_start(store_t *store);

/* Feed one client message (base64, "" for an empty one). 0 with a malloc'd
 * base64 string in *out_b64_r (maybe "", the caller frees it) to send in a
 * continuation; *done_r is 1 when the client is authenticated (then
 * *out_b64_r is the server-final message, to send before the success reply).
 * -1 authentication failed (wrong password, unknown user, malformed
 * message); -2 temporary failure (store error). *out_b64_r is NULL then. */
int sasl_scram_step(sasl_server_t *s, const char *in_b64, char **out_b64_r, int *done_r);

/* After success: the user and the canonical address (lower-case domain). */
int64_t sasl_user_id(const sasl_server_t *s);
const char *sasl_authid(const sasl_server_t *s);

/* NULL allowed. */
void sasl_free(sasl_server_t *s);

#endif
