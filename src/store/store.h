/*
 * store.h - the only interface protocols and the CLI have to Petrel's store.
 *
 * Nothing here names the backend. The default backend (store_sqlite.c) keeps
 * metadata in SQLite (WAL) under DATA_DIR/petrel.db and message content either
 * inline in the database (small messages) or in files under DATA_DIR/blobs.
 *
 * Conventions: functions return 0 on success and -1 on failure with a static
 * or store-owned message in *error_r (valid until the next store call on the
 * same thread). Lookups that can legitimately find nothing return 1 for
 * "found", 0 for "not found" and -1 for an error.
 *
 * Threads: a store_t may be used from any number of threads at once; each
 * thread gets its own read connection internally. All writes that sessions
 * make while serving go through the committer (store_delivery_commit), which
 * batches many sessions' work into one transaction and one fsync.
 */
#ifndef PETREL_STORE_H
#define PETREL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

typedef struct store store_t;

/* Special-use attributes (RFC 6154) of the mailboxes every user gets. */
enum store_special_use {
	STORE_SPECIAL_NONE = 0,
	STORE_SPECIAL_SENT,
	STORE_SPECIAL_DRAFTS,
	STORE_SPECIAL_TRASH,
	STORE_SPECIAL_JUNK,
};

/* Open (creating if needed) the store under data_dir. Creates the directory
 * layout and the schema; safe to call from several processes at once. */
int store_open(const char *data_dir, store_t **store_r, const char **error_r);

/* Start the committer thread (group commit). Only `petrel serve` needs it;
 * CLI commands write synchronously. */
int store_start_committer(store_t *store, const char **error_r);

/* fsync = optimized (before store_start_committer): the committer commits
 * batches of flag changes and expunges without syncing the WAL (SQLite's
 * synchronous = NORMAL), like Dovecot's mail_fsync = optimized. They reach
 * the disk with the next synced commit (any new mail) or checkpoint, or by
 * the kernel's writeback; a power loss before that may undo them, never new
 * mail or anything else (a delivery, APPEND, COPY, mailbox change). Off by
 * default. */
void store_set_fsync_optimized(store_t *store, int optimized);

/* Stop the committer after it has finished every submitted delivery, then
 * free everything. NULL is allowed. */
void store_close(store_t *store);

/* ---- domains ---- */
/* 0 ok, -1 error (already exists: error says so). Names are stored lower case. */
int store_domain_add(store_t *store, const char *domain, const char **error_r);
/* Deleting a domain that still has users fails with an error naming the count. */
int store_domain_del(store_t *store, const char *domain, const char **error_r);
/* 1 local domain, 0 not, -1 error. Case-insensitive. */
int store_domain_exists(store_t *store, const char *domain, const char **error_r);
/* Calls cb for every domain in name order. */
int store_domain_list(store_t *store, void (*cb)(void *ctx, const char *domain),
		      void *ctx, const char **error_r);

/* ---- users ---- */
/* Address is "local@domain"; the domain must exist. The domain part is matched
 * case-insensitively, the local part exactly as given except ASCII case
 * (like most MTAs: local parts are case-insensitive for Petrel's own users).
 * password_hash is a crypt(3) string (auth/password.h makes one).
 * Creates INBOX, Sent, Drafts, Trash, Junk with their special-use attributes. */
int store_user_add(store_t *store, const char *address, const char *password_hash,
		   const char **error_r);
/* Removes the user, their mailboxes and messages (blobs freed when unreferenced). */
int store_user_del(store_t *store, const char *address, const char **error_r);
int store_user_set_password(store_t *store, const char *address,
			    const char *password_hash, const char **error_r);
/* 1 found (user_id_r set), 0 no such user, -1 error. */
int store_user_lookup(store_t *store, const char *address, int64_t *user_id_r,
		      const char **error_r);
/* 1 found: *hash_r is a malloc'd copy the caller frees. 0 no such user. */
int store_user_password_hash(store_t *store, const char *address, int64_t *user_id_r,
			     char **hash_r, const char **error_r);
/* APOP (POP3, RFC 1939 7) needs a secret the server can read: it is kept
 * as given, apart from the password, and only for users who opt in. secret
 * NULL removes it; an empty secret is refused. -1 also for no such user. */
int store_user_set_apop(store_t *store, const char *address, const char *secret,
			const char **error_r);
/* 1 user found: *secret_r is a malloc'd copy the caller wipes and frees, or
 * NULL when the user has no APOP secret; user_id_r (may be NULL) is set.
 * 0 no such user (*secret_r NULL). */
int store_user_apop_secret(store_t *store, const char *address, int64_t *user_id_r,
			   char **secret_r, const char **error_r);
/* SCRAM-SHA-256 secrets (auth/scram.h makes them: "iter:salt_b64:storedkey_hex:
 * serverkey_hex"); NULL removes them. store_user_set_password removes them
 * too, so set them again after it. -1 also for no such user. */
int store_user_set_scram(store_t *store, const char *address, const char *scram,
			 const char **error_r);
/* 1 user found with secrets: *scram_r is a malloc'd copy the caller frees,
 * user_id_r (may be NULL) is set. 0 no such user or no secrets (*scram_r
 * NULL), -1 error. */
int store_user_scram(store_t *store, const char *address, int64_t *user_id_r, char **scram_r,
		     const char **error_r);
/* Calls cb for every user (address order); domain NULL means all domains. */
int store_user_list(store_t *store, const char *domain,
		    void (*cb)(void *ctx, const char *address), void *ctx,
		    const char **error_r);

/* ---- mailboxes and messages (read side) ---- */
struct store_mailbox_info {
	int64_t id;
	const char *name;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	enum store_special_use special_use;
};
/* Calls cb for every mailbox of the user, INBOX first then name order. */
int store_mailbox_list(store_t *store, int64_t user_id,
		       void (*cb)(void *ctx, const struct store_mailbox_info *mb),
		       void *ctx, const char **error_r);

struct store_message_info {
	uint32_t uid;
	uint64_t size;         /* octets of the stored message */
	time_t internaldate;
	const char *subject;   /* decoded UTF-8, "" when none */
	uint64_t modseq;
	uint32_t flags;        /* STORE_FLAG_* */
};
#define STORE_FLAG_SEEN     0x01u
#define STORE_FLAG_ANSWERED 0x02u
#define STORE_FLAG_FLAGGED  0x04u
#define STORE_FLAG_DELETED  0x08u
#define STORE_FLAG_DRAFT    0x10u

/* Calls cb for every message of the user's mailbox in UID order.
 * Returns 1 when the mailbox exists, 0 when it does not, -1 on error.
 * Mailbox names: "INBOX" matches case-insensitively, others exactly. */
int store_message_list(store_t *store, int64_t user_id, const char *mailbox,
		       void (*cb)(void *ctx, const struct store_message_info *msg),
		       void *ctx, const char **error_r);

/* Stream the raw stored message to out in bounded chunks (never the whole
 * message in one allocation). 1 written, 0 no such mailbox/uid, -1 error. */
int store_message_write(store_t *store, int64_t user_id, const char *mailbox,
			uint32_t uid, FILE *out, const char **error_r);

/* ---- delivery (write side, group-committed) ---- */

/* A message being received. Content is appended with store_delivery_write as
 * it arrives (small messages stay in memory, large ones spill to a temporary
 * file in DATA_DIR/tmp). A delivery is owned by one thread at a time. */
typedef struct store_delivery store_delivery_t;

struct store_delivery_result {
	int status;           /* 0 durable, -1 failed (nothing was stored) */
	const char *error;    /* when status is -1 */
	uint32_t n_rcpts;
	const uint32_t *uids; /* uid assigned per recipient, in add_rcpt order */
};

/* Called exactly once, on the committer thread, after the batch holding this
 * delivery is durable (data and metadata fsync'd) or has failed. The callback
 * must not call back into the store; it should hand the result to its own
 * thread. The delivery is freed after the callback returns. */
typedef void store_delivery_cb(void *ctx, const struct store_delivery_result *res);

store_delivery_t *store_delivery_new(store_t *store);
/* Append content. -1 on I/O error (e.g. disk full) with *error_r set. */
int store_delivery_write(store_delivery_t *d, const void *data, size_t len,
			 const char **error_r);
uint64_t store_delivery_size(const store_delivery_t *d);
/* What mime/ extracted from the message head, kept with the message so that
 * listings never re-read the content. subject: decoded UTF-8 (copied). */
void store_delivery_set_subject(store_delivery_t *d, const char *subject);
/* Deliver to this user's INBOX (a user may be added twice: stored once). */
void store_delivery_add_rcpt(store_delivery_t *d, int64_t user_id);
/* Hand the delivery to the committer; cb runs later, on the committer thread.
 * Without a committer (CLI use) it commits synchronously and calls cb before
 * returning. After this call the caller must not touch d. */
void store_delivery_commit(store_delivery_t *d, time_t internaldate,
			   store_delivery_cb *cb, void *ctx);
/* Drop a delivery that will not be committed. NULL is allowed. */
void store_delivery_abort(store_delivery_t *d);

#endif
