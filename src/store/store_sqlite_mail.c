/*
 * store_sqlite_mail.c - the read side of store_mail.h (mailbox status,
 * message metadata, changes since a modseq, parse cache) and the registry of
 * watchers. Content is read in store_sqlite_blob.c.
 *
 * Every read runs on the calling thread's own connection; in WAL mode it
 * sees the last committed state and never waits for the committer.
 */
#include "store/store_sqlite_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- mailboxes ---- */

static void status_from_row(sqlite3_stmt *stmt, struct store_mailbox_status *st)
{
	const char *name = (const char *)sqlite3_column_text(stmt, 1);

	memset(st, 0, sizeof(*st));
	st->id = sqlite3_column_int64(stmt, 0);
	snprintf(st->name, sizeof(st->name), "%s", name == NULL ? "" : name);
	st->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 2);
	st->uidnext = (uint32_t)sqlite3_column_int64(stmt, 3);
	st->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 4);
	st->messages = (uint32_t)sqlite3_column_int64(stmt, 5);
	st->unseen = (uint32_t)sqlite3_column_int64(stmt, 6);
	st->deleted = (uint32_t)sqlite3_column_int64(stmt, 7);
	st->size = (uint64_t)sqlite3_column_int64(stmt, 8);
	st->special_use = (enum store_special_use)sqlite3_column_int(stmt, 9);
	st->subscribed = sqlite3_column_int(stmt, 10) != 0;
}

static int read_error(struct store_conn *conn, const char **error_r)
{
	*error_r = store_db_error(conn, "database error");
	return -1;
}

/* One mailbox row by (user, name) through statement id, which selects the
 * columns status_from_row reads: 1 found, 0 none, -1 error. */
static int mailbox_status_get(store_t *store, enum stmt_id id, int64_t user_id,
			      const char *name, struct store_mailbox_status *st,
			      const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, id, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, store_mailbox_name(name), -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		status_from_row(stmt, st);
	stmt_put(conn, id, stmt);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
}

int store_mailbox_status(store_t *store, int64_t user_id, const char *name,
			 struct store_mailbox_status *st, const char **error_r)
{
	return mailbox_status_get(store, STMT_MAILBOX_STATUS, user_id, name, st, error_r);
}

int store_mailbox_find(store_t *store, int64_t user_id, const char *name,
		       struct store_mailbox_status *st, const char **error_r)
{
	return mailbox_status_get(store, STMT_MAILBOX_FIND, user_id, name, st, error_r);
}

int store_mailbox_list_status(store_t *store, int64_t user_id, int include_subscribed_missing,
			      void (*cb)(void *ctx, const struct store_mailbox_status *st),
			      void *ctx, const char **error_r)
{
	struct store_mailbox_status st;
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_MAILBOX_LIST_STATUS, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_int(stmt, 2, include_subscribed_missing != 0);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		status_from_row(stmt, &st);
		cb(ctx, &st);
	}
	stmt_put(conn, STMT_MAILBOX_LIST_STATUS, stmt);
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
}

/* ---- reads in one snapshot ---- */

int store_read_begin(store_t *store, const char **error_r)
{
	struct store_conn *conn = store_conn_get(store, error_r);

	if (conn == NULL)
		return -1;
	if (conn->read_depth++ > 0)
		return 0;
	/* Inside a transaction already (not ours): nothing to open. */
	conn->read_own = sqlite3_get_autocommit(conn->db) != 0;
	if (conn->read_own && stmt_exec(conn, STMT_BEGIN_DEFERRED, error_r) != SQLITE_OK) {
		conn->read_depth = 0;
		conn->read_own = false;
		return -1;
	}
	return 0;
}

void store_read_end(store_t *store)
{
	const char *error;
	struct store_conn *conn = store_conn_get(store, &error);

	if (conn == NULL || conn->read_depth == 0 || --conn->read_depth > 0)
		return;
	/* A read that failed may have ended the transaction already. */
	if (conn->read_own && !sqlite3_get_autocommit(conn->db))
		(void)stmt_exec(conn, STMT_COMMIT, NULL);
	conn->read_own = false;
}

/* ---- messages ---- */

/* The MSG_COLUMNS of a row; keywords valid until the next step. */
static void msg_from_row(sqlite3_stmt *stmt, struct store_msg *m)
{
	const char *kw = (const char *)sqlite3_column_text(stmt, 2);

	m->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
	m->flags = (uint32_t)sqlite3_column_int64(stmt, 1);
	m->keywords = kw == NULL ? "" : kw;
	m->modseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	m->internaldate = sqlite3_column_int64(stmt, 4);
	m->size = (uint64_t)sqlite3_column_int64(stmt, 5);
	m->blob_id = sqlite3_column_int64(stmt, 6);
}

/* Call cb for every row of a statement with MSG_COLUMNS, bound to a
 * mailbox and one number, or two for a statement that takes three
 * parameters. */
static int msg_rows2(struct store_conn *conn, enum stmt_id id, int64_t mailbox_id,
		     int64_t arg, int64_t arg2, void (*cb)(void *ctx, const struct store_msg *m),
		     void *ctx, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, id, error_r);
	struct store_msg m;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	sqlite3_bind_int64(stmt, 2, arg);
	if (sqlite3_bind_parameter_count(stmt) >= 3)
		sqlite3_bind_int64(stmt, 3, arg2);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		msg_from_row(stmt, &m);
		if (cb != NULL)
			cb(ctx, &m);
	}
	stmt_put(conn, id, stmt);
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
}

static int msg_rows(struct store_conn *conn, enum stmt_id id, int64_t mailbox_id,
		    int64_t arg, void (*cb)(void *ctx, const struct store_msg *m),
		    void *ctx, const char **error_r)
{
	return msg_rows2(conn, id, mailbox_id, arg, 0, cb, ctx, error_r);
}

int store_msg_scan(store_t *store, int64_t mailbox_id, uint32_t min_uid,
		   void (*cb)(void *ctx, const struct store_msg *m), void *ctx, const char **error_r)
{
	struct store_conn *conn = store_conn_get(store, error_r);

	if (conn == NULL)
		return -1;
	return msg_rows(conn, STMT_MSG_SCAN, mailbox_id, min_uid, cb, ctx, error_r);
}

int store_msg_scan_range(store_t *store, int64_t mailbox_id, uint32_t min_uid, uint32_t max_uid,
			 void (*cb)(void *ctx, const struct store_msg *m), void *ctx,
			 const char **error_r)
{
	struct store_conn *conn = store_conn_get(store, error_r);

	if (conn == NULL)
		return -1;
	if (min_uid > max_uid)
		return 0;
	return msg_rows2(conn, STMT_MSG_RANGE, mailbox_id, min_uid, max_uid, cb, ctx, error_r);
}

/* One point lookup per uid, in one read transaction (one snapshot, and
 * the read lock taken once). */
static int msg_points(struct store_conn *conn, int64_t mailbox_id, const uint32_t *uids,
		      size_t n, void (*cb)(void *ctx, const struct store_msg *m), void *ctx,
		      const char **error_r)
{
	bool own_tx = sqlite3_get_autocommit(conn->db) != 0;
	sqlite3_stmt *stmt;
	struct store_msg m;
	int rc = SQLITE_DONE, ret = 0;

	if (own_tx && stmt_exec(conn, STMT_BEGIN_DEFERRED, error_r) != SQLITE_OK)
		return -1;
	if ((stmt = stmt_get(conn, STMT_MSG_GET, error_r)) == NULL)
		ret = -1;
	for (size_t i = 0; ret == 0 && i < n; i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_int64(stmt, 1, mailbox_id);
		sqlite3_bind_int64(stmt, 2, uids[i]);
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW) {
			msg_from_row(stmt, &m);
			cb(ctx, &m);
		} else if (rc != SQLITE_DONE) {
			ret = read_error(conn, error_r);
		}
	}
	stmt_put(conn, STMT_MSG_GET, stmt);
	if (own_tx)
		(void)stmt_exec(conn, STMT_COMMIT, NULL);
	return ret;
}

/* A range scan passes on only the uids asked for. */
struct uid_filter {
	const uint32_t *uids;
	size_t n, i;
	void (*cb)(void *ctx, const struct store_msg *m);
	void *ctx;
};

static void uid_filter_cb(void *ctx, const struct store_msg *m)
{
	struct uid_filter *uf = ctx;

	while (uf->i < uf->n && uf->uids[uf->i] < m->uid)
		uf->i++;
	if (uf->i < uf->n && uf->uids[uf->i] == m->uid)
		uf->cb(uf->ctx, m);
}

int store_msg_get_uids(store_t *store, int64_t mailbox_id, const uint32_t *uids, size_t n,
		       void (*cb)(void *ctx, const struct store_msg *m), void *ctx,
		       const char **error_r)
{
	struct uid_filter uf = { .uids = uids, .n = n, .cb = cb, .ctx = ctx };
	struct store_conn *conn;
	uint64_t span;

	if (n == 0)
		return 0;
	if ((conn = store_conn_get(store, error_r)) == NULL)
		return -1;
	/* A lookup costs about what a few steps of a scan cost: scan unless
	 * the uids asked for are under a quarter of the range they span. */
	span = (uint64_t)uids[n - 1] - uids[0] + 1;
	if ((uint64_t)n * 4 <= span)
		return msg_points(conn, mailbox_id, uids, n, cb, ctx, error_r);
	return msg_rows2(conn, STMT_MSG_RANGE, mailbox_id, uids[0], uids[n - 1], uid_filter_cb,
			 &uf, error_r);
}

/* Rows of (uid[, flags]) from a statement bound to a mailbox and, for
 * three parameters, a uid range. */
static int uid_rows(store_t *store, enum stmt_id id, int64_t mailbox_id, uint32_t min_uid,
		    uint32_t max_uid, void (*cb)(void *ctx, uint32_t uid, uint32_t flags),
		    void (*uid_cb)(void *ctx, uint32_t uid), void *ctx, const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, id, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	if (sqlite3_bind_parameter_count(stmt) >= 3) {
		sqlite3_bind_int64(stmt, 2, min_uid);
		sqlite3_bind_int64(stmt, 3, max_uid);
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(stmt, 0);

		if (cb != NULL)
			cb(ctx, uid, (uint32_t)sqlite3_column_int64(stmt, 1));
		else
			uid_cb(ctx, uid);
	}
	stmt_put(conn, id, stmt);
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
}

int store_msg_scan_flags(store_t *store, int64_t mailbox_id,
			 void (*cb)(void *ctx, uint32_t uid, uint32_t flags), void *ctx,
			 const char **error_r)
{
	return uid_rows(store, STMT_MSG_FLAGS_SCAN, mailbox_id, 0, 0, cb, NULL, ctx, error_r);
}

int store_msg_scan_deleted(store_t *store, int64_t mailbox_id, uint32_t min_uid,
			   uint32_t max_uid, void (*cb)(void *ctx, uint32_t uid), void *ctx,
			   const char **error_r)
{
	if (min_uid > max_uid)
		return 0;
	return uid_rows(store, STMT_MSG_DELETED, mailbox_id, min_uid, max_uid, NULL, cb, ctx,
			error_r);
}

int store_msg_changes(store_t *store, int64_t mailbox_id, uint64_t since_modseq,
		      void (*msg_cb)(void *ctx, const struct store_msg *m),
		      void (*expunged_cb)(void *ctx, uint32_t uid, uint64_t modseq), void *ctx,
		      const char **error_r)
{
	struct store_conn *conn = store_conn_get(store, error_r);
	sqlite3_stmt *stmt;
	bool own_tx;
	int64_t since = since_modseq > INT64_MAX ? INT64_MAX : (int64_t)since_modseq;
	int rc, ret;

	if (conn == NULL)
		return -1;
	/* Both queries in one read transaction: one snapshot, so that a
	 * commit in between cannot show a message neither changed nor
	 * expunged (or both). */
	own_tx = sqlite3_get_autocommit(conn->db) != 0;
	if (own_tx && stmt_exec(conn, STMT_BEGIN_DEFERRED, error_r) != SQLITE_OK)
		return -1;
	ret = msg_rows(conn, STMT_MSG_CHANGED, mailbox_id, since, msg_cb, ctx, error_r);
	if (ret == 0 && (stmt = stmt_get(conn, STMT_EXPUNGED_SINCE, error_r)) == NULL)
		ret = -1;
	if (ret == 0) {
		sqlite3_bind_int64(stmt, 1, mailbox_id);
		sqlite3_bind_int64(stmt, 2, since);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			if (expunged_cb != NULL)
				expunged_cb(ctx, (uint32_t)sqlite3_column_int64(stmt, 0),
					    (uint64_t)sqlite3_column_int64(stmt, 1));
		}
		stmt_put(conn, STMT_EXPUNGED_SINCE, stmt);
		if (rc != SQLITE_DONE)
			ret = read_error(conn, error_r);
	}
	if (own_tx)
		(void)stmt_exec(conn, STMT_COMMIT, NULL);
	return ret;
}

/* ---- parse cache and content ---- */

static char *column_strdup(sqlite3_stmt *stmt, int col, bool *failed)
{
	const char *text;
	char *copy;

	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		return NULL;
	text = (const char *)sqlite3_column_text(stmt, col);
	if (text == NULL || (copy = strdup(text)) == NULL) {
		*failed = true;
		return NULL;
	}
	return copy;
}

int store_msg_cache_get(store_t *store, int64_t blob_id, struct store_msg_cache *out,
			const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	bool failed = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_CACHE_GET, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		out->envelope = column_strdup(stmt, 0, &failed);
		out->bodystructure = column_strdup(stmt, 1, &failed);
		out->body = column_strdup(stmt, 2, &failed);
		out->parts = column_strdup(stmt, 3, &failed);
		out->subject = column_strdup(stmt, 4, &failed);
		out->from = column_strdup(stmt, 5, &failed);
		out->to = column_strdup(stmt, 6, &failed);
		out->cc = column_strdup(stmt, 7, &failed);
		out->bcc = column_strdup(stmt, 8, &failed);
		out->message_id = column_strdup(stmt, 9, &failed);
		out->in_reply_to = column_strdup(stmt, 10, &failed);
		out->references = column_strdup(stmt, 11, &failed);
		out->sent_date = sqlite3_column_int64(stmt, 12);
	}
	stmt_put(conn, STMT_CACHE_GET, stmt);
	if (failed) {
		store_msg_cache_free(out);
		*error_r = "out of memory";
		return -1;
	}
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
}

void store_msg_cache_free(struct store_msg_cache *c)
{
	if (c == NULL)
		return;
	free(c->envelope);
	free(c->bodystructure);
	free(c->body);
	free(c->parts);
	free(c->subject);
	free(c->from);
	free(c->to);
	free(c->cc);
	free(c->bcc);
	free(c->message_id);
	free(c->in_reply_to);
	free(c->references);
	memset(c, 0, sizeof(*c));
}

/* ---- watchers ---- */

struct store_watch {
	store_t *store;
	int64_t mailbox_id;
	void (*cb)(void *ctx);
	void *ctx;
	struct store_watch **prev, *next;      /* bucket chain */
};

static size_t watch_bucket(int64_t mailbox_id)
{
	return (size_t)((uint64_t)mailbox_id % STORE_WATCH_BUCKETS);
}

store_watch_t *store_watch(store_t *store, int64_t mailbox_id, void (*cb)(void *ctx), void *ctx)
{
	struct store_watch *w = calloc(1, sizeof(*w)), **head;

	if (w == NULL)
		return NULL;
	w->store = store;
	w->mailbox_id = mailbox_id;
	w->cb = cb;
	w->ctx = ctx;
	head = &store->watches[watch_bucket(mailbox_id)];
	pthread_mutex_lock(&store->watch_lock);
	w->next = *head;
	if (w->next != NULL)
		w->next->prev = &w->next;
	w->prev = head;
	*head = w;
	pthread_mutex_unlock(&store->watch_lock);
	return w;
}

void store_unwatch(store_watch_t *w)
{
	store_t *store;

	if (w == NULL)
		return;
	store = w->store;
	/* The notifier holds this lock while it calls callbacks: once we
	 * have it, w's callback is not running, and unlinked it never will. */
	pthread_mutex_lock(&store->watch_lock);
	*w->prev = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&store->watch_lock);
	free(w);
}

void store_notify(store_t *store, const int64_t *mailbox_ids, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&store->watch_lock);
	for (size_t i = 0; i < n; i++) {
		for (struct store_watch *w = store->watches[watch_bucket(mailbox_ids[i])];
		     w != NULL; w = w->next) {
			if (w->mailbox_id == mailbox_ids[i])
				w->cb(w->ctx);
		}
	}
	pthread_mutex_unlock(&store->watch_lock);
}

void store_watch_free_all(store_t *store)
{
	struct store_watch *w, *next;

	for (size_t i = 0; i < STORE_WATCH_BUCKETS; i++) {
		for (w = store->watches[i]; w != NULL; w = next) {
			next = w->next;
			free(w);
		}
		store->watches[i] = NULL;
	}
}
