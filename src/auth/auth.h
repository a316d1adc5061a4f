/*
 * auth.h - password checks off the event loops.
 *
 * yescrypt costs tens of milliseconds by design, so verification runs on a
 * small pool of threads; the result comes back through a callback on a pool
 * thread, which must only hand it to the session's own thread. Unknown users
 * cost the same time as wrong passwords (no user enumeration).
 *
 * Each check is logged at debug level: event=verify user= result=ok|fail|
 * tempfail cache=hit|miss|off.
 */
#ifndef PETREL_AUTH_H
#define PETREL_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;
typedef struct auth_pool auth_pool_t;

struct auth_result {
	int ok;            /* 1 authenticated */
	int tempfail;      /* store error: try again later */
	int64_t user_id;
	char address[320]; /* the canonical address as stored (lower-case domain) */
};

typedef void auth_cb(void *ctx, const struct auth_result *res);

/* threads: 0 for the default (2). cache_ttl > 0 turns on the
 * verified-credentials cache (auth_cache.h) with at most cache_size entries:
 * a login with the password last verified for the same stored hash, less
 * than cache_ttl seconds ago, skips crypt(3). If the cache cannot be set up
 * the pool logs a warning and verifies every login. */
auth_pool_t *auth_pool_new(store_t *store, unsigned threads, unsigned cache_ttl,
			  size_t cache_size);
/* Finishes queued checks first. NULL allowed. */
void auth_pool_free(auth_pool_t *pool);
/* Check address/password; copies both (and wipes its copy afterwards). */
void auth_verify(auth_pool_t *pool, const char *address, const char *password, auth_cb *cb,
		 void *ctx);

#endif
