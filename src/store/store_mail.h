/*
 * store_mail.h - the store API for mail access protocols (IMAP, POP3):
 * mailboxes, message metadata, cached parse results, content by offset,
 * group-committed write operations, and change notification.
 *
 * Same conventions as store.h (0 / -1 with *error_r; lookups 1 / 0 / -1).
 * Nothing here names the backend.
 */
#ifndef PETREL_STORE_MAIL_H
#define PETREL_STORE_MAIL_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

/* ---- mailboxes ---- */

/* The longest mailbox name the store keeps, in octets (fits name[] below). */
#define STORE_MAILBOX_NAME_MAX 511

struct store_mailbox_status {
	int64_t id;
	char name[512];
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;         /* messages without \Seen */
	uint32_t deleted;        /* messages with \Deleted */
	uint64_t size;           /* sum of message sizes (STATUS SIZE, RFC 8438) */
	enum store_special_use special_use;
	int subscribed;
};

/* name: "INBOX" matches case-insensitively, other names exactly (the
 * hierarchy separator is "/"). 1 found, 0 not, -1 error. */
int store_mailbox_status(store_t *store, int64_t user_id, const char *name,
			 struct store_mailbox_status *st, const char **error_r);

/* The mailbox row only: as store_mailbox_status, but messages, unseen,
 * deleted and size are left 0. One indexed lookup whatever the mailbox
 * holds: for commands that need the id, UIDVALIDITY, UIDNEXT or
 * HIGHESTMODSEQ (SELECT, APPEND, COPY, noticing a deleted mailbox).
 * 1 found, 0 not, -1 error. */
int store_mailbox_find(store_t *store, int64_t user_id, const char *name,
		       struct store_mailbox_status *st, const char **error_r);

/* Every mailbox of the user with its status; INBOX first, then name order
 * (byte order). Also lists subscribed names that no longer exist when
 * include_subscribed_missing is set (LSUB / LIST (SUBSCRIBED) need them):
 * those have id 0. */
int store_mailbox_list_status(store_t *store, int64_t user_id, int include_subscribed_missing,
			      void (*cb)(void *ctx, const struct store_mailbox_status *st),
			      void *ctx, const char **error_r);

/* ---- reads in one snapshot ---- */

/* Until the matching store_read_end, the reads this thread makes see one
 * state of the store, and share the cost of opening it (a command that
 * reads several times: each read on its own would look for changes
 * anew). Pairs nest. Keep it short: never across a return to the event
 * loop (it holds back the recycling of the store's log), and make no
 * synchronous write (store_op_commit, store_delivery_commit without a
 * committer) in between. -1 on error (nothing to end then). */
int store_read_begin(store_t *store, const char **error_r);
void store_read_end(store_t *store);

/* ---- messages: metadata ---- */

struct store_msg {
	uint32_t uid;
	uint32_t flags;          /* STORE_FLAG_* */
	const char *keywords;    /* space-separated, sorted, "" when none; valid during cb */
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
	int64_t blob_id;
};

/* Messages of a mailbox with uid >= min_uid, in UID order. 0 also when the
 * mailbox does not exist (use store_mailbox_status to tell). This and the
 * reads below cost in proportion to the messages they look at: bound them
 * by what the command names. */
int store_msg_scan(store_t *store, int64_t mailbox_id, uint32_t min_uid,
		   void (*cb)(void *ctx, const struct store_msg *m), void *ctx, const char **error_r);

/* Messages with min_uid <= uid <= max_uid, in UID order. */
int store_msg_scan_range(store_t *store, int64_t mailbox_id, uint32_t min_uid, uint32_t max_uid,
			 void (*cb)(void *ctx, const struct store_msg *m), void *ctx,
			 const char **error_r);

/* The messages with the given uids (ascending, no duplicates), in UID
 * order; uids that do not exist are skipped. A few uids far apart are
 * looked up one by one, a dense set in one scan from its first to its
 * last uid. */
int store_msg_get_uids(store_t *store, int64_t mailbox_id, const uint32_t *uids, size_t n,
		       void (*cb)(void *ctx, const struct store_msg *m), void *ctx,
		       const char **error_r);

/* uid and flags (STORE_FLAG_*) of every message, in UID order: what
 * SELECT needs, read from an index without the messages' rows. */
int store_msg_scan_flags(store_t *store, int64_t mailbox_id,
			 void (*cb)(void *ctx, uint32_t uid, uint32_t flags), void *ctx,
			 const char **error_r);

/* uids of the messages with \Deleted and min_uid <= uid <= max_uid, in UID
 * order (EXPUNGE); the cost follows their number, not the mailbox's. */
int store_msg_scan_deleted(store_t *store, int64_t mailbox_id, uint32_t min_uid,
			   uint32_t max_uid, void (*cb)(void *ctx, uint32_t uid), void *ctx,
			   const char **error_r);

/* What changed since a modseq: msg_cb for every message whose modseq is
 * greater (new or changed flags), then expunged_cb for every uid expunged
 * with a greater modseq (from the expunge log), both in UID order. */
int store_msg_changes(store_t *store, int64_t mailbox_id, uint64_t since_modseq,
		      void (*msg_cb)(void *ctx, const struct store_msg *m),
		      void (*expunged_cb)(void *ctx, uint32_t uid, uint64_t modseq), void *ctx,
		      const char **error_r);

/* ---- messages: parse cache and content ---- */

/* What mime/ computed at delivery (see mime/mime_parse.h), stored with the
 * content (one row per blob). Strings are malloc'd (NULL where none was
 * stored); free with store_msg_cache_free (NULL-safe, zeroes *c).
 * 1 found, 0 no cache row, -1 error. */
struct store_msg_cache {
	char *envelope, *bodystructure, *body, *parts;
	char *subject, *from, *to, *cc, *bcc, *message_id, *in_reply_to, *references;
	int64_t sent_date;
};
int store_msg_cache_get(store_t *store, int64_t blob_id, struct store_msg_cache *out,
			const char **error_r);
void store_msg_cache_free(struct store_msg_cache *c);

/* Read content octets [offset, offset+len) of a blob into buf; *got_r is
 * less than len only at the end of the content (0 at or past it). A blob
 * that no longer exists (its last message expunged) is an error. */
int store_blob_read(store_t *store, int64_t blob_id, uint64_t offset, void *buf, size_t len,
		    size_t *got_r, const char **error_r);

/* Whole content from its first octet to its last, cheaply (POP3 RETR and
 * TOP). A reader serves one message after another and keeps its buffer
 * between them: one per session. Use it on one thread at a time. */
typedef struct store_blob_reader store_blob_reader_t;
/* NULL when out of memory. */
store_blob_reader_t *store_blob_reader_new(store_t *store);
/* Close the current content, then free (NULL is allowed). */
void store_blob_reader_free(store_blob_reader_t *r);
/* Start on blob_id (the current content, if any, is closed first), with
 * its size in *size_r. This is the only read transaction: inline content is
 * copied into the reader, a content file is opened and stays readable even
 * if its message is expunged meanwhile (a blob read ahead is served as
 * below). -1 when the blob no longer exists
 * (its last message expunged) or cannot be opened. */
int store_blob_reader_open(store_blob_reader_t *r, int64_t blob_id, uint64_t *size_r,
			   const char **error_r);
/* As store_blob_reader_open, reading ahead for a caller that retrieves in
 * order: in the same read transaction, the inline content of the blobs
 * next[0..n_next) is copied into the reader too, in that order, while
 * their octets stay within max (a missing blob, a content file or one that
 * does not fit ends the run). Opening a blob that was read ahead reads
 * nothing from the store and returns 1: its content is served as it was
 * read, even if its message has been expunged since, until
 * store_blob_reader_forget or an open that has to read the store (which
 * replaces what was read ahead). 0 when read from the store, -1 as
 * store_blob_reader_open. */
int store_blob_reader_open_ahead(store_blob_reader_t *r, int64_t blob_id, const int64_t *next,
				 size_t n_next, size_t max, uint64_t *size_r,
				 const char **error_r);
/* Drop what was read ahead (the current content stays readable). NULL is
 * allowed. */
void store_blob_reader_forget(store_blob_reader_t *r);
/* The next octets, at most max (> 0): *data_r points into the reader and
 * stays valid until the next call on it; *len_r is 0 at the end. -1 on a
 * read error (a file shorter than recorded). */
int store_blob_reader_next(store_blob_reader_t *r, size_t max, const void **data_r,
			   size_t *len_r, const char **error_r);
/* Done with the current content (closes its file); the reader stays
 * usable. NULL is allowed. */
void store_blob_reader_close(store_blob_reader_t *r);

/* Attach the parse cache to a delivery before committing it (stored in the
 * same transaction as the message). Strings are copied. */
void store_delivery_set_cache(store_delivery_t *d, const struct store_msg_cache *cache);

/* Deliver into a given mailbox with flags (IMAP APPEND) instead of a
 * user's INBOX; combinable with store_delivery_add_rcpt. The uid assigned
 * appears in the result's uids[] in call order with the recipients. */
void store_delivery_add_mailbox(store_delivery_t *d, int64_t mailbox_id, uint32_t flags,
				const char *keywords);

/* Read back a delivery's content (to parse it before committing): either
 * in memory (*data_r set, *fd_r = -1) or in a spill file (*fd_r, read it
 * with pread; do not close). *len_r is the size either way. Valid until the
 * next store_delivery_write or commit. -1 when the delivery has failed. */
int store_delivery_content(store_delivery_t *d, const char **data_r, size_t *len_r, int *fd_r);

/* ---- several deliveries stored together (IMAP MULTIAPPEND) ---- */

/* A group of deliveries committed in one savepoint of a group-committed
 * batch: every message is stored, or none is (RFC 3502 6.3.11). Each
 * delivery is built as usual (content, cache, targets) and then handed to
 * the group, which owns it from then on. A single message keeps using
 * store_delivery_commit; a group costs one savepoint like a delivery.
 *
 * The group bounds its memory: once the content it holds in memory passes
 * STORE_GROUP_MEM_MAX, further deliveries are moved to spill files (and
 * every spill file is closed when its delivery is added), so a group of
 * many messages holds neither their content nor a descriptor each. */
#define STORE_GROUP_MEM_MAX (1024u * 1024u)

typedef struct store_delivery_group store_delivery_group_t;

/* NULL when out of memory. */
store_delivery_group_t *store_delivery_group_new(store_t *store);
/* Take over d (complete: no more writes), to be stored with internaldate.
 * -1 with *error_r when d has failed (a write error), has no target, or
 * memory or a file ran out: d is freed and the whole group has failed (its
 * commit reports the failure; aborting it is the usual step). */
int store_delivery_group_add(store_delivery_group_t *g, store_delivery_t *d,
			     time_t internaldate, const char **error_r);
/* Deliveries added so far (failed ones included). */
size_t store_delivery_group_count(const store_delivery_group_t *g);
/* Hand the group to the committer. cb runs once, like a delivery's (see
 * store_delivery_cb): status 0 when every delivery is durable, else -1 and
 * nothing of the group was stored. uids lists every delivery's targets'
 * uids, deliveries in add order, targets in their call order (n_rcpts is
 * their total): for deliveries with one mailbox target each, one uid per
 * message, ascending and consecutive within a mailbox. An empty group
 * fails. The caller must not touch g afterwards. */
void store_delivery_group_commit(store_delivery_group_t *g, store_delivery_cb *cb, void *ctx);
/* Drop a group and its deliveries. NULL is allowed. */
void store_delivery_group_abort(store_delivery_group_t *g);

/* ---- write operations (group-committed) ---- */

enum store_flags_mode { STORE_FLAGS_SET, STORE_FLAGS_ADD, STORE_FLAGS_DEL };

enum store_op_error {
	STORE_OK = 0,
	STORE_ERR_INTERNAL,
	STORE_ERR_NONEXISTENT,   /* mailbox missing ([NONEXISTENT], [TRYCREATE] for targets) */
	STORE_ERR_EXISTS,        /* [ALREADYEXISTS] */
	STORE_ERR_INBOX,         /* not allowed on INBOX (DELETE INBOX) */
	STORE_ERR_INVALID,       /* bad name etc. */
};

typedef struct store_op store_op_t;

/* An operation is a list of steps run in order, in one savepoint of a
 * group-committed batch: all of them happen or none. Every argument is
 * copied when the step is added. NULL only when out of memory; the step
 * functions ignore a NULL op and store_op_commit(NULL, ...) reports the
 * failure through cb at once. A failure while adding a step (memory) is
 * reported by store_op_commit. */
store_op_t *store_op_new(store_t *store);
/* Drop an operation that will not be committed. NULL is allowed. */
void store_op_abort(store_op_t *op);

/* Change flags of the given uids (absent uids are ignored). Every changed
 * message gets the step's new modseq; a message whose flags and keywords
 * come out the same is not changed (no new modseq, not in changed[]).
 * keywords: space-separated, NULL or "" for none; compared ASCII
 * case-insensitively, stored sorted and unique (the first spelling kept).
 * unchangedsince (CONDSTORE, RFC 7162 3.2): when non-zero, messages whose
 * modseq is greater are not changed and are reported in result->modified.
 * (UNCHANGEDSINCE 0 always fails for every existing message: the IMAP layer
 * answers it without calling the store.) */
void store_op_flags(store_op_t *op, int64_t mailbox_id, const uint32_t *uids, size_t n,
		    enum store_flags_mode mode, uint32_t flags, const char *keywords,
		    uint64_t unchangedsince);
/* Remove the given uids (absent uids ignored); each is logged in the
 * expunge log with the new modseq; blobs lose a reference. */
void store_op_expunge(store_op_t *op, int64_t mailbox_id, const uint32_t *uids, size_t n);
/* Copy (or move: copy + expunge from the source) the given uids to dst.
 * New uids in dst are assigned in source UID order. */
/* Flags, keywords and internal date go with the copy; the content is shared
 * (stored once). Copying into the source mailbox itself is allowed. A
 * missing source or destination fails with STORE_ERR_NONEXISTENT. */
void store_op_copy(store_op_t *op, int64_t src_mailbox_id, const uint32_t *uids, size_t n,
		   int64_t dst_mailbox_id, int move);
/* Names: not empty, at most STORE_MAILBOX_NAME_MAX octets, no "*", "%" or
 * control characters, no leading, trailing or doubled "/" (else
 * STORE_ERR_INVALID). The parent levels need not exist. The new mailbox
 * gets a UIDVALIDITY above any the store gave before (uidnext 1,
 * highestmodseq 1) and is not subscribed. Existing (INBOX in any case
 * too): STORE_ERR_EXISTS. */
void store_op_mailbox_create(store_op_t *op, int64_t user_id, const char *name,
			     enum store_special_use special_use);
/* Deleting a mailbox removes its messages; names below it stay, and so do
 * subscriptions. INBOX: STORE_ERR_INBOX; missing: STORE_ERR_NONEXISTENT. */
void store_op_mailbox_delete(store_op_t *op, int64_t user_id, const char *name);
/* Renames name and every "name/..." below it, keeping their UIDVALIDITY;
 * their subscriptions follow them. Missing source: NONEXISTENT; an
 * existing target (or one below it that would be overwritten): EXISTS;
 * a target below the source ("a" -> "a/b"): INVALID. Renaming INBOX moves
 * its messages into a new mailbox (new UIDVALIDITY, uids from 1, flags
 * kept) and leaves INBOX empty with its uidnext unchanged (RFC 3501
 * 6.3.5); names below INBOX and subscriptions stay. */
void store_op_mailbox_rename(store_op_t *op, int64_t user_id, const char *from, const char *to);
/* Subscriptions are names, independent of mailboxes (RFC 3501 6.3.6):
 * subscribing to a missing name is allowed (the name must be valid as for
 * create), unsubscribing from an unsubscribed name is not an error. */
void store_op_subscribe(store_op_t *op, int64_t user_id, const char *name, int subscribed);

struct store_op_result {
	int status;                  /* 0 ok, -1 failed (nothing changed) */
	enum store_op_error code;
	const char *error;
	uint64_t highestmodseq;      /* of the (last) mailbox changed: flags and
					expunge that mailbox's, copy the destination's,
					move the source's, create 1 */
	/* flags: the messages changed, with their new flags/keywords/modseq */
	const struct store_msg *changed;
	size_t n_changed;
	const uint32_t *modified;    /* UNCHANGEDSINCE failures */
	size_t n_modified;
	/* copy/move: COPYUID data (RFC 4315); create: the new UIDVALIDITY */
	uint32_t dst_uidvalidity;
	const uint32_t *src_uids, *dst_uids;
	size_t n_copied;
	/* expunge/move: the uids removed from the source */
	const uint32_t *expunged;
	size_t n_expunged;
};

/* Called once on the committer thread when the batch is durable (or
 * failed); must hand the result to its own thread (copying what it needs:
 * the result is freed after the callback returns). Without a committer
 * (CLI, tests) it runs synchronously before store_op_commit returns. */
typedef void store_op_cb(void *ctx, const struct store_op_result *res);
void store_op_commit(store_op_t *op, store_op_cb *cb, void *ctx);

/* ---- change notification ---- */

/* cb(ctx) runs on the committer thread after every commit that changed the
 * mailbox (deliveries, flags, expunges, copies into it, its deletion or
 * renaming), from any session, after the operations' own callbacks. It
 * must only hand off (e.g. post to the session's worker). After
 * store_unwatch returns, cb is not running and will not be called again.
 * store_unwatch waits for a running notification, so it must not be called
 * from a watch callback nor while holding a lock that a callback takes.
 * store_watch returns NULL when out of memory; store_unwatch accepts NULL.
 * Watchers left at store_close are freed by it. */
typedef struct store_watch store_watch_t;
store_watch_t *store_watch(store_t *store, int64_t mailbox_id, void (*cb)(void *ctx), void *ctx);
void store_unwatch(store_watch_t *w);

#endif
