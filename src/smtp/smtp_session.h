/*
 * smtp_session.h - one SMTP session: a state machine driven by a command
 * table. Private to src/smtp/.
 */
#ifndef PETREL_SMTP_SESSION_H
#define PETREL_SMTP_SESSION_H

#include "smtp/smtp.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "store/store.h"

#include <stdint.h>

enum smtp_state {
	SMTP_INIT,      /* greeted, no EHLO/HELO yet */
	SMTP_READY,     /* EHLO/HELO done, no transaction */
	SMTP_MAIL,      /* MAIL accepted */
	SMTP_RCPT,      /* at least one RCPT accepted */
	SMTP_DATA,      /* reading DATA content */
	SMTP_BDAT,      /* reading a BDAT chunk */
	SMTP_COMMIT,    /* waiting for the store to make the message durable */
	SMTP_CLOSING,   /* last reply sent, closing */
};

struct smtp_session {
	net_conn_t *conn;
	net_worker_t *worker;
	struct smtp_server *srv;
	uint64_t id;
	enum smtp_state state;
	char helo[256];
	int esmtp;
	unsigned errors;
	unsigned transactions;
	int gone;            /* connection closed while a commit was pending */
	int stopping;        /* server shutdown: close after the transaction */

	/* transaction */
	struct smtp_path from;
	int body_8bit;
	int smtputf8;
	int64_t *rcpt_ids;
	unsigned n_rcpts, rcpt_cap;
	unsigned rcpt_attempts;
	char first_rcpt[SMTP_ADDRESS_MAX];
	store_delivery_t *delivery;
	struct smtp_data_parser dp;
	uint64_t data_size;   /* octets of content received (after unstuffing) */
	int too_big;
	int io_error;
	int bdat_started;     /* a BDAT transaction is under way */
	int bdat_failed;      /* chunks are read and dropped until LAST */
	int bdat_last;
	uint64_t bdat_left;
	enum smtp_state bdat_prev_state;
	char *scratch;        /* decode buffer */
};

/* Command handlers: args points after the verb and its space ("" if none). */
typedef void smtp_cmd_fn(struct smtp_session *s, const char *args);

smtp_cmd_fn smtp_cmd_ehlo, smtp_cmd_helo, smtp_cmd_mail, smtp_cmd_rcpt, smtp_cmd_data,
	smtp_cmd_bdat, smtp_cmd_rset, smtp_cmd_noop, smtp_cmd_quit, smtp_cmd_help, smtp_cmd_vrfy,
	smtp_cmd_expn, smtp_cmd_starttls;

/* Every state change goes through here (logged at debug level). */
void smtp_set_state(struct smtp_session *s, enum smtp_state state);
/* Write one reply line; a 5xx reply for a client error counts towards
 * max_errors and, past it, the session ends with 421. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Forget the transaction (RSET, EHLO, after a message). */
void smtp_reset_transaction(struct smtp_session *s);
/* Content of DATA / BDAT: body decoding and completion (smtp_cmd_data.c). */
void smtp_data_input(struct smtp_session *s);
void smtp_bdat_input(struct smtp_session *s);
void smtp_session_free(struct smtp_session *s);

#endif
