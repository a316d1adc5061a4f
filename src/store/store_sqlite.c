/*
 * store_sqlite.c - the default store backend: SQLite (WAL) for metadata,
 * message content inline in the database or in files under DATA_DIR/blobs.
 *
 * This file holds opening and closing, the schema and every statement, the
 * per-thread connections and their statement cache, domains, users and the
 * read side of store.h. Deliveries and the committer live in
 * store_sqlite_delivery.c, write operations in store_sqlite_op.c, the read
 * side of store_mail.h and watchers in store_sqlite_mail.c, reading content
 * in store_sqlite_blob.c.
 */
#include "store/store_sqlite_private.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_VERSION 5
#define DATA_DIR_MAX 3072
#define LOCALPART_MAX 64
#define DOMAIN_MAX 253
/* store_message_write never holds more than this much of a message. */
#define STREAM_CHUNK (64u * 1024u)
/* Opening retries a locked new database for up to this many 10 ms. */
#define SETUP_ATTEMPTS 1000

static const char schema_sql[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE IF NOT EXISTS meta ("
	"  key TEXT PRIMARY KEY,"
	"  value);"
	"CREATE TABLE IF NOT EXISTS domains ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE COLLATE NOCASE);"
	"CREATE TABLE IF NOT EXISTS users ("
	"  id INTEGER PRIMARY KEY,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  localpart TEXT NOT NULL COLLATE NOCASE,"
	"  password_hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  UNIQUE (domain_id, localpart));"
	"CREATE TABLE IF NOT EXISTS mailboxes ("
	"  id INTEGER PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext INTEGER NOT NULL DEFAULT 1,"
	"  highestmodseq INTEGER NOT NULL DEFAULT 1,"
	"  special_use INTEGER NOT NULL DEFAULT 0,"
	/* Unused since schema 2 (subscriptions); kept so that the migration
	 * below reads the same in old and new databases. */
	"  subscribed INTEGER NOT NULL DEFAULT 1,"
	"  UNIQUE (user_id, name));"
	/* Exactly one of data (inline) and path (relative to DATA_DIR). */
	"CREATE TABLE IF NOT EXISTS blobs ("
	"  id INTEGER PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  refcount INTEGER NOT NULL,"
	"  data BLOB,"
	"  path TEXT,"
	"  CHECK ((data IS NULL) <> (path IS NULL)));"
	"CREATE TABLE IF NOT EXISTS messages ("
	"  id INTEGER PRIMARY KEY,"
	"  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,"
	"  uid INTEGER NOT NULL,"
	"  modseq INTEGER NOT NULL,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  keywords TEXT,"
	"  internaldate INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  blob_id INTEGER NOT NULL REFERENCES blobs(id),"
	"  subject TEXT,"
	"  UNIQUE (mailbox_id, uid));"
	/* Deleting a blob checks that no message points at it. */
	"CREATE INDEX IF NOT EXISTS messages_blob ON messages(blob_id);"
	/* CONDSTORE/QRESYNC: what changed in a mailbox since a modseq. */
	"CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox_id, modseq);"
	"CREATE TABLE IF NOT EXISTS expunged ("
	"  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,"
	"  uid INTEGER NOT NULL,"
	"  modseq INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox_id, modseq);"
	/* Schema 2. What mime/ parsed, one row per content. */
	"CREATE TABLE IF NOT EXISTS msg_cache ("
	"  blob_id INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,"
	"  envelope TEXT, bodystructure TEXT, body TEXT, parts TEXT,"
	"  subject TEXT, from_ TEXT, to_ TEXT, cc TEXT, bcc TEXT,"
	"  message_id TEXT, in_reply_to TEXT, refs TEXT, sent_date INTEGER);"
	/* Subscribed names, whether or not such a mailbox exists (RFC 3501
	 * 6.3.6). */
	"CREATE TABLE IF NOT EXISTS subscriptions ("
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  PRIMARY KEY (user_id, name)) WITHOUT ROWID;"
	/* A new database starts at 2; an old one stays at 1 until migrated.
	 * Both go on from there in schema_step (ALTER TABLE cannot be made
	 * conditional in SQL). */
	"INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', 2);"
	/* The last UIDVALIDITY handed out (see store_uidvalidity_next). */
	"INSERT OR IGNORE INTO meta(key, value) VALUES ('uidvalidity',"
	"  (SELECT coalesce(max(uidvalidity), 0) FROM mailboxes));"
	/* 1 -> 2: subscriptions move out of mailboxes.subscribed. */
	"INSERT OR IGNORE INTO subscriptions(user_id, name)"
	"  SELECT user_id, name FROM mailboxes WHERE subscribed <> 0"
	"  AND (SELECT value FROM meta WHERE key = 'schema_version') = 1;"
	"UPDATE meta SET value = 2 WHERE key = 'schema_version' AND value = 1;"
	"COMMIT;";

/* The columns of struct store_msg, in its order (see msg_from_row). */
#define MSG_COLUMNS "uid, flags, coalesce(keywords, ''), modseq, internaldate, size, blob_id"
/* The columns of struct store_mailbox_status from mailboxes mb joined with
 * its messages m (see status_from_row). */
#define STATUS_COLUMNS \
	"mb.id, mb.name AS name, mb.uidvalidity, mb.uidnext, mb.highestmodseq," \
	" count(m.id), coalesce(sum((m.flags & 1) = 0), 0)," \
	" coalesce(sum((m.flags & 8) <> 0), 0), coalesce(sum(m.size), 0)," \
	" mb.special_use, EXISTS (SELECT 1 FROM subscriptions s" \
	"  WHERE s.user_id = mb.user_id AND s.name = mb.name)"

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_SAVEPOINT] = "SAVEPOINT delivery",
	[STMT_RELEASE] = "RELEASE delivery",
	[STMT_ROLLBACK_TO] = "ROLLBACK TO delivery",
	[STMT_SCHEMA_VERSION] =
		"SELECT value FROM meta WHERE key = 'schema_version'",
	[STMT_DOMAIN_ID] = "SELECT id FROM domains WHERE name = ?1",
	[STMT_DOMAIN_INSERT] = "INSERT INTO domains(name) VALUES (?1)",
	[STMT_DOMAIN_USERS] =
		"SELECT d.id, (SELECT count(*) FROM users u WHERE u.domain_id = d.id)"
		" FROM domains d WHERE d.name = ?1",
	[STMT_DOMAIN_DELETE] = "DELETE FROM domains WHERE id = ?1",
	[STMT_DOMAIN_LIST] = "SELECT name FROM domains ORDER BY name",
	[STMT_USER_LOOKUP] =
		"SELECT u.id, u.password_hash FROM users u"
		" JOIN domains d ON d.id = u.domain_id"
		" WHERE d.name = ?1 AND u.localpart = ?2",
	[STMT_USER_INSERT] =
		"INSERT INTO users(domain_id, localpart, password_hash, created)"
		" VALUES (?1, ?2, ?3, ?4)",
	[STMT_USER_SET_PASSWORD] =
		/* SCRAM secrets of the old password go with it (the caller
		 * stores new ones: store_user_set_scram). */
		"UPDATE users SET password_hash = ?3, scram_sha256 = NULL WHERE localpart = ?2"
		" AND domain_id = (SELECT id FROM domains WHERE name = ?1)",
	[STMT_USER_BLOBS] =
		"SELECT m.blob_id, count(*) FROM messages m"
		" JOIN mailboxes mb ON mb.id = m.mailbox_id"
		" WHERE mb.user_id = ?1 GROUP BY m.blob_id",
	[STMT_USER_DELETE] = "DELETE FROM users WHERE id = ?1",
	[STMT_USER_LIST] =
		"SELECT u.localpart, d.name FROM users u"
		" JOIN domains d ON d.id = u.domain_id"
		" WHERE ?1 IS NULL OR d.name = ?1"
		" ORDER BY u.localpart || '@' || d.name COLLATE NOCASE",
	[STMT_MAILBOX_INSERT] =
		"INSERT INTO mailboxes(user_id, name, uidvalidity, special_use)"
		" VALUES (?1, ?2, ?3, ?4)",
	[STMT_MAILBOX_LIST] =
		"SELECT mb.id, mb.name, mb.uidvalidity, mb.uidnext,"
		"  mb.highestmodseq, mb.special_use,"
		"  (SELECT count(*) FROM messages m WHERE m.mailbox_id = mb.id)"
		" FROM mailboxes mb WHERE mb.user_id = ?1"
		" ORDER BY mb.name <> 'INBOX', mb.name",
	[STMT_MAILBOX_ID] =
		"SELECT id FROM mailboxes WHERE user_id = ?1 AND name = ?2",
	[STMT_MESSAGE_LIST] =
		"SELECT uid, size, internaldate, coalesce(subject, ''), modseq, flags"
		" FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
	[STMT_MESSAGE_BLOB] =
		"SELECT b.id, b.size, b.path FROM mailboxes mb"
		" JOIN messages m ON m.mailbox_id = mb.id"
		" JOIN blobs b ON b.id = m.blob_id"
		" WHERE mb.user_id = ?1 AND mb.name = ?2 AND m.uid = ?3",
	[STMT_BLOB_INSERT] =
		"INSERT INTO blobs(size, refcount, data, path) VALUES (?1, ?2, ?3, ?4)",
	[STMT_BLOB_UNREF] =
		"UPDATE blobs SET refcount = refcount - ?2 WHERE id = ?1"
		" RETURNING refcount, path",
	[STMT_BLOB_DELETE] = "DELETE FROM blobs WHERE id = ?1",
	/* RETURNING gives the new values: the uid taken is uidnext - 1. */
	[STMT_INBOX_NEXT_UID] =
		"UPDATE mailboxes SET uidnext = uidnext + 1,"
		"  highestmodseq = highestmodseq + 1"
		" WHERE user_id = ?1 AND name = 'INBOX'"
		" RETURNING id, uidnext - 1, highestmodseq",
	[STMT_MESSAGE_INSERT] =
		"INSERT INTO messages(mailbox_id, uid, modseq, internaldate, size,"
		"  blob_id, subject, flags, keywords)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, nullif(?9, ''))",
	[STMT_BEGIN_DEFERRED] = "BEGIN",
	[STMT_UIDVALIDITY_NEXT] =
		"UPDATE meta SET value = max(value + 1, ?1) WHERE key = 'uidvalidity'"
		" RETURNING value",
	[STMT_SUBSCRIBE] =
		"INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?1, ?2)",
	[STMT_UNSUBSCRIBE] =
		"DELETE FROM subscriptions WHERE user_id = ?1 AND name = ?2",
	[STMT_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
	[STMT_MAILBOX_STATUS] =
		"SELECT " STATUS_COLUMNS
		" FROM mailboxes mb LEFT JOIN messages m ON m.mailbox_id = mb.id"
		" WHERE mb.user_id = ?1 AND mb.name = ?2 GROUP BY mb.id",
	/* Subscribed names without a mailbox (only when ?2) come in name
	 * order with the others, as rows with id 0. */
	[STMT_MAILBOX_LIST_STATUS] =
		"SELECT * FROM ("
		" SELECT " STATUS_COLUMNS
		" FROM mailboxes mb LEFT JOIN messages m ON m.mailbox_id = mb.id"
		" WHERE mb.user_id = ?1 GROUP BY mb.id"
		" UNION ALL"
		" SELECT 0, s.name, 0, 0, 0, 0, 0, 0, 0, 0, 1 FROM subscriptions s"
		" WHERE ?2 AND s.user_id = ?1 AND NOT EXISTS (SELECT 1 FROM mailboxes x"
		"  WHERE x.user_id = ?1 AND x.name = s.name))"
		" ORDER BY name <> 'INBOX', name",
	/* STATUS_COLUMNS without the messages (counts 0): one row lookup. */
	[STMT_MAILBOX_FIND] =
		"SELECT mb.id, mb.name, mb.uidvalidity, mb.uidnext, mb.highestmodseq,"
		" 0, 0, 0, 0, mb.special_use, EXISTS (SELECT 1 FROM subscriptions s"
		"  WHERE s.user_id = mb.user_id AND s.name = mb.name)"
		" FROM mailboxes mb WHERE mb.user_id = ?1 AND mb.name = ?2",
	[STMT_MAILBOX_GET] =
		"SELECT uidvalidity, uidnext, highestmodseq FROM mailboxes WHERE id = ?1",
	/* RETURNING gives the new values: the uid taken is uidnext - 1. */
	[STMT_MAILBOX_NEXT_UID] =
		"UPDATE mailboxes SET uidnext = uidnext + 1,"
		"  highestmodseq = highestmodseq + 1"
		" WHERE id = ?1 RETURNING id, uidnext - 1, highestmodseq",
	[STMT_MAILBOX_UID_ALLOC] =
		"UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ?1"
		" RETURNING uidnext - 1",
	[STMT_MAILBOX_MODSEQ_BUMP] =
		"UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1"
		" RETURNING highestmodseq",
	[STMT_MAILBOX_BLOBS] =
		"SELECT blob_id, count(*) FROM messages WHERE mailbox_id = ?1"
		" GROUP BY blob_id",
	[STMT_MAILBOX_DELETE] = "DELETE FROM mailboxes WHERE id = ?1",
	/* name and every name below it: "name/..." sorts from "name/"
	 * up to, not including, "name0" ('0' follows '/' in ASCII). */
	[STMT_MAILBOX_SUBTREE] =
		"SELECT id, name FROM mailboxes WHERE user_id = ?1 AND (name = ?2"
		" OR (name >= ?2 || '/' AND name < ?2 || '0')) ORDER BY name",
	[STMT_MAILBOX_RENAME] = "UPDATE mailboxes SET name = ?2 WHERE id = ?1",
	[STMT_MSG_SCAN] =
		"SELECT " MSG_COLUMNS " FROM messages"
		" WHERE mailbox_id = ?1 AND uid >= ?2 ORDER BY uid",
	[STMT_MSG_RANGE] =
		"SELECT " MSG_COLUMNS " FROM messages"
		" WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid",
	/* Read from messages_flags alone (covering): no table row per message. */
	[STMT_MSG_FLAGS_SCAN] =
		"SELECT uid, flags FROM messages INDEXED BY messages_flags"
		" WHERE mailbox_id = ?1 ORDER BY uid",
	/* The WHERE matches messages_deleted's, which makes it usable. */
	[STMT_MSG_DELETED] =
		"SELECT uid FROM messages INDEXED BY messages_deleted"
		" WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 AND (flags & 8) <> 0"
		" ORDER BY uid",
	[STMT_MSG_CHANGED] =
		"SELECT " MSG_COLUMNS " FROM messages"
		" WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
	[STMT_MSG_UIDS] = "SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
	[STMT_MSG_GET] =
		"SELECT " MSG_COLUMNS ", id, subject FROM messages"
		" WHERE mailbox_id = ?1 AND uid = ?2",
	[STMT_MSG_SET_FLAGS] =
		"UPDATE messages SET flags = ?2, keywords = nullif(?3, ''), modseq = ?4"
		" WHERE id = ?1",
	[STMT_MSG_DELETE] =
		"DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2 RETURNING blob_id",
	[STMT_EXPUNGED_SINCE] =
		"SELECT uid, modseq FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2"
		" ORDER BY uid",
	[STMT_EXPUNGED_INSERT] =
		"INSERT INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
	/* data is NULL for content in a file: path says which */
	[STMT_BLOB_CONTENT] = "SELECT size, path, data FROM blobs WHERE id = ?1",
	[STMT_BLOB_REF] = "UPDATE blobs SET refcount = refcount + 1 WHERE id = ?1",
	[STMT_CACHE_GET] =
		"SELECT envelope, bodystructure, body, parts, subject, from_, to_, cc,"
		"  bcc, message_id, in_reply_to, refs, sent_date"
		" FROM msg_cache WHERE blob_id = ?1",
	[STMT_CACHE_INSERT] =
		"INSERT OR REPLACE INTO msg_cache(blob_id, envelope, bodystructure, body,"
		"  parts, subject, from_, to_, cc, bcc, message_id, in_reply_to, refs,"
		"  sent_date)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[STMT_USER_APOP_GET] =
		"SELECT u.id, u.apop_secret FROM users u"
		" JOIN domains d ON d.id = u.domain_id"
		" WHERE d.name = ?1 AND u.localpart = ?2",
	[STMT_USER_APOP_SET] =
		"UPDATE users SET apop_secret = ?3 WHERE localpart = ?2"
		" AND domain_id = (SELECT id FROM domains WHERE name = ?1)",
	[STMT_USER_SCRAM_GET] =
		"SELECT u.id, u.scram_sha256 FROM users u"
		" JOIN domains d ON d.id = u.domain_id"
		" WHERE d.name = ?1 AND u.localpart = ?2",
	[STMT_USER_SCRAM_SET] =
		"UPDATE users SET scram_sha256 = ?3 WHERE localpart = ?2"
		" AND domain_id = (SELECT id FROM domains WHERE name = ?1)",
};

static const struct {
	const char *name;
	enum store_special_use special_use;
} default_mailboxes[] = {
	{ "INBOX", STORE_SPECIAL_NONE },
	{ "Sent", STORE_SPECIAL_SENT },
	{ "Drafts", STORE_SPECIAL_DRAFTS },
	{ "Trash", STORE_SPECIAL_TRASH },
	{ "Junk", STORE_SPECIAL_JUNK },
};

/* The error_r contract: valid until the next store call on this thread. */
static _Thread_local char error_buf[512];

const char *store_errorf(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(error_buf, sizeof(error_buf), fmt, args);
	va_end(args);
	return error_buf;
}

const char *store_db_error(struct store_conn *conn, const char *what)
{
	return store_errorf("%s: %s", what, sqlite3_errmsg(conn->db));
}

/* ---- connections and statements ---- */

sqlite3_stmt *stmt_get(struct store_conn *conn, enum stmt_id id,
		       const char **error_r)
{
	sqlite3_stmt *stmt;
	bool cache = !conn->in_use[id];

	if (cache && conn->stmts[id] != NULL) {
		conn->in_use[id] = true;
		return conn->stmts[id];
	}
	if (sqlite3_prepare_v3(conn->db, stmt_sql[id], -1,
			       cache ? SQLITE_PREPARE_PERSISTENT : 0,
			       &stmt, NULL) != SQLITE_OK) {
		if (error_r != NULL)
			*error_r = store_db_error(conn, "preparing a statement");
		return NULL;
	}
	if (cache) {
		conn->stmts[id] = stmt;
		conn->in_use[id] = true;
	}
	return stmt;
}

void stmt_put(struct store_conn *conn, enum stmt_id id, sqlite3_stmt *stmt)
{
	if (stmt == NULL)
		return;
	if (stmt != conn->stmts[id]) {
		sqlite3_finalize(stmt);
		return;
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	conn->in_use[id] = false;
}

int stmt_exec(struct store_conn *conn, enum stmt_id id, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, id, error_r);
	int rc;

	if (stmt == NULL)
		return SQLITE_ERROR;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		rc = SQLITE_OK;
	else if (error_r != NULL)
		*error_r = store_db_error(conn, stmt_sql[id]);
	stmt_put(conn, id, stmt);
	return rc;
}

static void conn_close(struct store_conn *conn)
{
	for (int i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(conn->stmts[i]);
	sqlite3_close_v2(conn->db);
	free(conn);
}

static int conn_open(store_t *store, bool create, struct store_conn **conn_r,
		     const char **error_r)
{
	struct store_conn *conn;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		(create ? SQLITE_OPEN_CREATE : 0);

	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if (sqlite3_open_v2(store->db_path, &conn->db, flags, NULL) != SQLITE_OK) {
		*error_r = conn->db == NULL ? "out of memory" :
			store_errorf("%s: %s", store->db_path,
				     sqlite3_errmsg(conn->db));
		conn_close(conn);
		return -1;
	}
	/* The CLI writes while the server runs: wait for its lock instead of
	 * failing. synchronous=FULL makes every WAL commit an fsync, which is
	 * what lets SMTP say 250 after COMMIT. No PRAGMA mmap_size: measured,
	 * it made IMAP's mix of reads and commits ~15 % dearer per operation
	 * and POP3 no cheaper (docs/PERFORMANCE.md). */
	sqlite3_busy_timeout(conn->db, 5000);
	if (sqlite3_exec(conn->db, "PRAGMA foreign_keys = ON;"
			 "PRAGMA synchronous = FULL;", NULL, NULL, NULL) != SQLITE_OK) {
		*error_r = store_db_error(conn, "setting up the connection");
		conn_close(conn);
		return -1;
	}
	*conn_r = conn;
	return 0;
}

static int conn_register(store_t *store, struct store_conn *conn,
			 const char **error_r)
{
	if (pthread_setspecific(store->conn_key, conn) != 0) {
		*error_r = "cannot remember the thread's connection";
		return -1;
	}
	pthread_mutex_lock(&store->conns_lock);
	conn->next = store->conns;
	store->conns = conn;
	pthread_mutex_unlock(&store->conns_lock);
	return 0;
}

struct store_conn *store_conn_get(store_t *store, const char **error_r)
{
	struct store_conn *conn = pthread_getspecific(store->conn_key);

	if (conn != NULL)
		return conn;
	if (conn_open(store, false, &conn, error_r) < 0)
		return NULL;
	if (conn_register(store, conn, error_r) < 0) {
		conn_close(conn);
		return NULL;
	}
	return conn;
}

static int tx_begin(struct store_conn *conn, const char **error_r)
{
	return stmt_exec(conn, STMT_BEGIN_IMMEDIATE, error_r) == SQLITE_OK ? 0 : -1;
}

/* Commit when ret >= 0 (and return ret), otherwise roll back and keep the
 * caller's error. The rollback's own error is dropped on purpose: SQLite
 * may already have rolled back by itself after errors such as SQLITE_FULL. */
static int tx_finish(struct store_conn *conn, int ret, const char **error_r)
{
	if (ret >= 0 && stmt_exec(conn, STMT_COMMIT, error_r) == SQLITE_OK)
		return ret;
	(void)stmt_exec(conn, STMT_ROLLBACK, NULL);
	return -1;
}

/* For a failed sqlite3_step(); SQLite's message says what went wrong
 * ("database is locked", "disk I/O error", ...). */
static int step_error(struct store_conn *conn, const char **error_r)
{
	*error_r = store_db_error(conn, "database error");
	return -1;
}

/* ---- opening and closing ---- */

int store_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

static int mkdir_p(const char *path, const char **error_r)
{
	char *copy = strdup(path);
	int ret = 0;

	if (copy == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	for (char *p = copy + 1; ret == 0; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			*error_r = store_errorf("mkdir %s: %s", copy, strerror(errno));
			ret = -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(copy);
	return ret;
}

/* Spill files left in tmp/ belong to deliveries that never committed, but
 * only if no other process (a running server, while the CLI opens the store)
 * is writing them right now. Every open store holds a shared flock on
 * tmp/.lock; whoever can take it exclusively is alone and may clean. */
static int tmp_cleanup(store_t *store, const char **error_r)
{
	char path[4096];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/tmp/.lock", store->data_dir);
	store->tmp_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (store->tmp_lock_fd < 0) {
		*error_r = store_errorf("open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(store->tmp_lock_fd, LOCK_EX | LOCK_NB) == 0) {
		snprintf(path, sizeof(path), "%s/tmp", store->data_dir);
		dir = opendir(path);
		while (dir != NULL && (de = readdir(dir)) != NULL) {
			if (strncmp(de->d_name, "spill-", 6) == 0)
				(void)unlinkat(dirfd(dir), de->d_name, 0);
		}
		if (dir != NULL)
			closedir(dir);
	}
	if (flock(store->tmp_lock_fd, LOCK_SH) < 0) {
		*error_r = store_errorf("flock %s/tmp/.lock: %s", store->data_dir,
					strerror(errno));
		return -1;
	}
	return 0;
}

static int journal_mode_cb(void *ctx, int n_cols, char **values, char **names)
{
	(void)names;
	*(bool *)ctx = n_cols == 1 && values[0] != NULL &&
		strcmp(values[0], "wal") == 0;
	return 0;
}

/* Run sql, retrying while another process holds a lock. Processes racing
 * to create a fresh database can get SQLITE_BUSY at once, without the busy
 * handler (switching to WAL or upgrading a lock would risk a deadlock), and
 * a failed switch to WAL is reported as the unchanged mode, not an error. */
static int exec_setup(struct store_conn *conn, const char *sql, bool want_wal,
		      const char **error_r)
{
	bool is_wal = false;
	int rc = SQLITE_BUSY;

	for (int i = 0; i < SETUP_ATTEMPTS && rc == SQLITE_BUSY; i++) {
		if (i > 0)
			usleep(10 * 1000);
		rc = sqlite3_exec(conn->db, sql, want_wal ? journal_mode_cb : NULL,
				  &is_wal, NULL);
		if (rc == SQLITE_OK && want_wal && !is_wal) {
			rc = SQLITE_BUSY;
			*error_r = "cannot switch the database to WAL mode";
		} else if (rc != SQLITE_OK) {
			*error_r = store_db_error(conn, "creating the database");
		}
		/* A script that failed half-way leaves its transaction open. */
		if (!sqlite3_get_autocommit(conn->db))
			(void)sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc == SQLITE_OK ? 0 : -1;
}

/* One integer from a query, -1 when it gives no row or fails. */
static int64_t query_int(struct store_conn *conn, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t v = -1;

	if (sqlite3_prepare_v2(conn->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return v;
}

/* 2 -> 3 users.apop_secret (POP3 APOP, opt-in per user), 3 -> 4
 * users.scram_sha256 (SCRAM-SHA-256 secrets, set with the password). SQLite
 * has no ADD COLUMN IF NOT EXISTS: the column is looked for first. */
static int add_user_column(struct store_conn *conn, const char *column)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pragma_table_info('users') WHERE name = '%s'", column);
	if (query_int(conn, sql) != 0)
		return SQLITE_OK;
	snprintf(sql, sizeof(sql), "ALTER TABLE users ADD COLUMN %s TEXT", column);
	return sqlite3_exec(conn->db, sql, NULL, NULL, NULL);
}

/* 4 -> 5: indexes that bound what IMAP reads per command.
 * messages_flags covers SELECT's scan of uid and flags (no table row per
 * message); messages_deleted holds only the \Deleted messages, so that
 * EXPUNGE finds them without looking at the others. */
static const char schema_5_sql[] =
	"CREATE INDEX IF NOT EXISTS messages_flags ON messages(mailbox_id, uid, flags);"
	"CREATE INDEX IF NOT EXISTS messages_deleted ON messages(mailbox_id, uid, flags)"
	"  WHERE (flags & 8) <> 0;";

static int schema_step_apply(struct store_conn *conn, int from)
{
	switch (from) {
	case 2:
		return add_user_column(conn, "apop_secret");
	case 3:
		return add_user_column(conn, "scram_sha256");
	case 4:
		return sqlite3_exec(conn->db, schema_5_sql, NULL, NULL, NULL);
	default:
		return SQLITE_INTERNAL;
	}
}

/* One schema step, from -> from + 1, applied only when the version says
 * `from`. It is read again inside the write transaction (another process
 * may have migrated meanwhile), and every step is written so that running
 * it on a database that already has its change does no harm. */
static int schema_step(struct store_conn *conn, int from, const char **error_r)
{
	static const char version_sql[] =
		"SELECT value FROM meta WHERE key = 'schema_version'";
	char sql[160];
	int rc = SQLITE_BUSY;

	if (query_int(conn, version_sql) != from)
		return 0; /* migrated (or another version: schema_setup says so) */
	for (int i = 0; i < SETUP_ATTEMPTS && rc == SQLITE_BUSY; i++) {
		if (i > 0)
			usleep(10 * 1000);
		rc = sqlite3_exec(conn->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			*error_r = store_errorf("%s (migrating the database to schema %d)",
						sqlite3_errmsg(conn->db), from + 1);
			continue;
		}
		if (query_int(conn, version_sql) == from) {
			rc = schema_step_apply(conn, from);
			if (rc == SQLITE_OK) {
				snprintf(sql, sizeof(sql),
					 "UPDATE meta SET value = %d"
					 " WHERE key = 'schema_version' AND value = %d",
					 from + 1, from);
				rc = sqlite3_exec(conn->db, sql, NULL, NULL, NULL);
			}
		}
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(conn->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			*error_r = store_errorf("%s (migrating the database to schema %d)",
						sqlite3_errmsg(conn->db), from + 1);
		if (!sqlite3_get_autocommit(conn->db))
			(void)sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc == SQLITE_OK ? 0 : -1;
}

static int schema_setup(struct store_conn *conn, const char **error_r)
{
	sqlite3_stmt *stmt;
	int version = -1;

	/* WAL is a property of the database file: set once, kept forever. */
	if (exec_setup(conn, "PRAGMA journal_mode = WAL", true, error_r) < 0 ||
	    exec_setup(conn, schema_sql, false, error_r) < 0)
		return -1;
	for (int from = 2; from < SCHEMA_VERSION; from++) {
		if (schema_step(conn, from, error_r) < 0)
			return -1;
	}
	if ((stmt = stmt_get(conn, STMT_SCHEMA_VERSION, error_r)) == NULL)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		version = sqlite3_column_int(stmt, 0);
	stmt_put(conn, STMT_SCHEMA_VERSION, stmt);
	if (version != SCHEMA_VERSION) {
		*error_r = store_errorf("database schema version %d, expected %d",
					version, SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

/* Before SQLite initialises itself (sqlite3_config refuses afterwards):
 * - no memory statistics: they take a global mutex on every allocation,
 *   which all worker threads and the committer contend for;
 * - multi-thread mode: a connection is only ever used by the thread that
 *   opened it (store_conn_get), so its own mutexes are pure cost;
 * - statement journals in memory: the committer runs every job in its own
 *   savepoint, and SQLite journals each page a savepoint changes; past
 *   64 KiB (the default) that went to a temporary file, two pwrite calls
 *   per page, as many as the WAL itself got. Its size is bounded by one
 *   batch's pages. */
static void sqlite_configure(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, -1);
	(void)sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
}

int store_open(const char *data_dir, store_t **store_r, const char **error_r)
{
	static pthread_once_t configured = PTHREAD_ONCE_INIT;

	static const char *const subdirs[] = { "tmp", "blobs" };
	struct store_conn *conn;
	store_t *store;
	char path[4096];

	*store_r = NULL;
	/* Bounded so that every path built from it fits the buffers below. */
	if (data_dir == NULL || data_dir[0] == '\0' || strlen(data_dir) > DATA_DIR_MAX) {
		*error_r = "missing or too long data directory";
		return -1;
	}
	if (!sqlite3_threadsafe()) {
		*error_r = "SQLite was built without thread support";
		return -1;
	}
	pthread_once(&configured, sqlite_configure);
	store = calloc(1, sizeof(*store));
	if (store == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	store->tmp_lock_fd = -1;
	pthread_mutex_init(&store->conns_lock, NULL);
	pthread_mutex_init(&store->queue_lock, NULL);
	pthread_cond_init(&store->queue_cond, NULL);
	pthread_mutex_init(&store->watch_lock, NULL);
	store->wal_fd = -1;
	if (pthread_key_create(&store->conn_key, NULL) != 0) {
		*error_r = "cannot create a thread key";
		free(store);
		return -1;
	}
	store->data_dir = strdup(data_dir);
	if (store->data_dir == NULL ||
	    asprintf(&store->db_path, "%s/petrel.db", data_dir) < 0) {
		store->db_path = NULL;
		*error_r = "out of memory";
		goto fail;
	}
	if (mkdir_p(data_dir, error_r) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", data_dir, subdirs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*error_r = store_errorf("mkdir %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (tmp_cleanup(store, error_r) < 0)
		goto fail;
	if (conn_open(store, true, &conn, error_r) < 0)
		goto fail;
	if (conn_register(store, conn, error_r) < 0) {
		conn_close(conn);
		goto fail;
	}
	if (schema_setup(conn, error_r) < 0)
		goto fail;
	/* The first open created petrel.db, tmp/ and blobs/: make their
	 * names durable before anything stored there is acknowledged. */
	if (store_fsync_dir(data_dir) < 0) {
		*error_r = store_errorf("fsync %s: %s", data_dir, strerror(errno));
		goto fail;
	}
	*store_r = store;
	return 0;
fail:
	store_close(store);
	return -1;
}

void store_close(store_t *store)
{
	struct store_conn *conn, *next;

	if (store == NULL)
		return;
	store_stop_committer(store);
	store_watch_free_all(store);
	for (conn = store->conns; conn != NULL; conn = next) {
		next = conn->next;
		conn_close(conn);
	}
	pthread_key_delete(store->conn_key);
	pthread_mutex_destroy(&store->conns_lock);
	pthread_mutex_destroy(&store->queue_lock);
	pthread_cond_destroy(&store->queue_cond);
	pthread_mutex_destroy(&store->watch_lock);
	if (store->wal_fd >= 0)
		close(store->wal_fd);
	if (store->tmp_lock_fd >= 0)
		close(store->tmp_lock_fd);
	free(store->db_path);
	free(store->data_dir);
	free(store);
}

/* ---- names ---- */

struct address {
	char local[LOCALPART_MAX + 1];
	char domain[DOMAIN_MAX + 1];
};

/* Lower-case ASCII copy of a domain, refusing what cannot be one. Bytes
 * above 0x7f pass: internationalised domains stay possible. */
static int domain_normalize(const char *in, size_t len, char *out,
			    const char **error_r)
{
	if (len == 0 || len > DOMAIN_MAX) {
		*error_r = len == 0 ? "empty domain" : "domain too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= ' ' || c == 0x7f || c == '@') {
			*error_r = "invalid character in domain";
			return -1;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	out[len] = '\0';
	return 0;
}

/* Split at the last '@': a quoted local part may itself contain one. */
static int address_parse(const char *address, struct address *addr,
			 const char **error_r)
{
	const char *at = address == NULL ? NULL : strrchr(address, '@');
	size_t local_len;

	if (at == NULL) {
		*error_r = "address has no '@'";
		return -1;
	}
	local_len = (size_t)(at - address);
	if (local_len == 0 || local_len > LOCALPART_MAX) {
		*error_r = local_len == 0 ? "empty local part" : "local part too long";
		return -1;
	}
	for (size_t i = 0; i < local_len; i++) {
		unsigned char c = (unsigned char)address[i];

		if (c < ' ' || c == 0x7f) {
			*error_r = "invalid character in local part";
			return -1;
		}
	}
	memcpy(addr->local, address, local_len);
	addr->local[local_len] = '\0';
	return domain_normalize(at + 1, strlen(at + 1), addr->domain, error_r);
}

const char *store_mailbox_name(const char *name)
{
	return strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
}

/* ---- domains ---- */

int store_domain_add(store_t *store, const char *domain, const char **error_r)
{
	char name[DOMAIN_MAX + 1];
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if (domain_normalize(domain, strlen(domain), name, error_r) < 0 ||
	    (conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_DOMAIN_INSERT, error_r)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_DOMAIN_INSERT, stmt);
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		*error_r = store_errorf("domain %s already exists", name);
		return -1;
	}
	return step_error(conn, error_r);
}

static int domain_delete(struct store_conn *conn, const char *name,
			 const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t id = 0, users = 0;
	int rc;

	if ((stmt = stmt_get(conn, STMT_DOMAIN_USERS, error_r)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(stmt, 0);
		users = sqlite3_column_int64(stmt, 1);
	}
	stmt_put(conn, STMT_DOMAIN_USERS, stmt);
	if (rc == SQLITE_DONE) {
		*error_r = store_errorf("no such domain: %s", name);
		return -1;
	}
	if (rc != SQLITE_ROW)
		return step_error(conn, error_r);
	if (users > 0) {
		*error_r = store_errorf("domain %s still has %lld user%s", name,
					(long long)users, users == 1 ? "" : "s");
		return -1;
	}
	if ((stmt = stmt_get(conn, STMT_DOMAIN_DELETE, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_DOMAIN_DELETE, stmt);
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

int store_domain_del(store_t *store, const char *domain, const char **error_r)
{
	char name[DOMAIN_MAX + 1];
	struct store_conn *conn;

	if (domain_normalize(domain, strlen(domain), name, error_r) < 0 ||
	    (conn = store_conn_get(store, error_r)) == NULL ||
	    tx_begin(conn, error_r) < 0)
		return -1;
	return tx_finish(conn, domain_delete(conn, name, error_r), error_r);
}

static int domain_id(struct store_conn *conn, const char *name, int64_t *id_r,
		     const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_DOMAIN_ID, error_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(stmt, 0);
	stmt_put(conn, STMT_DOMAIN_ID, stmt);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

int store_domain_exists(store_t *store, const char *domain, const char **error_r)
{
	char name[DOMAIN_MAX + 1];
	struct store_conn *conn;
	int64_t id;

	/* Something that cannot be a domain is simply not one of ours. */
	if (domain_normalize(domain, strlen(domain), name, error_r) < 0)
		return 0;
	if ((conn = store_conn_get(store, error_r)) == NULL)
		return -1;
	return domain_id(conn, name, &id, error_r);
}

int store_domain_list(store_t *store, void (*cb)(void *ctx, const char *domain),
		      void *ctx, const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_DOMAIN_LIST, error_r)) == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		cb(ctx, (const char *)sqlite3_column_text(stmt, 0));
	stmt_put(conn, STMT_DOMAIN_LIST, stmt);
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

/* ---- users ---- */

/* 1 found, 0 not, -1 error. hash_r may be NULL. */
static int user_find(struct store_conn *conn, const struct address *addr,
		     int64_t *user_id_r, char **hash_r, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_USER_LOOKUP, error_r);
	int rc, ret;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, addr->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, addr->local, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		ret = 1;
		*user_id_r = sqlite3_column_int64(stmt, 0);
		const char *hash = (const char *)sqlite3_column_text(stmt, 1);

		if (hash_r != NULL && (hash == NULL || (*hash_r = strdup(hash)) == NULL)) {
			*error_r = "out of memory";
			ret = -1;
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
	}
	stmt_put(conn, STMT_USER_LOOKUP, stmt);
	return ret;
}

static int user_insert(struct store_conn *conn, const struct address *addr,
		       const char *password_hash, const char **error_r)
{
	sqlite3_stmt *stmt;
	int64_t dom_id, user_id;
	uint32_t uidvalidity;
	int rc;

	rc = domain_id(conn, addr->domain, &dom_id, error_r);
	if (rc <= 0) {
		if (rc == 0)
			*error_r = store_errorf("no such domain: %s", addr->domain);
		return -1;
	}
	if ((stmt = stmt_get(conn, STMT_USER_INSERT, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, dom_id);
	sqlite3_bind_text(stmt, 2, addr->local, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, (int64_t)time(NULL));
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_USER_INSERT, stmt);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		*error_r = store_errorf("user %s@%s already exists",
					addr->local, addr->domain);
		return -1;
	}
	if (rc != SQLITE_DONE)
		return step_error(conn, error_r);
	user_id = sqlite3_last_insert_rowid(conn->db);

	/* From the store-wide counter: a user deleted and added again, or a
	 * default mailbox deleted and created again, never reuses one. */
	if (store_uidvalidity_next(conn, &uidvalidity, error_r) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		if ((stmt = stmt_get(conn, STMT_MAILBOX_INSERT, error_r)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, user_id);
		sqlite3_bind_text(stmt, 2, default_mailboxes[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 3, uidvalidity);
		sqlite3_bind_int(stmt, 4, (int)default_mailboxes[i].special_use);
		rc = sqlite3_step(stmt);
		stmt_put(conn, STMT_MAILBOX_INSERT, stmt);
		if (rc != SQLITE_DONE)
			return step_error(conn, error_r);
		if ((stmt = stmt_get(conn, STMT_SUBSCRIBE, error_r)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, user_id);
		sqlite3_bind_text(stmt, 2, default_mailboxes[i].name, -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		stmt_put(conn, STMT_SUBSCRIBE, stmt);
		if (rc != SQLITE_DONE)
			return step_error(conn, error_r);
	}
	return 0;
}

int store_uidvalidity_next(struct store_conn *conn, uint32_t *uidvalidity_r,
			   const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_UIDVALIDITY_NEXT, error_r);
	int64_t value = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, (int64_t)time(NULL));
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	stmt_put(conn, STMT_UIDVALIDITY_NEXT, stmt);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? (*error_r = "no uidvalidity counter", -1) :
			step_error(conn, error_r);
	/* nz-number (RFC 3501): 1 .. 2^32-1. Reached in 2106 at the earliest. */
	if (value <= 0 || value > (int64_t)UINT32_MAX) {
		*error_r = "UIDVALIDITY values exhausted";
		return -1;
	}
	*uidvalidity_r = (uint32_t)value;
	return 0;
}

int store_user_add(store_t *store, const char *address, const char *password_hash,
		   const char **error_r)
{
	struct store_conn *conn;
	struct address addr;

	if (address_parse(address, &addr, error_r) < 0)
		return -1;
	if (password_hash == NULL) {
		*error_r = "no password hash";
		return -1;
	}
	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    tx_begin(conn, error_r) < 0)
		return -1;
	return tx_finish(conn, user_insert(conn, &addr, password_hash, error_r),
			 error_r);
}

int store_path_list_add(struct store_path_list *list, const char *path)
{
	char **grown;

	if (list->count == list->cap) {
		list->cap = list->cap == 0 ? 8 : list->cap * 2;
		grown = realloc(list->paths, list->cap * sizeof(*grown));
		if (grown == NULL)
			return -1;
		list->paths = grown;
	}
	if ((list->paths[list->count] = strdup(path)) == NULL)
		return -1;
	list->count++;
	return 0;
}

void store_path_list_finish(store_t *store, struct store_path_list *list,
			    bool unlink_them)
{
	char path[4096];

	for (size_t i = 0; i < list->count; i++) {
		if (unlink_them) {
			snprintf(path, sizeof(path), "%s/%s", store->data_dir,
				 list->paths[i]);
			(void)unlink(path);
		}
		free(list->paths[i]);
	}
	free(list->paths);
	memset(list, 0, sizeof(*list));
}

struct blob_ref {
	int64_t blob_id, refs;
};

/* The file is unlinked only once the deletion committed. */
int store_blob_unref(struct store_conn *conn, int64_t blob_id, int64_t refs,
		     struct store_path_list *freed, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_BLOB_UNREF, error_r);
	bool unused = false;
	int rc, ret = 0;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	sqlite3_bind_int64(stmt, 2, refs);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && sqlite3_column_int64(stmt, 0) <= 0) {
		unused = true;
		if (sqlite3_column_type(stmt, 1) != SQLITE_NULL &&
		    store_path_list_add(freed, (const char *)sqlite3_column_text(stmt, 1)) < 0) {
			*error_r = "out of memory";
			ret = -1;
		}
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ret = step_error(conn, error_r);
	}
	stmt_put(conn, STMT_BLOB_UNREF, stmt);
	if (ret < 0 || !unused)
		return ret;

	if ((stmt = stmt_get(conn, STMT_BLOB_DELETE, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	rc = sqlite3_step(stmt);
	stmt_put(conn, STMT_BLOB_DELETE, stmt);
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

static int user_delete(struct store_conn *conn, const struct address *addr,
		       struct store_path_list *freed, const char **error_r)
{
	struct blob_ref *refs = NULL, *grown;
	size_t n_refs = 0, cap = 0;
	sqlite3_stmt *stmt;
	int64_t user_id;
	int rc, ret;

	ret = user_find(conn, addr, &user_id, NULL, error_r);
	if (ret <= 0) {
		if (ret == 0)
			*error_r = store_errorf("no such user: %s@%s",
						addr->local, addr->domain);
		return -1;
	}
	/* Count the user's references per blob before the cascade removes
	 * the message rows that hold them. */
	if ((stmt = stmt_get(conn, STMT_USER_BLOBS, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (n_refs == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((grown = realloc(refs, cap * sizeof(*refs))) == NULL)
				break;
			refs = grown;
		}
		refs[n_refs].blob_id = sqlite3_column_int64(stmt, 0);
		refs[n_refs].refs = sqlite3_column_int64(stmt, 1);
		n_refs++;
	}
	stmt_put(conn, STMT_USER_BLOBS, stmt);
	if (rc == SQLITE_ROW) {
		*error_r = "out of memory";
		ret = -1;
	} else if (rc != SQLITE_DONE) {
		ret = step_error(conn, error_r);
	} else if ((stmt = stmt_get(conn, STMT_USER_DELETE, error_r)) == NULL) {
		ret = -1;
	} else {
		sqlite3_bind_int64(stmt, 1, user_id);
		rc = sqlite3_step(stmt);
		stmt_put(conn, STMT_USER_DELETE, stmt);
		ret = rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
	}
	for (size_t i = 0; ret == 0 && i < n_refs; i++)
		ret = store_blob_unref(conn, refs[i].blob_id, refs[i].refs, freed,
				       error_r);
	free(refs);
	return ret;
}

int store_user_del(store_t *store, const char *address, const char **error_r)
{
	struct store_path_list freed = { 0 };
	struct store_conn *conn;
	struct address addr;
	int ret;

	if (address_parse(address, &addr, error_r) < 0 ||
	    (conn = store_conn_get(store, error_r)) == NULL ||
	    tx_begin(conn, error_r) < 0)
		return -1;
	ret = tx_finish(conn, user_delete(conn, &addr, &freed, error_r), error_r);
	/* After the commit only: a crash before it must find the files. */
	store_path_list_finish(store, &freed, ret == 0);
	return ret;
}

/* Set one column of a user's row through statement id (bound: domain,
 * local part, value; a NULL value binds NULL). 0, or -1 with no such user. */
static int user_column_set(store_t *store, const struct address *addr, enum stmt_id id,
			   const char *value, const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, id, error_r)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, addr->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, addr->local, -1, SQLITE_STATIC);
	if (value != NULL)
		sqlite3_bind_text(stmt, 3, value, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 3);
	rc = sqlite3_step(stmt);
	stmt_put(conn, id, stmt);
	if (rc != SQLITE_DONE)
		return step_error(conn, error_r);
	if (sqlite3_changes(conn->db) == 0) {
		*error_r = store_errorf("no such user: %s@%s", addr->local, addr->domain);
		return -1;
	}
	return 0;
}

int store_user_set_password(store_t *store, const char *address,
			    const char *password_hash, const char **error_r)
{
	struct address addr;

	if (address_parse(address, &addr, error_r) < 0)
		return -1;
	if (password_hash == NULL) {
		*error_r = "no password hash";
		return -1;
	}
	return user_column_set(store, &addr, STMT_USER_SET_PASSWORD, password_hash, error_r);
}

/* A user by address: its id and, when hash_r is not NULL, its password
 * hash. 1 found, 0 no such user, -1 error. */
static int user_lookup(store_t *store, const char *address, int64_t *user_id_r,
		       char **hash_r, const char **error_r)
{
	struct store_conn *conn;
	struct address addr;
	int64_t user_id;
	int ret;

	if (hash_r != NULL)
		*hash_r = NULL;
	/* An address that cannot exist is a user that does not exist. */
	if (address_parse(address, &addr, error_r) < 0)
		return 0;
	if ((conn = store_conn_get(store, error_r)) == NULL)
		return -1;
	ret = user_find(conn, &addr, &user_id, hash_r, error_r);
	if (ret == 1 && user_id_r != NULL)
		*user_id_r = user_id;
	return ret;
}

int store_user_password_hash(store_t *store, const char *address, int64_t *user_id_r,
			     char **hash_r, const char **error_r)
{
	return user_lookup(store, address, user_id_r, hash_r, error_r);
}

int store_user_lookup(store_t *store, const char *address, int64_t *user_id_r,
		      const char **error_r)
{
	return user_lookup(store, address, user_id_r, NULL, error_r);
}

/* Set (or with NULL clear) one of the users' nullable secret columns. */
static int user_secret_set(store_t *store, const char *address, enum stmt_id id,
			   const char *secret, const char *what, const char **error_r)
{
	struct address addr;

	if (address_parse(address, &addr, error_r) < 0)
		return -1;
	if (secret != NULL && secret[0] == '\0') {
		*error_r = store_errorf("the %s is empty", what);
		return -1;
	}
	return user_column_set(store, &addr, id, secret, error_r);
}

/* 1 user found (*secret_r malloc'd, or NULL when the column is NULL),
 * 0 no such user, -1 error. */
static int user_secret_get(store_t *store, const char *address, enum stmt_id id,
			   int64_t *user_id_r, char **secret_r, const char **error_r)
{
	struct store_conn *conn;
	struct address addr;
	sqlite3_stmt *stmt;
	int rc, ret;

	*secret_r = NULL;
	if (address_parse(address, &addr, error_r) < 0)
		return 0;
	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, id, error_r)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, addr.domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, addr.local, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		ret = 1;
		if (user_id_r != NULL)
			*user_id_r = sqlite3_column_int64(stmt, 0);
		if (sqlite3_column_type(stmt, 1) != SQLITE_NULL &&
		    (*secret_r = strdup((const char *)sqlite3_column_text(stmt, 1))) == NULL) {
			*error_r = "out of memory";
			ret = -1;
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
	}
	stmt_put(conn, id, stmt);
	return ret;
}

int store_user_set_apop(store_t *store, const char *address, const char *secret,
			const char **error_r)
{
	return user_secret_set(store, address, STMT_USER_APOP_SET, secret, "APOP secret", error_r);
}

int store_user_apop_secret(store_t *store, const char *address, int64_t *user_id_r,
			   char **secret_r, const char **error_r)
{
	return user_secret_get(store, address, STMT_USER_APOP_GET, user_id_r, secret_r, error_r);
}

int store_user_set_scram(store_t *store, const char *address, const char *scram,
			 const char **error_r)
{
	return user_secret_set(store, address, STMT_USER_SCRAM_SET, scram, "SCRAM secrets",
			       error_r);
}

int store_user_scram(store_t *store, const char *address, int64_t *user_id_r, char **scram_r,
		     const char **error_r)
{
	int64_t id;
	int r = user_secret_get(store, address, STMT_USER_SCRAM_GET, &id, scram_r, error_r);
	if (r == 1 && *scram_r == NULL)
		return 0; /* a user without SCRAM secrets */
	if (r == 1 && user_id_r != NULL)
		*user_id_r = id;
	return r;
}

int store_user_list(store_t *store, const char *domain,
		    void (*cb)(void *ctx, const char *address), void *ctx,
		    const char **error_r)
{
	char name[DOMAIN_MAX + 1], address[LOCALPART_MAX + DOMAIN_MAX + 2];
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if (domain != NULL &&
	    domain_normalize(domain, strlen(domain), name, error_r) < 0)
		return -1;
	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_USER_LIST, error_r)) == NULL)
		return -1;
	if (domain != NULL)
		sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		snprintf(address, sizeof(address), "%s@%s",
			 (const char *)sqlite3_column_text(stmt, 0),
			 (const char *)sqlite3_column_text(stmt, 1));
		cb(ctx, address);
	}
	stmt_put(conn, STMT_USER_LIST, stmt);
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

/* ---- mailboxes and messages ---- */

int store_mailbox_list(store_t *store, int64_t user_id,
		       void (*cb)(void *ctx, const struct store_mailbox_info *mb),
		       void *ctx, const char **error_r)
{
	struct store_mailbox_info info;
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_MAILBOX_LIST, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		info.id = sqlite3_column_int64(stmt, 0);
		info.name = (const char *)sqlite3_column_text(stmt, 1);
		info.uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 2);
		info.uidnext = (uint32_t)sqlite3_column_int64(stmt, 3);
		info.highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 4);
		info.special_use = (enum store_special_use)sqlite3_column_int(stmt, 5);
		info.messages = (uint32_t)sqlite3_column_int64(stmt, 6);
		cb(ctx, &info);
	}
	stmt_put(conn, STMT_MAILBOX_LIST, stmt);
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

/* 1 found (*id_r set), 0 no such mailbox, -1 error. */
static int mailbox_id(struct store_conn *conn, int64_t user_id, const char *name,
		      int64_t *id_r, const char **error_r)
{
	sqlite3_stmt *stmt = stmt_get(conn, STMT_MAILBOX_ID, error_r);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, store_mailbox_name(name), -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*id_r = sqlite3_column_int64(stmt, 0);
	stmt_put(conn, STMT_MAILBOX_ID, stmt);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
}

int store_message_list(store_t *store, int64_t user_id, const char *mailbox,
		       void (*cb)(void *ctx, const struct store_message_info *msg),
		       void *ctx, const char **error_r)
{
	struct store_message_info info;
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	int64_t mb_id = 0;
	int rc;

	if ((conn = store_conn_get(store, error_r)) == NULL)
		return -1;
	rc = mailbox_id(conn, user_id, mailbox, &mb_id, error_r);
	if (rc <= 0)
		return rc;
	if ((stmt = stmt_get(conn, STMT_MESSAGE_LIST, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, mb_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		info.uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		info.size = (uint64_t)sqlite3_column_int64(stmt, 1);
		info.internaldate = (time_t)sqlite3_column_int64(stmt, 2);
		info.subject = (const char *)sqlite3_column_text(stmt, 3);
		info.modseq = (uint64_t)sqlite3_column_int64(stmt, 4);
		info.flags = (uint32_t)sqlite3_column_int64(stmt, 5);
		cb(ctx, &info);
	}
	stmt_put(conn, STMT_MESSAGE_LIST, stmt);
	return rc == SQLITE_DONE ? 1 : step_error(conn, error_r);
}

static int write_out(FILE *out, const void *data, size_t len, const char **error_r)
{
	if (len > 0 && fwrite(data, 1, len, out) != len) {
		*error_r = store_errorf("writing the message: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int stream_inline(struct store_conn *conn, int64_t blob_id, int size,
			 unsigned char *chunk, FILE *out, const char **error_r)
{
	sqlite3_blob *blob;
	int ret = 0, n;

	if (sqlite3_blob_open(conn->db, "main", "blobs", "data", blob_id, 0,
			      &blob) != SQLITE_OK) {
		*error_r = store_db_error(conn, "opening the message");
		return -1;
	}
	for (int off = 0; ret == 0 && off < size; off += n) {
		n = size - off < (int)STREAM_CHUNK ? size - off : (int)STREAM_CHUNK;
		if (sqlite3_blob_read(blob, chunk, n, off) != SQLITE_OK) {
			*error_r = store_db_error(conn, "reading the message");
			ret = -1;
		} else {
			ret = write_out(out, chunk, (size_t)n, error_r);
		}
	}
	sqlite3_blob_close(blob);
	return ret;
}

static int stream_file(int fd, uint64_t size, unsigned char *chunk, FILE *out,
		       const char **error_r)
{
	uint64_t total = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, STREAM_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = store_errorf("reading the message: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		if (write_out(out, chunk, (size_t)n, error_r) < 0)
			return -1;
		total += (uint64_t)n;
	}
	if (total != size) {
		*error_r = "stored message file has the wrong size";
		return -1;
	}
	return 0;
}

int store_message_write(store_t *store, int64_t user_id, const char *mailbox,
			uint32_t uid, FILE *out, const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	unsigned char *chunk;
	char path[4096];
	int64_t blob_id = 0;
	uint64_t size = 0;
	int rc, fd = -1, ret = 1;

	if ((conn = store_conn_get(store, error_r)) == NULL)
		return -1;
	if ((chunk = malloc(STREAM_CHUNK)) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if ((stmt = stmt_get(conn, STMT_MESSAGE_BLOB, error_r)) == NULL) {
		free(chunk);
		return -1;
	}
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, store_mailbox_name(mailbox), -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, uid);
	/* While the statement has its row, its read snapshot stays open: the
	 * blob or file it names cannot be deleted under us. A file opened here
	 * stays readable after that even if the message is then removed. */
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		blob_id = sqlite3_column_int64(stmt, 0);
		size = (uint64_t)sqlite3_column_int64(stmt, 1);
		if (sqlite3_column_type(stmt, 2) == SQLITE_NULL) {
			if (stream_inline(conn, blob_id, (int)size, chunk, out,
					  error_r) < 0)
				ret = -1;
		} else {
			snprintf(path, sizeof(path), "%s/%s", store->data_dir,
				 (const char *)sqlite3_column_text(stmt, 2));
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				*error_r = store_errorf("open %s: %s", path,
							strerror(errno));
				ret = -1;
			}
		}
	} else {
		ret = rc == SQLITE_DONE ? 0 : step_error(conn, error_r);
	}
	stmt_put(conn, STMT_MESSAGE_BLOB, stmt);
	if (fd >= 0) {
		if (stream_file(fd, size, chunk, out, error_r) < 0)
			ret = -1;
		close(fd);
	}
	free(chunk);
	return ret;
}
