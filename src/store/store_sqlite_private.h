/*
 * store_sqlite_private.h - shared between the SQLite backend's files only.
 * Nothing outside src/store/ includes this.
 */
#ifndef PETREL_STORE_SQLITE_PRIVATE_H
#define PETREL_STORE_SQLITE_PRIVATE_H

#include "store/store.h"
#include "store/store_mail.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

/* Content up to this size lives in blobs.data; bigger goes to a file. It is
 * also the most a delivery ever holds in memory. */
#define STORE_INLINE_MAX (128u * 1024u)

/* Every STORE_FLAG_* bit. */
#define STORE_FLAGS_ALL 0x1fu

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
	/* schema 2: mail access (store_mail.h) */
	STMT_BEGIN_DEFERRED,
	STMT_UIDVALIDITY_NEXT,
	STMT_SUBSCRIBE,
	STMT_UNSUBSCRIBE,
	STMT_USER_EXISTS,
	STMT_MAILBOX_STATUS,
	STMT_MAILBOX_LIST_STATUS,
	STMT_MAILBOX_GET,
	STMT_MAILBOX_NEXT_UID,
	STMT_MAILBOX_UID_ALLOC,
	STMT_MAILBOX_MODSEQ_BUMP,
	STMT_MAILBOX_BLOBS,
	STMT_MAILBOX_DELETE,
	STMT_MAILBOX_SUBTREE,
	STMT_MAILBOX_RENAME,
	STMT_MSG_SCAN,
	STMT_MSG_CHANGED,
	STMT_MSG_UIDS,
	STMT_MSG_GET,
	STMT_MSG_SET_FLAGS,
	STMT_MSG_DELETE,
	STMT_EXPUNGED_SINCE,
	STMT_EXPUNGED_INSERT,
	STMT_BLOB_CONTENT,
	STMT_BLOB_REF,
	STMT_CACHE_GET,
	STMT_CACHE_INSERT,
	/* schema 3: APOP secrets (POP3) */
	STMT_USER_APOP_GET,
	STMT_USER_APOP_SET,
	STMT_USER_SCRAM_GET,
	STMT_USER_SCRAM_SET,
	/* schema 5: reads bounded by what a command names (indexes only) */
	STMT_MAILBOX_FIND,
	STMT_MSG_RANGE,
	STMT_MSG_FLAGS_SCAN,
	STMT_MSG_DELETED,
	STMT_COUNT
};

/* What the committer queue carries: deliveries, groups of deliveries
 * (all or none) and operations, each starting with this header, run in
 * queue order in one transaction. */
enum store_job_kind { STORE_JOB_DELIVERY, STORE_JOB_GROUP, STORE_JOB_OP };

struct store_job {
	enum store_job_kind kind;
	struct store_job *next;
	/* Mailboxes the job changed, announced to watchers once its batch
	 * committed. Emptied when the job's savepoint is rolled back. */
	int64_t *touched;
	size_t n_touched, touched_cap;
};

/* Remember that job changed mailbox_id. -1 out of memory. */
int store_job_touch(struct store_job *job, int64_t mailbox_id);

/* Blob files to unlink once the transaction that dropped their last
 * reference has committed (a crash before it must still find them). */
struct store_path_list {
	char **paths;
	size_t count, cap;
};

#define STORE_WATCH_BUCKETS 256

/* One SQLite connection, used by exactly one thread. */
struct store_conn {
	sqlite3 *db;
	sqlite3_stmt *stmts[STMT_COUNT];
	bool in_use[STMT_COUNT];
	/* store_read_begin nesting; read_own: it opened the transaction */
	unsigned read_depth;
	bool read_own;
	bool sync_normal;               /* PRAGMA synchronous = NORMAL in force */
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

	/* The committer: a queue of jobs and one thread draining it. */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;
	struct store_job *queue_head, *queue_tail;
	bool committer_running, committer_stop, committer_joinable;
	pthread_t committer;
	bool fsync_optimized;           /* store_set_fsync_optimized */
	int wal_fd;                     /* DB-wal, for syncs outside COMMIT */

	/* Watchers by mailbox id (hash buckets). watch_lock is held while
	 * callbacks run, which is what lets store_unwatch promise that its
	 * callback is done. */
	pthread_mutex_t watch_lock;
	struct store_watch *watches[STORE_WATCH_BUCKETS];
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

/* "INBOX" for any case variant of it, otherwise name itself. */
const char *store_mailbox_name(const char *name);

/* A new UIDVALIDITY: larger than any this store handed out before (a
 * counter in meta, at least the current time). Inside a transaction. */
int store_uidvalidity_next(struct store_conn *conn, uint32_t *uidvalidity_r,
			   const char **error_r);

/* Drop refs references to a blob; delete its row when none is left and add
 * its file (if any) to freed. Inside a transaction. */
int store_blob_unref(struct store_conn *conn, int64_t blob_id, int64_t refs,
		     struct store_path_list *freed, const char **error_r);
int store_path_list_add(struct store_path_list *list, const char *path);
/* Unlink the files (relative to DATA_DIR) when unlink_them, then free. */
void store_path_list_finish(store_t *store, struct store_path_list *list,
			    bool unlink_them);

/* Keywords in their stored form: base's keywords plus add's minus del's
 * (each a space-separated list, NULL for none), compared ASCII
 * case-insensitively (the first spelling seen is kept), sorted the same
 * way, joined by single spaces; "" when none. malloc'd, NULL when out of
 * memory. */
char *store_keywords_merge(const char *base, const char *add, const char *del);

/* The synchronous path and the committer thread both end here: make the
 * listed jobs durable, call their callbacks, free them, then tell the
 * watchers of every mailbox that changed. */
void store_commit_batch(store_t *store, struct store_job *list);
/* Its second half: callbacks, frees, watchers. */
void store_finish_batch(store_t *store, struct store_job *list);
/* Queue a job for the committer; false when no committer runs (the caller
 * then commits it synchronously). */
bool store_job_enqueue(store_t *store, struct store_job *job);
/* Signal the committer to drain its queue, and join it. */
void store_stop_committer(store_t *store);

/* Operations (store_sqlite_op.c). store_op_run runs one op inside the
 * batch transaction, in its own savepoint; -1 only when the transaction
 * itself can no longer be trusted. store_op_fail marks it failed (the
 * batch did not commit); store_op_finish unlinks what it freed (if it
 * succeeded), calls its callback and frees it. */
int store_op_run(struct store_conn *conn, struct store_op *op, const char **error_r);
bool store_op_ok(const struct store_op *op);
void store_op_fail(struct store_op *op, const char *error);
void store_op_finish(struct store_op *op);
/* Only flag changes and expunges: what fsync = optimized commits unsynced. */
bool store_op_is_light(const struct store_op *op);
/* It freed content files (to unlink once the commit is durable). */
bool store_op_frees_files(const struct store_op *op);
/* Keep the files it freed instead of unlinking them (orphans, harmless). */
void store_op_keep_files(struct store_op *op);

/* Call the watchers of the given mailboxes (sorted, unique). */
void store_notify(store_t *store, const int64_t *mailbox_ids, size_t n);
/* Free watchers left registered (store_close). */
void store_watch_free_all(store_t *store);

#endif
