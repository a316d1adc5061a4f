#include "auth/auth.h"

#include "auth/auth_cache.h"
#include "auth/password.h"
#include "core/log.h"
#include "store/store.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct auth_job {
	char *address, *password;
	auth_cb *cb;
	void *ctx;
	struct auth_job *next;
};

struct auth_pool {
	store_t *store;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	auth_cache_t *cache; /* NULL: off */
	struct auth_job *head, *tail;
	int stopping;
	unsigned n_threads;
	pthread_t *threads;
};

static void run_job(auth_pool_t *pool, struct auth_job *job)
{
	struct auth_result res = { 0 };
	char *hash = NULL;
	const char *err, *cached = pool->cache != NULL ? "miss" : "off";
	int64_t uid;
	int found = store_user_password_hash(pool->store, job->address, &uid, &hash, &err);
	if (found < 0) {
		log_error("auth", 0, "event=store-error error=\"%s\"", err);
		res.tempfail = 1;
	} else if (found == 0) {
		password_verify_dummy(job->password);
	} else if (pool->cache != NULL &&
		   auth_cache_check(pool->cache, uid, hash, job->password, auth_cache_now())) {
		res.ok = 1;
		cached = "hit";
	} else if (password_verify(job->password, hash)) {
		res.ok = 1;
		if (pool->cache != NULL)
			auth_cache_store(pool->cache, uid, hash, job->password, auth_cache_now());
	} else if (pool->cache != NULL) {
		/* a wrong password after a cached login pays the full hash again */
		auth_cache_forget(pool->cache, uid, auth_cache_now());
	}
	if (res.ok) {
		res.user_id = uid;
		/* canonical form: domain lower-case */
		snprintf(res.address, sizeof(res.address), "%s", job->address);
		char *at = strrchr(res.address, '@');
		for (char *p = at; p != NULL && *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
	}
	char safe[128];
	log_debug("auth", 0, "event=verify user=%s result=%s cache=%s",
		  log_safe(job->address, strlen(job->address), safe, sizeof(safe)),
		  res.tempfail ? "tempfail" : res.ok ? "ok" : "fail", cached);
	free(hash);
	explicit_bzero(job->password, strlen(job->password));
	job->cb(job->ctx, &res);
	free(job->address);
	free(job->password);
	free(job);
}

static void *auth_main(void *arg)
{
	auth_pool_t *pool = arg;
	sigset_t set;
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->head == NULL)
			break;
		struct auth_job *job = pool->head;
		pool->head = job->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->lock);
		run_job(pool, job);
		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

auth_pool_t *auth_pool_new(store_t *store, unsigned threads, unsigned cache_ttl,
			  size_t cache_size)
{
	auth_pool_t *pool = calloc(1, sizeof(*pool));
	pool->store = store;
	if (cache_ttl > 0) {
		const char *err;
		pool->cache = auth_cache_new(cache_ttl, cache_size, &err);
		/* without the cache logins are slower, never less safe: go on */
		if (pool->cache == NULL)
			log_warn("auth", 0, "event=cache-disabled error=\"%s\"", err);
		else
			log_info("auth", 0, "event=cache ttl=%u size=%zu", cache_ttl, cache_size);
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->n_threads = threads ? threads : 2;
	pool->threads = calloc(pool->n_threads, sizeof(pthread_t));
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_create(&pool->threads[i], NULL, auth_main, pool);
	return pool;
}

void auth_pool_free(auth_pool_t *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	auth_cache_free(pool->cache);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool);
}

void auth_verify(auth_pool_t *pool, const char *address, const char *password, auth_cb *cb,
		 void *ctx)
{
	struct auth_job *job = calloc(1, sizeof(*job));
	job->address = strdup(address);
	job->password = strdup(password);
	job->cb = cb;
	job->ctx = ctx;
	pthread_mutex_lock(&pool->lock);
	if (pool->tail != NULL)
		pool->tail->next = job;
	else
		pool->head = job;
	pool->tail = job;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}
