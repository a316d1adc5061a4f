/*
 * store_sqlite_private.h - shared between the SQLite backend's files only.
 * Nothing outside src/store/ includes this.
 */
#ifndef PETREL_STORE_SQLITE_PRIVATE_H
#define PETREL_STORE_SQLITE_PRIVATE_H

#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

/* Content up to this size lives in blobs.data; bigger goes to a file. It is
 * also the most a delivery ever holds in memory. */
#define STORE_INLINE_MAX (128u * 1024u)

/* Statements prepared once per connection and kept (see stmt_get). */
enum stmt_id {
	STMT_BEGIN_IMMEDIATE,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_ROLLBACK_TO,
	STMT_SCHEMA_VERSION,
	STMT_DOMAIN_ID,
	STMT_DOMAIN_INSERT,
	STMT_DOMAIN_USERS,
	STMT_DOMAIN_DELETE,
	STMT_DOMAIN_LIST,
	STMT_USER_LOOKUP,
	STMT_USER_INSERT,
	STMT_USER_SET_PASSWORD,
	STMT_USER_BLOBS,
	STMT_USER_DELETE,
	STMT_USER_LIST,
	STMT_MAILBOX_INSERT,
	STMT_MAILBOX_LIST,
	STMT_MAILBOX_ID,
	STMT_MESSAGE_LIST,
	STMT_MESSAGE_BLOB,
	STMT_BLOB_INSERT,
	STMT_BLOB_UNREF,
	STMT_BLOB_DELETE,
	STMT_INBOX_NEXT_UID,
	STMT_MESSAGE_INSERT,
	STMT_COUNT
};

/* One SQLite connection, used by exactly one thread. */
struct store_conn {
	sqlite3 *db;
	sqlite3_stmt *stmts[STMT_COUNT];
	bool in_use[STMT_COUNT];
	struct store_conn *next;        /* store->conns */
};

struct store {
	char *data_dir;
	char *db_path;
	int tmp_lock_fd;                /* shared flock on tmp/ (see store_open) */

	/* Each thread's connection, found through a key of this store so that
	 * two stores open in one process never share one. */
	pthread_key_t conn_key;
	pthread_mutex_t conns_lock;
	struct store_conn *conns;       /* all of them, closed by store_close */

	/* The committer: a queue of deliveries and one thread draining it. */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;
	struct store_delivery *queue_head, *queue_tail;
	bool committer_running, committer_stop, committer_joinable;
	pthread_t committer;
};

/* This thread's connection to store, opened on first use. */
struct store_conn *store_conn_get(store_t *store, const char **error_r);

/* A prepared statement for id, reset and unbound. The cached copy unless it
 * is already in use further up this thread's stack (a callback that calls
 * back into the store), in which case a private copy. NULL on error. */
sqlite3_stmt *stmt_get(struct store_conn *conn, enum stmt_id id,
		       const char **error_r);
/* Give back what stmt_get returned (NULL is allowed). */
void stmt_put(struct store_conn *conn, enum stmt_id id, sqlite3_stmt *stmt);
/* Run a statement that returns no rows (BEGIN, COMMIT, ...). SQLite code. */
int stmt_exec(struct store_conn *conn, enum stmt_id id, const char **error_r);

/* Message in a per-thread buffer: "what: SQLite's message". */
const char *store_db_error(struct store_conn *conn, const char *what);
/* printf into the per-thread error buffer. */
const char *store_errorf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* open + fsync + close of a directory: makes the names in it durable. */
int store_fsync_dir(const char *path);

/* The synchronous path and the committer thread both end here: make the
 * listed deliveries durable, call their callbacks, free them. */
void store_commit_batch(store_t *store, struct store_delivery *list);
/* Signal the committer to drain its queue, and join it. */
void store_stop_committer(store_t *store);

#endif
