/* DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030): content into the store,
 * 250 only once the message is durable. */
#include "smtp/smtp_session.h"

#include "core/config.h"
#include "core/log.h"
#include "mime/mime_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCRATCH_SIZE (64 * 1024)

struct commit_job {
	struct smtp_session *s;
	int status;
	char error[128];
	uint64_t size;
};

static int write_content(struct smtp_session *s, const char *data, size_t len)
{
	if (s->delivery == NULL)
		return 0;
	const char *err;
	if (store_delivery_write(s->delivery, data, len, &err) < 0) {
		log_error("smtp", s->id, "event=store-error error=\"%s\"", err);
		s->io_error = 1;
		store_delivery_abort(s->delivery);
		s->delivery = NULL;
		return -1;
	}
	return 0;
}

/* Return-Path (RFC 5321 4.4: added at final delivery) and Received trace. */
static void write_trace(struct smtp_session *s)
{
	const struct config *cfg = s->srv->config;
	char from[SMTP_ADDRESS_MAX], tls[128], date[64], hdr[4096];
	smtp_path_address(&s->from, from, sizeof(from));
	net_conn_tls_describe(s->conn, tls, sizeof(tls));
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848 / RFC 6531 4.3 "with" protocol types */
	char with[16];
	snprintf(with, sizeof(with), "%s%s", !s->esmtp ? "SMTP" : s->smtputf8 ? "UTF8SMTP" : "ESMTP",
		 net_conn_is_tls(s->conn) ? "S" : "");
	char tlsinfo[160] = "";
	if (tls[0] != '\0')
		snprintf(tlsinfo, sizeof(tlsinfo), " (%s)", tls);
	char forclause[SMTP_ADDRESS_MAX + 20] = "";
	if (s->n_rcpts == 1)
		snprintf(forclause, sizeof(forclause), "\r\n\tfor <%s>", s->first_rcpt);
	int n = snprintf(hdr, sizeof(hdr),
			 "Return-Path: <%s>\r\n"
			 "Received: from %s ([%s])\r\n"
			 "\tby %s (Petrel) with %s%s id %llx.%u%s;\r\n"
			 "\t%s\r\n",
			 from, s->helo, net_conn_peer_ip(s->conn), cfg->hostname, with, tlsinfo,
			 (unsigned long long)s->id, s->transactions + 1, forclause, date);
	if (n > 0)
		write_content(s, hdr, (size_t)n < sizeof(hdr) ? (size_t)n : sizeof(hdr) - 1);
}

static void begin_message(struct smtp_session *s)
{
	s->delivery = store_delivery_new(s->srv->store);
	for (unsigned i = 0; i < s->n_rcpts; i++)
		store_delivery_add_rcpt(s->delivery, s->rcpt_ids[i]);
	smtp_data_init(&s->dp);
	s->data_size = 0;
	s->too_big = 0;
	s->io_error = 0;
	if (s->scratch == NULL)
		s->scratch = malloc(SCRATCH_SIZE + 1); /* decoder contract: len + 1 */
	write_trace(s);
}

static void commit_done(void *arg)
{
	struct commit_job *job = arg;
	struct smtp_session *s = job->s;
	if (s->gone) {
		log_info("smtp", s->id, "event=%s after-disconnect",
			 job->status == 0 ? "stored" : "store-failed");
		smtp_session_free(s);
		free(job);
		return;
	}
	s->transactions++;
	if (job->status == 0) {
		log_info("smtp", s->id, "event=stored id=%llx.%u size=%llu rcpts=%u",
			 (unsigned long long)s->id, s->transactions, (unsigned long long)job->size,
			 s->n_rcpts);
		smtp_reply(s, "250 2.0.0 Ok: queued as %llx.%u", (unsigned long long)s->id,
			   s->transactions);
	} else {
		log_error("smtp", s->id, "event=store-failed error=\"%s\"", job->error);
		smtp_reply(s, "451 4.3.0 Temporary failure storing the message, try again later");
	}
	free(job);
	s->state = SMTP_READY; /* leaving COMMIT; the reset below logs nothing new */
	smtp_reset_transaction(s);
	if (s->stopping) {
		smtp_reply(s, "421 4.3.2 %s Service shutting down", s->srv->config->hostname);
		smtp_set_state(s, SMTP_CLOSING);
		net_conn_close(s->conn);
		return;
	}
	net_conn_resume(s->conn); /* pipelined commands wait in the input buffer */
}

/* Runs on the committer thread: hand the result to the session's worker. */
static void commit_cb(void *ctx, const struct store_delivery_result *res)
{
	struct commit_job *job = ctx;
	job->status = res->status;
	if (res->status != 0)
		snprintf(job->error, sizeof(job->error), "%s", res->error ? res->error : "?");
	net_worker_post(job->s->worker, commit_done, job);
}

static void finish_message(struct smtp_session *s)
{
	if (s->too_big) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
	} else if (s->dp.bare_lf || s->dp.bare_cr) {
		/* RFC 5321 2.3.8: only CRLF ends a line. Such messages are refused
		 * whole: they are never split (SMTP smuggling). */
		log_info("smtp", s->id, "event=rejected reason=bare-%s",
			 s->dp.bare_lf ? "lf" : "cr");
		smtp_reply(s, "550 5.6.0 Message contains bare CR or LF line endings");
	} else if (s->io_error || s->delivery == NULL) {
		smtp_reply(s, "451 4.3.0 Temporary failure storing the message, try again later");
	} else {
		/* parse once, at delivery (ENVELOPE, BODYSTRUCTURE, parts...) */
		const char *err;
		if (mime_store_attach(s->delivery, &err) < 0)
			log_warn("smtp", s->id, "event=parse-failed error=\"%s\"", err);
		struct commit_job *job = calloc(1, sizeof(*job));
		job->s = s;
		job->size = store_delivery_size(s->delivery);
		store_delivery_t *d = s->delivery;
		s->delivery = NULL;
		smtp_set_state(s, SMTP_COMMIT);
		net_conn_pause(s->conn);
		store_delivery_commit(d, time(NULL), commit_cb, job);
		return;
	}
	smtp_reset_transaction(s);
}

static void account(struct smtp_session *s, size_t n)
{
	s->data_size += n;
	if (!s->too_big && s->data_size > s->srv->config->limits.max_message_size) {
		/* Keep reading to the end, storing nothing (RFC 1870 6.3). */
		s->too_big = 1;
		store_delivery_abort(s->delivery);
		s->delivery = NULL;
	}
}

void smtp_cmd_data(struct smtp_session *s, const char *args)
{
	(void)args;
	if (s->bdat_started) {
		smtp_reply_error(s, "503 5.5.1 DATA not allowed after BDAT");
		return;
	}
	if (s->state == SMTP_MAIL) {
		/* RFC 2920 3.1: every RCPT failed */
		smtp_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->state != SMTP_RCPT) {
		smtp_reply_error(s, "503 5.5.1 Need MAIL and RCPT before DATA");
		return;
	}
	begin_message(s);
	smtp_set_state(s, SMTP_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

void smtp_data_input(struct smtp_session *s)
{
	for (;;) {
		const char *in;
		size_t avail = net_conn_peek(s->conn, &in);
		if (avail == 0)
			return;
		if (avail > SCRATCH_SIZE)
			avail = SCRATCH_SIZE;
		size_t out_len;
		int done;
		size_t used = smtp_data_decode(&s->dp, in, avail, s->scratch, &out_len, &done);
		account(s, out_len);
		if (!s->too_big)
			write_content(s, s->scratch, out_len);
		net_conn_consume(s->conn, used);
		if (done) {
			finish_message(s);
			return;
		}
	}
}

void smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	uint64_t size;
	int last;
	if (smtp_parse_bdat(args, &size, &last) < 0) {
		smtp_reply_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	/* The chunk follows the command whatever we answer: it is always read
	 * (and dropped when refused), never taken for commands (RFC 3030 4). */
	const char *refusal = NULL;
	if (s->state == SMTP_INIT)
		refusal = "503 5.5.1 Send EHLO first";
	else if (s->state == SMTP_MAIL && !s->bdat_started)
		refusal = "554 5.5.1 No valid recipients";
	else if (s->state != SMTP_RCPT)
		refusal = "503 5.5.1 Need MAIL and RCPT before BDAT";
	if (refusal != NULL) {
		s->bdat_failed = 1;
		smtp_reply_error(s, "%s", refusal);
		if (s->state == SMTP_CLOSING)
			return;
	} else if (!s->bdat_started) {
		s->bdat_started = 1;
		s->bdat_failed = 0;
		begin_message(s);
	}
	s->bdat_prev_state = s->state;
	smtp_set_state(s, SMTP_BDAT);
	smtp_bdat_input(s);
}

void smtp_bdat_input(struct smtp_session *s)
{
	while (s->bdat_left > 0) {
		const char *in;
		size_t avail = net_conn_peek(s->conn, &in);
		if (avail == 0)
			return;
		if (avail > s->bdat_left)
			avail = (size_t)s->bdat_left;
		if (!s->bdat_failed) {
			account(s, avail);
			smtp_lineend_check(&s->dp, in, avail, 0);
			if (!s->too_big)
				write_content(s, in, avail);
		}
		net_conn_consume(s->conn, avail);
		s->bdat_left -= avail;
	}
	/* chunk complete */
	if (s->bdat_failed) {
		s->bdat_failed = 0;
		smtp_set_state(s, s->bdat_prev_state); /* where the refused BDAT found us */
		return;
	}
	if (!s->bdat_last) {
		smtp_set_state(s, SMTP_RCPT);
		if (s->too_big) {
			smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
			smtp_reset_transaction(s);
			return;
		}
		smtp_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->data_size);
		return;
	}
	smtp_lineend_check(&s->dp, "", 0, 1);
	smtp_set_state(s, SMTP_RCPT);
	finish_message(s);
}
