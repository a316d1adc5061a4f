/*
 * imap_session.h - one IMAP session: state machine, command table, output
 * helpers and the selected-mailbox view. Private to src/imap/.
 */
#ifndef PETREL_IMAP_SESSION_H
#define PETREL_IMAP_SESSION_H

#include "imap/imap.h"
#include "imap/imap_parser.h"
#include "imap/imap_seqset.h"
#include "store/store_mail.h"

#include <stddef.h>
#include <stdint.h>

enum imap_state { IMAP_NOTAUTH, IMAP_AUTH, IMAP_SELECTED, IMAP_LOGOUT };

/* The selected mailbox as this session sees it: its own map of sequence
 * numbers to UIDs (seq n is uids[n-1]), changed only where RFC 3501 7.4.1
 * allows. */
struct imap_mailbox {
	int64_t id;
	char name[512];
	int readonly;
	uint32_t uidvalidity;
	uint32_t uidnext;          /* as announced to this session */
	uint64_t modseq_seen;      /* changes up to here are reflected */
	uint32_t *uids;
	size_t n, cap;
	uint32_t recent_lo, recent_hi; /* \Recent here: recent_lo <= uid < recent_hi */
	uint64_t own_modseq;       /* changes this session made and reported itself */
	uint32_t *pending_expunge; /* learned, not yet announced */
	size_t n_pending, cap_pending;
	uint64_t pending_min_modseq; /* lowest expunge modseq among them */
	store_watch_t *watch;
	net_handle_t *watch_ref;   /* the watcher's reference to the session's handle */
};

struct append_state;

struct imap_cmd {
	char tag[128];
	const char *name;          /* upper case, e.g. "FETCH" (after "UID ") */
	const struct imap_arg *args;
	size_t n_args;
	int uid;                   /* "UID FETCH" etc. */
};

struct imap_session {
	net_conn_t *conn;
	net_worker_t *worker;
	struct imap_server *srv;
	net_handle_t *handle;      /* for callbacks from other threads (net_handle_post) */
	uint64_t id;
	enum imap_state state;
	imap_parser_t *parser;
	unsigned bad_count;
	unsigned auth_failures;
	int64_t user_id;
	char user[320];
	/* ENABLE'd / negotiated */
	int rev2, utf8_accept, condstore, qresync;
	struct imap_mailbox *sel;
	/* a command waiting for another thread (auth, committer): input paused */
	int busy;
	struct imap_cmd cur;       /* copy of tag/name for async completion */
	/* IDLE */
	int idling;
	char idle_tag[128];
	/* AUTHENTICATE continuation */
	int sasl_step;             /* 0 none; mechanism-specific steps */
	char sasl_mech[16];
	char sasl_user[320];
	struct sasl_server *scram; /* SCRAM-SHA-256 exchange (auth/sasl.h) */
	/* APPEND streaming (imap_cmd_message.c) */
	store_delivery_t *append;  /* the message being streamed; NULL: skipped */
	int append_streaming;
	struct append_state *append_state; /* the command so far */
	uint64_t append_left;
	int append_nul;            /* the literal being streamed has a NUL */
	int reject_no;             /* the pending parser error is a NO, not a BAD */
	/* SEARCHRES saved result (RFC 5182) */
	uint32_t *saved;
	size_t n_saved;
	/* continuation of a long response (FETCH), run when output drains */
	void (*cont)(struct imap_session *s);
	void *cont_ctx;
	int notify_pending;        /* a watcher fired: sync at the next chance */
	char *sel_rename_to;       /* RENAME of the selected mailbox: its new name */
	int stopping;              /* server shutdown: close after the current command */
};

typedef void imap_cmd_fn(struct imap_session *s, struct imap_cmd *cmd);

/* ---- output ---- */
void imap_write(struct imap_session *s, const void *data, size_t len);
void imap_printf(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "* " + text + CRLF */
void imap_untagged(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* tag + " OK|NO|BAD " + text + CRLF; BAD counts towards max_errors. */
void imap_tagged(struct imap_session *s, const char *tag, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* An IMAP string: quoted when safe, else a literal. */
void imap_write_string(struct imap_session *s, const char *str, size_t len);
/* NIL for NULL. */
void imap_write_nstring(struct imap_session *s, const char *str);
/* A mailbox name (astring) from the store's UTF-8: as it is in a session
 * where imap_utf8_names() holds, else in modified UTF-7 (RFC 3501 5.1.3). */
void imap_write_mailbox(struct imap_session *s, const char *name);
/* "(\Seen \Deleted kw1)" */
void imap_write_flags(struct imap_session *s, uint32_t flags, const char *keywords, int recent);

/* ---- arguments ---- */
/* astring / string argument as a NUL-terminated string, or NULL. */
const char *imap_arg_string(const struct imap_arg *a);
const char *imap_arg_atom(const struct imap_arg *a);
/* Parse a flag list or single flag: 0 ok, -1 bad (\Recent and unknown
 * system flags are refused). keywords_r: malloc'd space-separated. */
int imap_parse_flags(const struct imap_arg *a, uint32_t *flags_r, char **keywords_r);
/* Resolve a sequence set argument against the view into a sorted uid
 * array (malloc'd, may be empty). uid: the set is of UIDs. 0 ok, -1 bad. */
int imap_seqset_uids(struct imap_session *s, const char *set, int uid, uint32_t **uids_r,
		     size_t *n_r);
/* Whether mailbox names travel as UTF-8 both ways: the client enabled
 * UTF8=ACCEPT (RFC 6855 3) or IMAP4rev2 (RFC 9051 5.1). Otherwise it is an
 * IMAP4rev1 client and names travel in modified UTF-7 (RFC 3501 5.1.3). */
int imap_utf8_names(const struct imap_session *s);
/* A mailbox name, LIST reference or LIST pattern argument as the store's
 * UTF-8. In a UTF-8 session: copied. Otherwise decoded from modified UTF-7
 * (strictly, imap_mutf7.h), except that an argument with 8-bit octets is
 * taken as UTF-8 if it is well-formed (IMAP4rev1 has no 8-bit names, so
 * it cannot be modified UTF-7; clients that send raw UTF-8 mean UTF-8).
 * Returns a malloc'd string, or NULL with the reason in *error_r. */
char *imap_mailbox_name_in(const struct imap_session *s, const char *arg, const char **error_r);
/* The tagged NO for a name imap_mailbox_name_in() refused. */
void imap_reply_bad_name(struct imap_session *s, const char *tag, const char *error);
/* Whether [str, str+len) is well-formed UTF-8 (RFC 3629). */
int imap_utf8_valid(const char *str, size_t len);
/* Whether every message number of a sequence set exists in a view of n
 * messages (RFC 3501 9: numbers beyond EXISTS are a client error, BAD). */
int imap_seqset_in_range(const char *set, uint32_t n);
/* Sequence number of uid in the view, 0 if absent. */
uint32_t imap_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid);

/* ---- command completion ---- */
/* Commands that handed work to another thread call imap_cmd_async before
 * returning and imap_cmd_done when the reply has been written. */
void imap_cmd_async(struct imap_session *s, struct imap_cmd *cmd);
void imap_cmd_done(struct imap_session *s);

/* ---- mailbox view ---- */
/* Select: load the view, watch for changes. 1 ok, 0 no such mailbox, -1 error.
 * *st gets the mailbox row with messages (EXISTS) and unseen (the sequence
 * number of the first unseen message, 0 for none); deleted and size are 0. */
int imap_mailbox_open(struct imap_session *s, const char *name, int readonly,
		      struct store_mailbox_status *st);
void imap_mailbox_close(struct imap_session *s);
/* The session's own write to the selected mailbox has committed with
 * modseq (0 when it changed nothing), leaving the mailbox at
 * highestmodseq. When that is the first modseq after what the view has
 * seen, nothing else changed meanwhile: the expunged uids are queued as a
 * sync would queue them (changed flags are the command's to report) and
 * 0 is returned. -1: the view must ask the store (set notify_pending). */
int imap_mailbox_own_change(struct imap_session *s, uint64_t modseq, uint64_t highestmodseq,
			    const uint32_t *expunged, size_t n_expunged);
/* \Recent for this session (RFC 3501 2.3.2: only the first session to see
 * a message gets it). */
int imap_is_recent(const struct imap_mailbox *mb, uint32_t uid);
/* STATUS RECENT: messages from this uid on are recent for the next session. */
uint32_t imap_recent_first_unclaimed(int64_t mailbox_id);
/* Bring the view up to date and tell the client: EXISTS/RECENT always,
 * FETCH flag updates always, EXPUNGE only when allow_expunge (RFC 3501
 * 7.4.1: never during FETCH, STORE, SEARCH). */
void imap_mailbox_sync(struct imap_session *s, int allow_expunge);
/* The HIGHESTMODSEQ this session may announce for its view: every change
 * up to it has been reported (an expunge held back by 7.4.1 keeps it below
 * that expunge's modseq, RFC 7162 3.2). */
uint64_t imap_mailbox_highestmodseq(const struct imap_mailbox *mb);
/* A CONDSTORE enabling command (RFC 7162 3.1): from now on untagged FETCH
 * responses carry MODSEQ (and UID); the first one with a mailbox selected
 * announces its HIGHESTMODSEQ. */
void imap_condstore_enable(struct imap_session *s);
/* "* VANISHED [(EARLIER) ]uid-set" (RFC 7162 3.2.10); nothing when n is 0. */
void imap_write_vanished(struct imap_session *s, int earlier, const uint32_t *uids, size_t n);

/* ---- commands ---- */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout, imap_cmd_id, imap_cmd_enable,
	imap_cmd_starttls, imap_cmd_login, imap_cmd_authenticate, imap_cmd_select,
	imap_cmd_examine, imap_cmd_create, imap_cmd_delete, imap_cmd_rename, imap_cmd_subscribe,
	imap_cmd_unsubscribe, imap_cmd_list, imap_cmd_lsub, imap_cmd_namespace, imap_cmd_status,
	imap_cmd_append, imap_cmd_check, imap_cmd_close, imap_cmd_unselect, imap_cmd_expunge,
	imap_cmd_search, imap_cmd_sort, imap_cmd_thread, imap_cmd_fetch, imap_cmd_store, imap_cmd_copy,
	imap_cmd_move, imap_cmd_idle, imap_cmd_compress;

/* AUTHENTICATE / APPEND / IDLE continuation input (imap_cmd_auth.c etc.). */
void imap_sasl_input(struct imap_session *s, const char *line, size_t len);
void imap_idle_input(struct imap_session *s, const char *line, size_t len);
/* An APPEND literal of size octets was announced ({n}: sync): 0 when it
 * streams (the "+" is sent for {n}), -1 when it is refused (the parser is in
 * its error state; s->reject_no says whether the reply is NO or BAD). */
int imap_append_literal(struct imap_session *s, uint64_t size, int sync);
/* Called when a streamed APPEND literal is complete. */
void imap_append_literal_done(struct imap_session *s);
/* Drop an APPEND in progress: streamed messages, nothing stored. */
void imap_append_abort(struct imap_session *s);
/* The capability list for the current state (no tag, no "CAPABILITY"). */
void imap_write_capabilities(struct imap_session *s);

void imap_session_close(struct imap_session *s, const char *bye);

#endif
