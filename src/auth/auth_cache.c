/*
 * auth_cache.c - verified-credentials cache (see auth_cache.h).
 *
 * Entries live in one array allocated at creation; a bucket array of
 * indexes (chained through the entries) finds a user id, and a doubly linked
 * list orders entries by the time of their verification, newest first. With
 * one TTL for every entry that order is also the order of expiry, so the
 * oldest end is where expired entries are pruned and where eviction takes
 * an entry when the array is full.
 */
#include "auth/auth_cache.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define KEY_LEN 32
#define MAC_LEN 32
#define NONE (-1)

struct cache_entry {
	int64_t user_id;
	char *hash;            /* the stored hash string verified against; NULL if free */
	unsigned char mac[MAC_LEN];
	uint64_t expires;      /* ms, CLOCK_MONOTONIC */
	int32_t next;          /* bucket chain, or free list */
	int32_t newer, older;  /* verification order */
};

struct auth_cache {
	pthread_mutex_t lock;
	uint64_t ttl_ms;
	unsigned char key[KEY_LEN];
	EVP_MAC *hmac;
	struct cache_entry *entries;
	size_t size, count;
	int32_t *buckets;
	uint64_t bucket_mask;
	int32_t free_list;
	int32_t newest, oldest;
};

uint64_t auth_cache_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

auth_cache_t *auth_cache_new(unsigned ttl, size_t size, const char **error_r)
{
	if (ttl == 0 || size == 0 || size > INT32_MAX / 2) {
		*error_r = "cache TTL and size must be positive";
		return NULL;
	}
	auth_cache_t *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->newest = c->oldest = NONE;
	size_t n_buckets = 16;
	while (n_buckets < size)
		n_buckets *= 2;
	c->entries = calloc(size, sizeof(*c->entries));
	c->buckets = malloc(n_buckets * sizeof(*c->buckets));
	c->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (c->entries == NULL || c->buckets == NULL || c->hmac == NULL) {
		*error_r = c->hmac == NULL ? "OpenSSL has no HMAC" : "out of memory";
		auth_cache_free(c);
		return NULL;
	}
	if (getrandom(c->key, sizeof(c->key), 0) != (ssize_t)sizeof(c->key)) {
		*error_r = "cannot read a random key (getrandom)";
		auth_cache_free(c);
		return NULL;
	}
	c->ttl_ms = (uint64_t)ttl * 1000;
	c->size = size;
	c->bucket_mask = n_buckets - 1;
	for (size_t i = 0; i < n_buckets; i++)
		c->buckets[i] = NONE;
	for (size_t i = 0; i < size; i++)
		c->entries[i].next = i + 1 < size ? (int32_t)(i + 1) : NONE;
	c->free_list = 0;
	return c;
}

/* HMAC-SHA256(key, hash || NUL || password). The NUL keeps the two parts
 * apart (a crypt string never contains one). 0 on success. */
static int compute_mac(auth_cache_t *c, const char *hash, const char *password,
		       unsigned char out[MAC_LEN])
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t out_len = 0;
	int ok = 0;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(c->hmac);
	if (ctx != NULL && EVP_MAC_init(ctx, c->key, sizeof(c->key), params) &&
	    EVP_MAC_update(ctx, (const unsigned char *)hash, strlen(hash) + 1) &&
	    EVP_MAC_update(ctx, (const unsigned char *)password, strlen(password)) &&
	    EVP_MAC_final(ctx, out, &out_len, MAC_LEN) && out_len == MAC_LEN)
		ok = 1;
	/* frees and cleanses the HMAC state, which was derived from the password */
	EVP_MAC_CTX_free(ctx);
	if (!ok)
		explicit_bzero(out, MAC_LEN);
	return ok ? 0 : -1;
}

static size_t bucket_of(const auth_cache_t *c, int64_t user_id)
{
	/* Fibonacci hashing: user ids are sequential, the high bits spread them */
	uint64_t h = (uint64_t)user_id * 0x9E3779B97F4A7C15ull;
	return (size_t)((h ^ (h >> 32)) & c->bucket_mask);
}

static int32_t find(const auth_cache_t *c, int64_t user_id)
{
	for (int32_t i = c->buckets[bucket_of(c, user_id)]; i != NONE; i = c->entries[i].next)
		if (c->entries[i].user_id == user_id)
			return i;
	return NONE;
}

/* Unlink entry i from its bucket and the age list, wipe it, free it. */
static void drop(auth_cache_t *c, int32_t i)
{
	struct cache_entry *e = &c->entries[i];
	int32_t *link = &c->buckets[bucket_of(c, e->user_id)];
	while (*link != i)
		link = &c->entries[*link].next;
	*link = e->next;
	if (e->newer != NONE)
		c->entries[e->newer].older = e->older;
	else
		c->newest = e->older;
	if (e->older != NONE)
		c->entries[e->older].newer = e->newer;
	else
		c->oldest = e->newer;
	explicit_bzero(e->hash, strlen(e->hash));
	free(e->hash);
	explicit_bzero(e, sizeof(*e));
	e->next = c->free_list;
	c->free_list = i;
	c->count--;
}

static void prune(auth_cache_t *c, uint64_t now)
{
	while (c->oldest != NONE && c->entries[c->oldest].expires <= now)
		drop(c, c->oldest);
}

int auth_cache_check(auth_cache_t *c, int64_t user_id, const char *hash, const char *password,
		     uint64_t now)
{
	unsigned char mac[MAC_LEN];
	int hit = 0;
	/* outside the lock: the key never changes after creation */
	if (compute_mac(c, hash, password, mac) < 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	prune(c, now);
	int32_t i = find(c, user_id);
	if (i != NONE) {
		const struct cache_entry *e = &c->entries[i];
		hit = e->expires > now && strcmp(e->hash, hash) == 0 &&
		      CRYPTO_memcmp(e->mac, mac, MAC_LEN) == 0;
	}
	pthread_mutex_unlock(&c->lock);
	explicit_bzero(mac, sizeof(mac));
	return hit;
}

void auth_cache_store(auth_cache_t *c, int64_t user_id, const char *hash, const char *password,
		      uint64_t now)
{
	unsigned char mac[MAC_LEN];
	char *copy = strdup(hash);
	if (copy == NULL || compute_mac(c, hash, password, mac) < 0) {
		free(copy);
		auth_cache_forget(c, user_id, now);
		return;
	}
	pthread_mutex_lock(&c->lock);
	prune(c, now);
	int32_t i = find(c, user_id);
	if (i != NONE)
		drop(c, i);
	if (c->free_list == NONE)
		drop(c, c->oldest); /* full: nothing expired (pruned above), so the oldest */
	i = c->free_list;
	struct cache_entry *e = &c->entries[i];
	c->free_list = e->next;
	e->user_id = user_id;
	e->hash = copy;
	memcpy(e->mac, mac, MAC_LEN);
	e->expires = now + c->ttl_ms;
	size_t b = bucket_of(c, user_id);
	e->next = c->buckets[b];
	c->buckets[b] = i;
	e->newer = NONE;
	e->older = c->newest;
	if (c->newest != NONE)
		c->entries[c->newest].newer = i;
	else
		c->oldest = i;
	c->newest = i;
	c->count++;
	pthread_mutex_unlock(&c->lock);
	explicit_bzero(mac, sizeof(mac));
}

void auth_cache_forget(auth_cache_t *c, int64_t user_id, uint64_t now)
{
	pthread_mutex_lock(&c->lock);
	prune(c, now);
	int32_t i = find(c, user_id);
	if (i != NONE)
		drop(c, i);
	pthread_mutex_unlock(&c->lock);
}

size_t auth_cache_count(auth_cache_t *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->count;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void auth_cache_free(auth_cache_t *c)
{
	if (c == NULL)
		return;
	while (c->oldest != NONE)
		drop(c, c->oldest);
	pthread_mutex_destroy(&c->lock);
	free(c->entries);
	free(c->buckets);
	EVP_MAC_free(c->hmac);
	explicit_bzero(c->key, sizeof(c->key));
	free(c);
}
