/*
 * pop3_session.h - one POP3 session: state machine, command table, replies,
 * the maildrop snapshot. Private to src/pop3/.
 */
#ifndef PETREL_POP3_SESSION_H
#define PETREL_POP3_SESSION_H

#include "pop3/pop3.h"
#include "pop3/pop3_parse.h"

#include <stddef.h>
#include <stdint.h>

/* Limits. RFC 2449 4 allows commands of 255 octets; some clients send a
 * little more (long user names), so commands get twice that. A SASL
 * response is not a command and may be longer (RFC 5034 4). */
#define POP3_LINE_MAX      512
#define POP3_SASL_LINE_MAX 8192
#define POP3_USER_MAX      320   /* local@domain */
#define POP3_TIMESTAMP_MAX 320   /* <pid.counter.time@hostname> */
/* Failed logins: the reply waits this long times the session's failures;
 * the session ends after POP3_AUTH_FAILURES_MAX. */
#define POP3_FAIL_DELAY_MS     1000
#define POP3_AUTH_FAILURES_MAX 3
/* RFC 1939 3: the autologout timer is at least 10 minutes. */
#define POP3_AUTOLOGOUT_MIN    600
/* Content is read from the store in chunks of at most this. */
#define POP3_READ_CHUNK        (64 * 1024)
/* RETR/TOP read ahead at most this many messages at once (and at most
 * [pop3] read_ahead octets). */
#define POP3_AHEAD_MAX         32

enum pop3_state {
	POP3_AUTHORIZATION,
	POP3_TRANSACTION,
	POP3_UPDATE,        /* QUIT: the deletions are being made durable */
	POP3_CLOSING,       /* last reply written, the connection is closing */
};

/* One message of the maildrop as it stood at login (RFC 1939 5: numbers
 * and sizes do not change for the session). */
struct pop3_msg {
	uint32_t uid;
	int deleted;        /* marked by DELE */
	uint64_t size;      /* octets as stored: what RETR sends before stuffing */
	int64_t blob_id;
};

struct pop3_maildrop {
	int64_t mailbox_id;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	uint32_t n;
	uint32_t n_deleted;
	uint64_t size;      /* of the messages not marked deleted */
};

struct pop3_body;

struct pop3_session {
	net_conn_t *conn;
	net_worker_t *worker;
	struct pop3_server *srv;
	net_handle_t *handle;      /* for callbacks from other threads (net_handle_post) */
	uint64_t id;
	enum pop3_state state;
	struct pop3_parser parser;
	char timestamp[POP3_TIMESTAMP_MAX]; /* the APOP timestamp of the greeting */
	unsigned errors;           /* consecutive -ERR for bad input */
	unsigned auth_failures;
	char user[POP3_USER_MAX + 1]; /* from USER, until PASS */
	int64_t user_id;
	char address[POP3_USER_MAX + 1];
	int locked;                /* holds the maildrop lock of user_id */
	struct pop3_maildrop md;
	/* waiting for another thread or a delay (auth, failed-login delay,
	 * QUIT's commit): input is paused */
	int busy;
	/* SASL (AUTH) continuation */
	int sasl_step;             /* 0 none; 1 first response; 2 LOGIN password */
	int sasl_login;            /* LOGIN (else PLAIN) */
	char sasl_user[POP3_USER_MAX + 1];
	/* SCRAM-SHA-256 exchange (auth/sasl.h); then sasl_step 1 is a client
	 * message, 2 the empty response after the server-final message */
	struct sasl_server *scram;
	/* a long multi-line response in progress, continued when output drains */
	void (*cont)(struct pop3_session *s);
	struct pop3_body *body;    /* RETR/TOP */
	uint32_t list_next;        /* LIST/UIDL: next message index */
	int list_uidl;
	/* counters for the log */
	unsigned retrieved;
	int stopping;              /* server shutdown: close after the current reply */
};

struct pop3_cmd_args {
	const struct pop3_command *cmd;
	char **args;
	size_t n_args;
	const char *rest;          /* the line after the keyword and its space */
};

typedef void pop3_cmd_fn(struct pop3_session *s, const struct pop3_cmd_args *a);

/* ---- state and replies (pop3_session.c) ---- */
/* Every state change goes through here (logged at debug level). */
void pop3_set_state(struct pop3_session *s, enum pop3_state state);
void pop3_write(struct pop3_session *s, const void *data, size_t len);
/* "+OK " text CRLF; ends a run of errors. */
void pop3_ok(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "-ERR " text CRLF for bad input (unknown command, bad arguments, wrong
 * state, no such message...): counts towards [limits] max_errors
 * consecutive errors, after which the session closes. */
void pop3_err(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "-ERR " text CRLF that is not the client's fault (failed login, lock,
 * temporary failure): not counted. */
void pop3_fail(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Close after what was written. */
void pop3_session_close(struct pop3_session *s);
/* Whether USER/PASS and AUTH PLAIN/LOGIN are allowed now: over TLS, from
 * loopback, or when [pop3] allow_plaintext_auth = yes. */
int pop3_plaintext_ok(struct pop3_session *s);

/* ---- asynchronous work ---- */
/* A command waiting for another thread or a timer calls pop3_async before
 * returning and pop3_done once its reply is written. */
void pop3_async(struct pop3_session *s);
void pop3_done(struct pop3_session *s);
/* A multi-line response finished (or was dropped): clear cont and go on
 * with pipelined commands, or close when stopping. */
void pop3_cont_done(struct pop3_session *s);

/* ---- maildrop (pop3_maildrop.c) ---- */
/* Authenticated as user_id/address: take the maildrop lock, load the
 * snapshot, enter TRANSACTION and reply; or reply -ERR [IN-USE] /
 * [SYS/TEMP] and stay in AUTHORIZATION. */
void pop3_login(struct pop3_session *s, int64_t user_id, const char *address);
void pop3_maildrop_free(struct pop3_maildrop *md);
/* The in-process lock table: one POP3 session per maildrop. 1 taken, 0 in
 * use. Any thread. */
int pop3_lock_acquire(int64_t user_id);
void pop3_lock_release(int64_t user_id);
/* Message number argument: 0 with the index, or -1 after replying -ERR
 * (not a number, no such message, deleted). */
int pop3_msg_arg(struct pop3_session *s, const char *arg, uint32_t *index_r);

/* ---- commands ---- */
pop3_cmd_fn pop3_cmd_user, pop3_cmd_pass, pop3_cmd_apop, pop3_cmd_auth, pop3_cmd_stls,
	pop3_cmd_capa, pop3_cmd_quit, pop3_cmd_stat, pop3_cmd_list, pop3_cmd_uidl,
	pop3_cmd_retr, pop3_cmd_top, pop3_cmd_dele, pop3_cmd_rset, pop3_cmd_noop;

/* AUTH continuation lines (pop3_cmd_auth.c). */
void pop3_sasl_input(struct pop3_session *s, const char *line, size_t len);
/* Drop a RETR/TOP in progress (pop3_cmd_retr.c). */
void pop3_body_free(struct pop3_session *s);

#endif
