/*
 * auth_cache.h - verified-credentials cache for password logins.
 *
 * After a slow-hash verification succeeds, the pool remembers, per user id,
 * the stored hash string it verified against and HMAC-SHA256(key, hash
 * string, password) under a random key made at creation, until a fixed
 * expiry (the TTL counts from the verification, not from the last use). A
 * later login of that user with the same stored hash and a password with the
 * same HMAC is accepted without crypt(3). A password change rewrites the
 * stored hash, so the entry no longer matches at once.
 *
 * Binding the HMAC to the stored hash string (whose salt is unique per user
 * and per password change) means two users with the same password do not get
 * equal entries, so a memory dump does not show who shares a password.
 *
 * The cache holds at most `size` entries; when full, the entry verified
 * longest ago goes first (with one TTL for all, that is an expired entry if
 * there is one). Expired entries are wiped and removed from the oldest end
 * at every call. All functions are thread-safe (one mutex) and O(1) apart
 * from that pruning, which is amortised O(1).
 *
 * `now` is CLOCK_MONOTONIC in milliseconds (auth_cache_now()); passing it
 * in keeps expiry testable without sleeping.
 */
#ifndef PETREL_AUTH_CACHE_H
#define PETREL_AUTH_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct auth_cache auth_cache_t;

/* A cache keeping entries ttl seconds, at most size of them (both > 0).
 * NULL with a static message in *error_r when the random key cannot be
 * read or memory is short. */
auth_cache_t *auth_cache_new(unsigned ttl, size_t size, const char **error_r);
/* Wipes every entry and the key. NULL allowed. */
void auth_cache_free(auth_cache_t *cache);

uint64_t auth_cache_now(void);

/* 1 when an unexpired entry for user_id has this stored hash and this
 * password (HMAC compared in constant time), 0 otherwise. A hit does not
 * extend the entry's life. */
int auth_cache_check(auth_cache_t *cache, int64_t user_id, const char *hash,
		     const char *password, uint64_t now);
/* Record a successful verification of password against hash (replacing any
 * entry of user_id; it expires ttl seconds after now). */
void auth_cache_store(auth_cache_t *cache, int64_t user_id, const char *hash,
		      const char *password, uint64_t now);
/* Drop user_id's entry, if any (after a failed verification). */
void auth_cache_forget(auth_cache_t *cache, int64_t user_id, uint64_t now);

/* Entries currently held (expired ones not yet pruned included). */
size_t auth_cache_count(auth_cache_t *cache);

#endif
