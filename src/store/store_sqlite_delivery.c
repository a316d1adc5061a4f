/*
 * store_sqlite_delivery.c - receiving messages and the group committer.
 *
 * A delivery holds its content in memory up to STORE_INLINE_MAX, then spills
 * to DATA_DIR/tmp/spill-NAME. The committer's queue holds jobs: deliveries,
 * groups of deliveries stored all or none (MULTIAPPEND), and operations
 * (store_sqlite_op.c), in submission order. Committing a batch, in this
 * order:
 *   1. each delivery's spill file: fdatasync, rename to DATA_DIR/blobs/XX/NAME;
 *   2. fsync each blobs/XX directory touched (and blobs/ if XX is new);
 *   3. one SQLite transaction for the whole batch, a savepoint per job;
 *   4. files of blobs that lost their last reference are unlinked;
 *   5. callbacks, then the watchers of every mailbox that changed.
 * Files are durable before any row names them, so a crash leaves at worst an
 * orphan file in blobs/, never a message without content.
 */
#include "store/store_sqlite_private.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long the committer keeps retrying a database locked by another
 * process (each attempt already waits busy_timeout) before failing. */
#define COMMIT_BUSY_ATTEMPTS 12

/* Where a delivery goes: a user's INBOX (SMTP) or a mailbox (APPEND). */
struct delivery_target {
	int64_t id;                     /* user id, or mailbox id */
	bool is_mailbox;
	uint32_t flags;
	char *keywords;                 /* normalised, NULL for none */
};

struct store_delivery {
	struct store_job job;           /* first: the committer queue */
	store_t *store;

	/* The content while it fits in STORE_INLINE_MAX, afterwards the write
	 * buffer of the spill file: memory stays bounded either way. */
	unsigned char *buf;
	size_t buf_len, buf_cap;
	uint64_t size;
	int fd;                         /* spill file, -1 while in memory */
	char *name;                     /* unique: spill-NAME, blobs/XX/NAME */
	bool spilled, in_blobs;         /* the file is in tmp/, in blobs/ */

	char *subject;
	struct store_msg_cache cache;
	bool has_cache;
	struct delivery_target *targets;
	uint32_t *uids;
	uint32_t n_rcpts, rcpts_cap;    /* targets, in call order */

	time_t internaldate;
	store_delivery_cb *cb;
	void *ctx;

	/* The first error sticks: a delivery that lost content or a recipient
	 * must never be stored incomplete. */
	int status;
	char error[256];
};

static void __attribute__((format(printf, 2, 3)))
delivery_failf(struct store_delivery *d, const char *fmt, ...)
{
	va_list args;

	if (d->status == 0) {
		d->status = -1;
		va_start(args, fmt);
		vsnprintf(d->error, sizeof(d->error), fmt, args);
		va_end(args);
	}
}

static void delivery_fail(struct store_delivery *d, const char *error)
{
	delivery_failf(d, "%s", error);
}

static void delivery_path(const struct store_delivery *d, bool in_blobs,
			  char *buf, size_t size)
{
	if (in_blobs)
		snprintf(buf, size, "%s/blobs/%.2s/%s", d->store->data_dir,
			 d->name, d->name);
	else
		snprintf(buf, size, "%s/tmp/spill-%s", d->store->data_dir, d->name);
}

static void delivery_free(struct store_delivery *d)
{
	char path[4096];

	if (d->fd >= 0)
		close(d->fd);
	if (d->spilled) {
		delivery_path(d, false, path, sizeof(path));
		(void)unlink(path);
	}
	free(d->buf);
	free(d->name);
	free(d->subject);
	store_msg_cache_free(&d->cache);
	for (uint32_t i = 0; i < d->n_rcpts; i++)
		free(d->targets[i].keywords);
	free(d->targets);
	free(d->uids);
	free(d->job.touched);
	free(d);
}

store_delivery_t *store_delivery_new(store_t *store)
{
	struct store_delivery *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->job.kind = STORE_JOB_DELIVERY;
	d->store = store;
	d->fd = -1;
	return d;
}

static int write_all(int fd, const unsigned char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A name no other delivery of any process will ever use: random bits (which
 * also spread files over the 256 blobs/XX directories), the pid, a counter. */
static char *unique_name(void)
{
	static atomic_uint_fast64_t counter;
	uint64_t rnd;
	char *name;

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return NULL;
	if (asprintf(&name, "%016" PRIx64 "-%ld-%" PRIuFAST64, rnd, (long)getpid(),
		     atomic_fetch_add(&counter, 1)) < 0)
		return NULL;
	return name;
}

static int spill_start(struct store_delivery *d)
{
	char path[4096];
	unsigned char *grown;

	if ((d->name = unique_name()) == NULL) {
		delivery_fail(d, "cannot make a spill file name");
		return -1;
	}
	delivery_path(d, false, path, sizeof(path));
	/* Readable too: store_delivery_content hands it out for pread. */
	d->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		delivery_failf(d, "open %s: %s", path, strerror(errno));
		return -1;
	}
	d->spilled = true;
	/* What is in memory is now simply the start of the file, not yet
	 * written: keep it as the write buffer, at its full size. */
	if (d->buf_cap < STORE_INLINE_MAX) {
		if ((grown = realloc(d->buf, STORE_INLINE_MAX)) == NULL) {
			delivery_fail(d, "out of memory");
			return -1;
		}
		d->buf = grown;
		d->buf_cap = STORE_INLINE_MAX;
	}
	return 0;
}

static int spill_flush(struct store_delivery *d)
{
	if (write_all(d->fd, d->buf, d->buf_len) < 0) {
		delivery_failf(d, "writing the spill file: %s", strerror(errno));
		return -1;
	}
	d->buf_len = 0;
	return 0;
}

int store_delivery_write(store_delivery_t *d, const void *data, size_t len,
			 const char **error_r)
{
	const unsigned char *p = data;
	unsigned char *grown;
	size_t cap, n;

	if (d->status < 0)
		goto fail;
	if (len == 0)
		return 0;
	if (d->fd < 0 && len <= STORE_INLINE_MAX - d->buf_len) {
		if (d->buf_len + len > d->buf_cap) {
			cap = d->buf_cap == 0 ? 4096 : d->buf_cap;
			while (cap < d->buf_len + len)
				cap *= 2;
			if (cap > STORE_INLINE_MAX)
				cap = STORE_INLINE_MAX;
			if ((grown = realloc(d->buf, cap)) == NULL) {
				delivery_fail(d, "out of memory");
				goto fail;
			}
			d->buf = grown;
			d->buf_cap = cap;
		}
		memcpy(d->buf + d->buf_len, p, len);
		d->buf_len += len;
		d->size += len;
		return 0;
	}
	if (d->fd < 0 && spill_start(d) < 0)
		goto fail;
	while (len > 0) {
		if (d->buf_len == d->buf_cap && spill_flush(d) < 0)
			goto fail;
		n = d->buf_cap - d->buf_len < len ? d->buf_cap - d->buf_len : len;
		memcpy(d->buf + d->buf_len, p, n);
		d->buf_len += n;
		d->size += n;
		p += n;
		len -= n;
	}
	return 0;
fail:
	*error_r = store_errorf("%s", d->error);
	return -1;
}

uint64_t store_delivery_size(const store_delivery_t *d)
{
	return d->size;
}

void store_delivery_set_subject(store_delivery_t *d, const char *subject)
{
	free(d->subject);
	d->subject = NULL;
	if (subject != NULL && (d->subject = strdup(subject)) == NULL)
		delivery_fail(d, "out of memory");
}

int store_delivery_content(store_delivery_t *d, const char **data_r, size_t *len_r,
			   int *fd_r)
{
	*data_r = NULL;
	*len_r = 0;
	*fd_r = -1;
	if (d->status < 0 || (d->spilled && d->fd < 0))
		return -1; /* failed, or parked in a group */
	if (d->fd < 0) {
		*data_r = (const char *)d->buf;
		*len_r = d->buf_len;
		return 0;
	}
	/* What is still in the write buffer must be in the file for pread. */
	if (spill_flush(d) < 0)
		return -1;
	*len_r = (size_t)d->size;
	*fd_r = d->fd;
	return 0;
}

static char *strdup_or_null(const char *s, bool *failed)
{
	char *copy;

	if (s == NULL)
		return NULL;
	if ((copy = strdup(s)) == NULL)
		*failed = true;
	return copy;
}

void store_delivery_set_cache(store_delivery_t *d, const struct store_msg_cache *cache)
{
	bool failed = false;

	store_msg_cache_free(&d->cache);
	d->has_cache = cache != NULL;
	if (cache == NULL)
		return;
	d->cache.envelope = strdup_or_null(cache->envelope, &failed);
	d->cache.bodystructure = strdup_or_null(cache->bodystructure, &failed);
	d->cache.body = strdup_or_null(cache->body, &failed);
	d->cache.parts = strdup_or_null(cache->parts, &failed);
	d->cache.subject = strdup_or_null(cache->subject, &failed);
	d->cache.from = strdup_or_null(cache->from, &failed);
	d->cache.to = strdup_or_null(cache->to, &failed);
	d->cache.cc = strdup_or_null(cache->cc, &failed);
	d->cache.bcc = strdup_or_null(cache->bcc, &failed);
	d->cache.message_id = strdup_or_null(cache->message_id, &failed);
	d->cache.in_reply_to = strdup_or_null(cache->in_reply_to, &failed);
	d->cache.references = strdup_or_null(cache->references, &failed);
	d->cache.sent_date = cache->sent_date;
	if (failed)
		delivery_fail(d, "out of memory");
}

static struct delivery_target *target_add(struct store_delivery *d)
{
	struct delivery_target *targets;
	uint32_t cap, *uids;

	if (d->n_rcpts == d->rcpts_cap) {
		cap = d->rcpts_cap == 0 ? 4 : d->rcpts_cap * 2;
		targets = realloc(d->targets, cap * sizeof(*targets));
		if (targets != NULL)
			d->targets = targets;
		uids = realloc(d->uids, cap * sizeof(*uids));
		if (uids != NULL)
			d->uids = uids;
		if (targets == NULL || uids == NULL) {
			delivery_fail(d, "out of memory");
			return NULL;
		}
		d->rcpts_cap = cap;
	}
	d->uids[d->n_rcpts] = 0;
	targets = &d->targets[d->n_rcpts++];
	memset(targets, 0, sizeof(*targets));
	return targets;
}

void store_delivery_add_rcpt(store_delivery_t *d, int64_t user_id)
{
	struct delivery_target *t = target_add(d);

	if (t != NULL)
		t->id = user_id;
}

void store_delivery_add_mailbox(store_delivery_t *d, int64_t mailbox_id, uint32_t flags,
				const char *keywords)
{
	struct delivery_target *t = target_add(d);

	if (t == NULL)
		return;
	t->id = mailbox_id;
	t->is_mailbox = true;
	t->flags = flags & STORE_FLAGS_ALL;
	if (keywords != NULL && keywords[0] != '\0' &&
	    (t->keywords = store_keywords_merge(NULL, keywords, NULL)) == NULL)
		delivery_fail(d, "out of memory");
}

static bool target_same(const struct delivery_target *a, const struct delivery_target *b)
{
	return a->id == b->id && a->is_mailbox == b->is_mailbox;
}

void store_delivery_abort(store_delivery_t *d)
{
	if (d != NULL)
		delivery_free(d);
}

void store_delivery_commit(store_delivery_t *d, time_t internaldate,
			   store_delivery_cb *cb, void *ctx)
{
	store_t *store = d->store;

	d->internaldate = internaldate;
	d->cb = cb;
	d->ctx = ctx;
	if (!store_job_enqueue(store, &d->job))
		store_commit_batch(store, &d->job);
}

/* ---- groups: several deliveries, all or none ---- */

struct store_delivery_group {
	struct store_job job;           /* first: the committer queue */
	store_t *store;
	struct store_delivery **members;
	size_t n, cap;
	size_t mem;                     /* content octets held in memory */
	uint32_t *uids;                 /* every member's, in order */
	uint32_t n_uids;
	store_delivery_cb *cb;
	void *ctx;
	int status;                     /* the first error sticks */
	char error[256];
};

static void __attribute__((format(printf, 2, 3)))
group_failf(struct store_delivery_group *g, const char *fmt, ...)
{
	va_list args;

	if (g->status == 0) {
		g->status = -1;
		va_start(args, fmt);
		vsnprintf(g->error, sizeof(g->error), fmt, args);
		va_end(args);
	}
}

static void group_free(struct store_delivery_group *g)
{
	for (size_t i = 0; i < g->n; i++)
		delivery_free(g->members[i]);
	free(g->members);
	free(g->uids);
	free(g->job.touched);
	free(g);
}

store_delivery_group_t *store_delivery_group_new(store_t *store)
{
	struct store_delivery_group *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->job.kind = STORE_JOB_GROUP;
	g->store = store;
	return g;
}

/* A delivery handed to a group receives no more content: its spill file is
 * closed (spill_finish reopens it to sync it) and its write buffer freed,
 * so that a group of many messages holds no descriptor and no buffer per
 * message. With to_file, content still in memory goes to a spill file. */
static int delivery_park(struct store_delivery *d, bool to_file)
{
	if (d->fd < 0 && to_file && d->buf_len > 0 && spill_start(d) < 0)
		return -1;
	if (d->fd < 0)
		return 0;
	if (spill_flush(d) < 0)
		return -1;
	if (close(d->fd) < 0) {
		d->fd = -1;
		delivery_failf(d, "closing the spill file: %s", strerror(errno));
		return -1;
	}
	d->fd = -1;
	free(d->buf);
	d->buf = NULL;
	d->buf_len = d->buf_cap = 0;
	return 0;
}

int store_delivery_group_add(store_delivery_group_t *g, store_delivery_t *d,
			     time_t internaldate, const char **error_r)
{
	struct store_delivery **grown;
	unsigned char *shrunk;
	size_t cap;

	if (d->n_rcpts == 0)
		delivery_fail(d, "delivery has no recipients");
	if (d->status == 0 && g->n == g->cap) {
		cap = g->cap == 0 ? 8 : g->cap * 2;
		if ((grown = realloc(g->members, cap * sizeof(*grown))) == NULL) {
			delivery_fail(d, "out of memory");
		} else {
			g->members = grown;
			g->cap = cap;
		}
	}
	if (d->status == 0)
		(void)delivery_park(d, g->mem + d->buf_len > STORE_GROUP_MEM_MAX);
	if (d->status < 0) {
		group_failf(g, "message %zu: %s", g->n + 1, d->error);
		*error_r = store_errorf("%s", g->error);
		delivery_free(d);
		return -1;
	}
	if (d->fd < 0 && !d->spilled && d->buf_len < d->buf_cap && d->buf_len > 0 &&
	    (shrunk = realloc(d->buf, d->buf_len)) != NULL) {
		d->buf = shrunk;
		d->buf_cap = d->buf_len;
	}
	if (!d->spilled)
		g->mem += d->buf_len;
	d->internaldate = internaldate;
	g->members[g->n++] = d;
	return 0;
}

size_t store_delivery_group_count(const store_delivery_group_t *g)
{
	return g->n;
}

void store_delivery_group_commit(store_delivery_group_t *g, store_delivery_cb *cb, void *ctx)
{
	uint64_t total = 0;

	g->cb = cb;
	g->ctx = ctx;
	for (size_t i = 0; i < g->n; i++)
		total += g->members[i]->n_rcpts;
	if (g->n == 0)
		group_failf(g, "no message to store");
	else if (total > UINT32_MAX ||
		 (g->uids = calloc((size_t)total, sizeof(*g->uids))) == NULL)
		group_failf(g, "out of memory");
	else
		g->n_uids = (uint32_t)total;
	if (!store_job_enqueue(g->store, &g->job))
		store_commit_batch(g->store, &g->job);
}

void store_delivery_group_abort(store_delivery_group_t *g)
{
	if (g != NULL)
		group_free(g);
}

static struct store_delivery_group *job_group(struct store_job *job)
{
	return job->kind == STORE_JOB_GROUP ? (struct store_delivery_group *)job : NULL;
}

bool store_job_enqueue(store_t *store, struct store_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&store->queue_lock);
	if (!store->committer_running) {
		pthread_mutex_unlock(&store->queue_lock);
		return false;
	}
	if (store->queue_tail != NULL)
		store->queue_tail->next = job;
	else
		store->queue_head = job;
	store->queue_tail = job;
	pthread_cond_signal(&store->queue_cond);
	pthread_mutex_unlock(&store->queue_lock);
	return true;
}

int store_job_touch(struct store_job *job, int64_t mailbox_id)
{
	int64_t *grown;
	size_t cap;

	for (size_t i = 0; i < job->n_touched; i++) {
		if (job->touched[i] == mailbox_id)
			return 0;
	}
	if (job->n_touched == job->touched_cap) {
		cap = job->touched_cap == 0 ? 4 : job->touched_cap * 2;
		if ((grown = realloc(job->touched, cap * sizeof(*grown))) == NULL)
			return -1;
		job->touched = grown;
		job->touched_cap = cap;
	}
	job->touched[job->n_touched++] = mailbox_id;
	return 0;
}

static struct store_delivery *job_delivery(struct store_job *job)
{
	return job->kind == STORE_JOB_DELIVERY ? (struct store_delivery *)job : NULL;
}

/* ---- step 1 and 2: files ---- */

static int hex_index(const char *name)
{
	char byte[3] = { name[0], name[1], '\0' };

	return (int)strtol(byte, NULL, 16);
}

/* Make a spill file durable and move it into blobs/XX/. */
static void spill_finish(struct store_delivery *d, bool dirs[256],
			 bool *root_touched)
{
	char from[4096], to[4096], dir[4096];
	int ret;

	if (d->fd < 0) {
		/* parked in a group: written and closed, not yet synced; a
		 * descriptor opened now syncs the same file */
		delivery_path(d, false, from, sizeof(from));
		d->fd = open(from, O_RDONLY | O_CLOEXEC);
		if (d->fd < 0) {
			delivery_failf(d, "open %s: %s", from, strerror(errno));
			return;
		}
	} else if (spill_flush(d) < 0) {
		return;
	}
	ret = fdatasync(d->fd);
	if (close(d->fd) < 0)
		ret = -1;
	d->fd = -1;
	if (ret < 0) {
		delivery_fail(d, "cannot sync the message file");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/blobs/%.2s", d->store->data_dir, d->name);
	if (mkdir(dir, 0700) == 0) {
		*root_touched = true;
	} else if (errno != EEXIST) {
		delivery_fail(d, "cannot create a blobs directory");
		return;
	}
	delivery_path(d, false, from, sizeof(from));
	delivery_path(d, true, to, sizeof(to));
	if (rename(from, to) < 0) {
		delivery_fail(d, "cannot move the message file into blobs/");
		return;
	}
	d->spilled = false;
	d->in_blobs = true;
	dirs[hex_index(d->name)] = true;
}

/* One fsync per touched directory per batch, however many files landed in
 * it. A failure fails exactly the deliveries whose file it concerns. */
static void sync_dirs(store_t *store, struct store_job *list,
		      const bool dirs[256], bool root_touched)
{
	struct store_delivery *d;
	struct store_delivery_group *g;
	char path[4096];
	bool root_failed = false;

	if (root_touched) {
		snprintf(path, sizeof(path), "%s/blobs", store->data_dir);
		root_failed = store_fsync_dir(path) < 0;
	}
	for (int i = 0; i < 256; i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/blobs/%02x", store->data_dir,
			 (unsigned)i);
		if (!root_failed && store_fsync_dir(path) == 0)
			continue;
		for (struct store_job *job = list; job != NULL; job = job->next) {
			if ((d = job_delivery(job)) != NULL && d->in_blobs &&
			    hex_index(d->name) == i)
				delivery_fail(d, "cannot sync the blobs directory");
			if ((g = job_group(job)) == NULL)
				continue;
			for (size_t k = 0; k < g->n; k++) {
				if (g->members[k]->in_blobs && hex_index(g->members[k]->name) == i)
					group_failf(g, "cannot sync the blobs directory");
			}
		}
	}
}

/* ---- step 3: the transaction ---- */

/* Run BEGIN IMMEDIATE or COMMIT, retrying while another process (the CLI)
 * holds the write lock; busy_timeout already waits inside each attempt. */
static int exec_retry_busy(struct store_conn *conn, enum stmt_id id,
			   const char **error_r)
{
	int rc = SQLITE_BUSY;

	for (int i = 0; i < COMMIT_BUSY_ATTEMPTS && rc == SQLITE_BUSY; i++)
		rc = stmt_exec(conn, id, error_r);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The first of the targets equal to target i (i itself when it is new). */
static uint32_t target_first(const struct store_delivery *d, uint32_t i)
{
	uint32_t j = 0;

	while (j < i && !target_same(&d->targets[j], &d->targets[i]))
		j++;
	return j;
}

static int insert_blob(struct store_conn *conn, struct store_delivery *d,
		       int64_t *blob_id_r, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_BLOB_INSERT, error_r);
	char path[4096];
	uint32_t distinct = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	for (uint32_t i = 0; i < d->n_rcpts; i++)
		distinct += target_first(d, i) == i;
	sqlite3_bind_int64(stmt, 1, (int64_t)d->size);
	sqlite3_bind_int64(stmt, 2, distinct);
	if (d->in_blobs) {
		/* Relative to DATA_DIR, so that the directory may move. */
		snprintf(path, sizeof(path), "blobs/%.2s/%s", d->name, d->name);
		sqlite3_bind_text(stmt, 4, path, -1, SQLITE_TRANSIENT);
	} else if (d->buf_len > 0) {
		sqlite3_bind_blob(stmt, 3, d->buf, (int)d->buf_len, SQLITE_STATIC);
	} else {
		sqlite3_bind_zeroblob(stmt, 3, 0);
	}
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_BLOB_INSERT, stmt);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(conn, "storing the message");
		return -1;
	}
	*blob_id_r = sqlite3_last_insert_rowid(conn->db);
	return 0;
}

static void bind_text_or_null(sqlite3_stmt *stmt, int col, const char *text)
{
	if (text != NULL)
		sqlite3_bind_text(stmt, col, text, -1, SQLITE_STATIC);
}

static int insert_cache(struct store_conn *conn, const struct store_msg_cache *c,
			int64_t blob_id, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_CACHE_INSERT, error_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	bind_text_or_null(stmt, 2, c->envelope);
	bind_text_or_null(stmt, 3, c->bodystructure);
	bind_text_or_null(stmt, 4, c->body);
	bind_text_or_null(stmt, 5, c->parts);
	bind_text_or_null(stmt, 6, c->subject);
	bind_text_or_null(stmt, 7, c->from);
	bind_text_or_null(stmt, 8, c->to);
	bind_text_or_null(stmt, 9, c->cc);
	bind_text_or_null(stmt, 10, c->bcc);
	bind_text_or_null(stmt, 11, c->message_id);
	bind_text_or_null(stmt, 12, c->in_reply_to);
	bind_text_or_null(stmt, 13, c->references);
	sqlite3_bind_int64(stmt, 14, c->sent_date);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_CACHE_INSERT, stmt);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(conn, "storing the parse cache");
		return -1;
	}
	return 0;
}

static int insert_message(struct store_conn *conn, struct store_delivery *d,
			  uint32_t i, int64_t blob_id, const char **error_r)
{
	const struct delivery_target *t = &d->targets[i];
	enum stmt_id next_uid = t->is_mailbox ? STMT_MAILBOX_NEXT_UID : STMT_INBOX_NEXT_UID;
	sqlite3_stmt *stmt = stmt_get(conn, next_uid, error_r);
	int64_t mailbox_id = 0, uid = 0, modseq = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, t->id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		mailbox_id = sqlite3_column_int64(stmt, 0);
		uid = sqlite3_column_int64(stmt, 1);
		modseq = sqlite3_column_int64(stmt, 2);
	} else if (rc == SQLITE_DONE) {
		*error_r = t->is_mailbox ?
			store_errorf("mailbox %" PRId64 " does not exist", t->id) :
			store_errorf("recipient %" PRId64 " has no INBOX", t->id);
	} else {
		*error_r = store_db_error(conn, "assigning a UID");
	}
	stmt_put(conn, next_uid, stmt);
	if (rc != SQLITE_ROW)
		return -1;
	if (uid > UINT32_MAX) {
		*error_r = "the mailbox has run out of UIDs";
		return -1;
	}
	d->uids[i] = (uint32_t)uid;

	if ((stmt = stmt_get(conn, STMT_MESSAGE_INSERT, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	sqlite3_bind_int64(stmt, 2, uid);
	sqlite3_bind_int64(stmt, 3, modseq);
	sqlite3_bind_int64(stmt, 4, (int64_t)d->internaldate);
	sqlite3_bind_int64(stmt, 5, (int64_t)d->size);
	sqlite3_bind_int64(stmt, 6, blob_id);
	bind_text_or_null(stmt, 7, d->subject);
	sqlite3_bind_int64(stmt, 8, t->flags);
	bind_text_or_null(stmt, 9, t->keywords);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_MESSAGE_INSERT, stmt);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(conn, "storing the message");
		return -1;
	}
	if (store_job_touch(&d->job, mailbox_id) < 0) {
		*error_r = "out of memory";
		return -1;
	}
	return 0;
}

static int insert_delivery(struct store_conn *conn, struct store_delivery *d,
			   const char **error_r)
{
	int64_t blob_id;

	if (insert_blob(conn, d, &blob_id, error_r) < 0)
		return -1;
	if (d->has_cache && insert_cache(conn, &d->cache, blob_id, error_r) < 0)
		return -1;
	for (uint32_t i = 0; i < d->n_rcpts; i++) {
		uint32_t j = target_first(d, i);

		/* A user named twice gets one copy, and the same UID twice. */
		if (j < i)
			d->uids[i] = d->uids[j];
		else if (insert_message(conn, d, i, blob_id, error_r) < 0)
			return -1;
	}
	return 0;
}

/* One delivery inside the batch transaction. A failure undoes only its
 * savepoint; -1 means the transaction itself is no longer trustworthy. */
static int deliver_one(struct store_conn *conn, struct store_delivery *d,
		       const char **error_r)
{
	const char *error;

	if (stmt_exec(conn, STMT_SAVEPOINT, error_r) != SQLITE_OK)
		return -1;
	if (insert_delivery(conn, d, &error) < 0) {
		delivery_fail(d, error);
		d->job.n_touched = 0;
		if (stmt_exec(conn, STMT_ROLLBACK_TO, error_r) != SQLITE_OK)
			return -1;
	}
	return stmt_exec(conn, STMT_RELEASE, error_r) == SQLITE_OK ? 0 : -1;
}

/* A group inside the batch transaction: one savepoint for all its
 * deliveries, so that one failing undoes the others (RFC 3502). Nothing
 * else runs between them: a mailbox's uids come out consecutive. */
static int deliver_group(struct store_conn *conn, struct store_delivery_group *g,
			 const char **error_r)
{
	struct store_delivery *d;
	const char *error;
	uint32_t k = 0;

	if (stmt_exec(conn, STMT_SAVEPOINT, error_r) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < g->n && g->status == 0; i++) {
		d = g->members[i];
		if (insert_delivery(conn, d, &error) < 0) {
			group_failf(g, "message %zu: %s", i + 1, error);
			break;
		}
		memcpy(g->uids + k, d->uids, d->n_rcpts * sizeof(*g->uids));
		k += d->n_rcpts;
		for (size_t t = 0; t < d->job.n_touched; t++) {
			if (store_job_touch(&g->job, d->job.touched[t]) < 0)
				group_failf(g, "out of memory");
		}
	}
	if (g->status < 0) {
		g->job.n_touched = 0;
		if (stmt_exec(conn, STMT_ROLLBACK_TO, error_r) != SQLITE_OK)
			return -1;
	}
	return stmt_exec(conn, STMT_RELEASE, error_r) == SQLITE_OK ? 0 : -1;
}

static bool job_ok(struct store_job *job)
{
	switch (job->kind) {
	case STORE_JOB_DELIVERY:
		return ((struct store_delivery *)job)->status == 0;
	case STORE_JOB_GROUP:
		return ((struct store_delivery_group *)job)->status == 0;
	default:
		return store_op_ok((struct store_op *)job);
	}
}

static void job_fail(struct store_job *job, const char *error)
{
	job->n_touched = 0;
	if (job->kind == STORE_JOB_DELIVERY)
		delivery_fail((struct store_delivery *)job, error);
	else if (job->kind == STORE_JOB_GROUP)
		group_failf((struct store_delivery_group *)job, "%s", error);
	else
		store_op_fail((struct store_op *)job, error);
}

static long us_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (long)((t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000);
}

/* PRAGMA synchronous for this connection's next transactions: NORMAL
 * commits without syncing the WAL, FULL syncs it inside COMMIT, before any
 * reader can see the transaction. */
static int conn_set_sync(struct store_conn *conn, bool normal, const char **error_r)
{
	if (conn->sync_normal == normal)
		return 0;
	if (sqlite3_exec(conn->db, normal ? "PRAGMA synchronous = NORMAL" :
			 "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = store_db_error(conn, "setting synchronous");
		return -1;
	}
	conn->sync_normal = normal;
	return 0;
}

/* *commit_us_r: how long COMMIT took (the WAL write and its sync). With
 * unsynced, COMMIT does not sync (fsync = optimized). */
static void db_commit(store_t *store, struct store_job *list, bool unsynced,
		      long *commit_us_r)
{
	struct timespec t0;
	struct store_conn *conn;
	const char *error;
	bool any = false;
	int ret;

	for (struct store_job *job = list; job != NULL; job = job->next)
		any = any || job_ok(job);
	if (!any)
		return;
	conn = store_conn_get(store, &error);
	ret = conn == NULL ? -1 : conn_set_sync(conn, unsynced, &error);
	if (ret == 0)
		ret = exec_retry_busy(conn, STMT_BEGIN_IMMEDIATE, &error);
	for (struct store_job *job = list; ret == 0 && job != NULL; job = job->next) {
		if (!job_ok(job))
			continue;
		if (job->kind == STORE_JOB_DELIVERY)
			ret = deliver_one(conn, (struct store_delivery *)job, &error);
		else if (job->kind == STORE_JOB_GROUP)
			ret = deliver_group(conn, (struct store_delivery_group *)job, &error);
		else
			ret = store_op_run(conn, (struct store_op *)job, &error);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ret == 0)
		ret = exec_retry_busy(conn, STMT_COMMIT, &error);
	*commit_us_r = us_since(&t0);
	if (ret == 0)
		return;
	if (conn != NULL)
		(void)stmt_exec(conn, STMT_ROLLBACK, NULL);
	for (struct store_job *job = list; job != NULL; job = job->next)
		job_fail(job, error);
}

/* ---- the batch ---- */

static void delivery_finish(struct store_delivery *d)
{
	struct store_delivery_result res;
	char path[4096];

	if (d->status < 0) {
		/* Renamed for a transaction that did not commit: nothing
		 * refers to the file. */
		if (d->in_blobs) {
			delivery_path(d, true, path, sizeof(path));
			(void)unlink(path);
		}
		if (d->n_rcpts > 0)
			memset(d->uids, 0, d->n_rcpts * sizeof(*d->uids));
	}
	res.status = d->status;
	res.error = d->status < 0 ? d->error : NULL;
	res.n_rcpts = d->n_rcpts;
	res.uids = d->uids;
	if (d->cb != NULL)
		d->cb(d->ctx, &res);
	delivery_free(d);
}

static void group_finish(struct store_delivery_group *g)
{
	struct store_delivery_result res;
	char path[4096];

	if (g->status < 0) {
		for (size_t i = 0; i < g->n; i++) {
			struct store_delivery *d = g->members[i];

			if (d->in_blobs) {
				delivery_path(d, true, path, sizeof(path));
				(void)unlink(path);
			}
		}
		if (g->uids != NULL)
			memset(g->uids, 0, g->n_uids * sizeof(*g->uids));
	}
	res.status = g->status;
	res.error = g->status < 0 ? g->error : NULL;
	res.n_rcpts = g->uids != NULL ? g->n_uids : 0;
	res.uids = g->uids;
	if (g->cb != NULL)
		g->cb(g->ctx, &res);
	group_free(g);
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The mailboxes the committed jobs changed, sorted and unique. NULL (and
 * no notification) only when out of memory, which the log reports. */
static int64_t *touched_collect(struct store_job *list, size_t *n_r)
{
	size_t n = 0, k = 0;
	int64_t *ids;

	*n_r = 0;
	for (struct store_job *job = list; job != NULL; job = job->next)
		n += job_ok(job) ? job->n_touched : 0;
	if (n == 0)
		return NULL;
	if ((ids = malloc(n * sizeof(*ids))) == NULL) {
		log_error("store", 0, "event=notify error=\"out of memory\"");
		return NULL;
	}
	for (struct store_job *job = list; job != NULL; job = job->next) {
		if (!job_ok(job))
			continue;
		memcpy(ids + k, job->touched, job->n_touched * sizeof(*ids));
		k += job->n_touched;
	}
	qsort(ids, n, sizeof(*ids), cmp_id);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k == 0 || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	}
	*n_r = k;
	return ids;
}

/* fdatasync of the WAL through a descriptor of our own (Linux syncs the
 * inode, whichever descriptor asks), opened on first use and again should
 * the file ever be replaced. */
static int wal_sync(store_t *store)
{
	char path[4096];
	struct stat st_fd, st_path;

	snprintf(path, sizeof(path), "%s-wal", store->db_path);
	if (store->wal_fd >= 0 &&
	    (stat(path, &st_path) < 0 || fstat(store->wal_fd, &st_fd) < 0 ||
	     st_fd.st_ino != st_path.st_ino || st_fd.st_dev != st_path.st_dev)) {
		close(store->wal_fd);
		store->wal_fd = -1;
	}
	if (store->wal_fd < 0 &&
	    (store->wal_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	return fdatasync(store->wal_fd);
}

/* fsync = optimized: a batch of flag changes and expunges only. */
static bool batch_light(struct store_job *list)
{
	for (struct store_job *job = list; job != NULL; job = job->next) {
		if (job->kind != STORE_JOB_OP || !store_op_is_light((struct store_op *)job))
			return false;
	}
	return list != NULL;
}

static void commit_batch(store_t *store, struct store_job *list, bool unsynced);

/* The committer's batch: with fsync = optimized, its flag changes and
 * expunges first, committed unsynced in a transaction of their own (jobs
 * of different sessions: their order does not matter, and a session has one
 * command at a time in the store), then the rest as always. */
static void committer_batch(store_t *store, struct store_job *list)
{
	struct store_job *light = NULL, **light_tail = &light, *rest = NULL,
			 **rest_tail = &rest, *next;
	bool frees = false;

	if (!store->fsync_optimized || batch_light(list)) {
		if (store->fsync_optimized) {
			light = list;
		} else {
			store_commit_batch(store, list);
			return;
		}
	} else {
		for (struct store_job *job = list; job != NULL; job = next) {
			next = job->next;
			job->next = NULL;
			if (job->kind == STORE_JOB_OP && store_op_is_light((struct store_op *)job)) {
				*light_tail = job;
				light_tail = &job->next;
			} else {
				*rest_tail = job;
				rest_tail = &job->next;
			}
		}
	}
	if (light != NULL) {
		commit_batch(store, light, true);
		/* Content files are unlinked only once the expunge that freed
		 * them is durable: a crash must never leave a message whose
		 * file is gone. */
		for (struct store_job *job = light; job != NULL; job = job->next)
			frees = frees || (job_ok(job) && store_op_frees_files((struct store_op *)job));
		if (frees && wal_sync(store) < 0) {
			log_error("store", 0, "event=sync-failed error=\"%s\"", strerror(errno));
			for (struct store_job *job = light; job != NULL; job = job->next)
				store_op_keep_files((struct store_op *)job);
		}
		store_finish_batch(store, light);
	}
	if (rest != NULL)
		store_commit_batch(store, rest);
}

void store_commit_batch(store_t *store, struct store_job *list)
{
	commit_batch(store, list, false);
	store_finish_batch(store, list);
}

void store_set_fsync_optimized(store_t *store, int optimized)
{
	store->fsync_optimized = optimized != 0;
}

/* Steps 1-3: files, then the transaction. */
static void commit_batch(store_t *store, struct store_job *list, bool unsynced)
{
	struct store_delivery *d;
	struct store_delivery_group *g;
	struct store_job *job;
	bool dirs[256] = { false }, root_touched = false;
	unsigned n = 0, failed = 0, ops = 0;
	struct timespec start;
	long commit_us = 0, files_us;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (job = list; job != NULL; job = job->next) {
		if ((g = job_group(job)) != NULL) {
			for (size_t i = 0; i < g->n && g->status == 0; i++) {
				d = g->members[i];
				if (d->status == 0 && d->spilled)
					spill_finish(d, dirs, &root_touched);
				if (d->status < 0)
					group_failf(g, "message %zu: %s", i + 1, d->error);
			}
			continue;
		}
		if ((d = job_delivery(job)) == NULL)
			continue;
		if (d->n_rcpts == 0)
			delivery_fail(d, "delivery has no recipients");
		if (d->status == 0 && d->spilled)
			spill_finish(d, dirs, &root_touched);
	}
	sync_dirs(store, list, dirs, root_touched);
	files_us = us_since(&start);
	db_commit(store, list, unsynced, &commit_us);

	/* The batch size shows how well group commit is working. */
	for (job = list; job != NULL; job = job->next) {
		n++;
		ops += job->kind == STORE_JOB_OP;
		failed += !job_ok(job);
	}
	log_debug("store", 0, "event=commit jobs=%u ops=%u failed=%u us=%ld files_us=%ld"
		  " commit_us=%ld synced=%d", n, ops, failed, us_since(&start), files_us,
		  commit_us, !unsynced);
}

void store_finish_batch(store_t *store, struct store_job *list)
{
	struct store_job *job, *next;
	int64_t *touched;
	size_t n_touched;

	touched = touched_collect(list, &n_touched);
	for (job = list; job != NULL; job = next) {
		next = job->next;
		if (job->kind == STORE_JOB_DELIVERY)
			delivery_finish((struct store_delivery *)job);
		else if (job->kind == STORE_JOB_GROUP)
			group_finish((struct store_delivery_group *)job);
		else
			store_op_finish((struct store_op *)job);
	}
	/* Outside the transaction, after the results: a watcher's session
	 * that reads the mailbox now sees everything this batch did. */
	store_notify(store, touched, n_touched);
	free(touched);
}

/* ---- the committer thread ---- */

static void *committer_main(void *arg)
{
	store_t *store = arg;
	struct store_job *batch;

	pthread_mutex_lock(&store->queue_lock);
	for (;;) {
		while (store->queue_head == NULL && !store->committer_stop)
			pthread_cond_wait(&store->queue_cond, &store->queue_lock);
		if (store->queue_head == NULL)
			break;
		/* Group commit: whatever queued up while the previous batch
		 * was syncing goes into this one transaction. */
		batch = store->queue_head;
		store->queue_head = store->queue_tail = NULL;
		pthread_mutex_unlock(&store->queue_lock);
		committer_batch(store, batch);
		pthread_mutex_lock(&store->queue_lock);
	}
	/* Cleared here, under the lock, with the queue empty: a commit racing
	 * with shutdown then runs synchronously instead of being lost. */
	store->committer_running = false;
	pthread_mutex_unlock(&store->queue_lock);
	return NULL;
}
int store_start_committer(store_t *store, const char **error_r)
{
	sigset_t all, old;
	int ret = 0;

	pthread_mutex_lock(&store->queue_lock);
	if (store->committer_joinable) {
		*error_r = "the committer is already running";
		ret = -1;
	} else {
		/* Signals belong to the event loops, not to this thread. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		store->committer_stop = false;
		if (pthread_create(&store->committer, NULL, committer_main, store) != 0) {
			*error_r = "cannot start the committer thread";
			ret = -1;
		} else {
			store->committer_running = true;
			store->committer_joinable = true;
			pthread_setname_np(store->committer, "petrel-commit");
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_mutex_unlock(&store->queue_lock);
	return ret;
}

void store_stop_committer(store_t *store)
{
	pthread_mutex_lock(&store->queue_lock);
	if (!store->committer_joinable) {
		pthread_mutex_unlock(&store->queue_lock);
		return;
	}
	store->committer_stop = true;
	pthread_cond_signal(&store->queue_cond);
	pthread_mutex_unlock(&store->queue_lock);
	pthread_join(store->committer, NULL);
	store->committer_joinable = false;
}
