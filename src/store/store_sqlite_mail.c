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

int store_mailbox_status(store_t *store, int64_t user_id, const char *name,
			 struct store_mailbox_status *st, const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_MAILBOX_STATUS, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, store_mailbox_name(name), -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		status_from_row(stmt, st);
	stmt_put(conn, STMT_MAILBOX_STATUS, stmt);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
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
 * mailbox and a number. */
static int msg_rows(struct store_conn *conn, enum stmt_id id, int64_t mailbox_id,
		    int64_t arg, void (*cb)(void *ctx, const struct store_msg *m),
		    void *ctx, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, id, error_r);
	struct store_msg m;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	sqlite3_bind_int64(stmt, 2, arg);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		msg_from_row(stmt, &m);
		if (cb != NULL)
			cb(ctx, &m);
	}
	stmt_put(conn, id, stmt);
	return rc == SQLITE_DONE ? 0 : read_error(conn, error_r);
}

int store_msg_scan(store_t *store, int64_t mailbox_id, uint32_t min_uid,
		   void (*cb)(void *ctx, const struct store_msg *m), void *ctx, const char **error_r)
{
	struct store_conn *conn = store_conn_get(store, error_r);

	if (conn == NULL)
		return -1;
	return msg_rows(conn, STMT_MSG_SCAN, mailbox_id, min_uid, cb, ctx, error_r);
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
