#include "smtp/smtp_session.h"

#include "core/config.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Command flags. */
#define CMD_NEEDS_HELO 0x01 /* 503 before EHLO/HELO */
#define CMD_NO_ARGS    0x02 /* 501 when arguments are given */

struct smtp_cmd {
	const char *name;
	smtp_cmd_fn *fn;
	unsigned flags;
};

static const struct smtp_cmd commands[] = {
	{ "EHLO", smtp_cmd_ehlo, 0 },
	{ "HELO", smtp_cmd_helo, 0 },
	{ "MAIL", smtp_cmd_mail, CMD_NEEDS_HELO },
	{ "RCPT", smtp_cmd_rcpt, CMD_NEEDS_HELO },
	{ "DATA", smtp_cmd_data, CMD_NEEDS_HELO | CMD_NO_ARGS },
	{ "BDAT", smtp_cmd_bdat, 0 }, /* checks its own state: must consume the chunk */
	{ "RSET", smtp_cmd_rset, CMD_NO_ARGS },
	{ "NOOP", smtp_cmd_noop, 0 },
	{ "QUIT", smtp_cmd_quit, CMD_NO_ARGS },
	{ "HELP", smtp_cmd_help, 0 },
	{ "VRFY", smtp_cmd_vrfy, 0 },
	{ "EXPN", smtp_cmd_expn, 0 },
	{ "STARTTLS", smtp_cmd_starttls, CMD_NO_ARGS },
};

static const char *const state_names[] = {
	"init", "ready", "mail", "rcpt", "data", "bdat", "commit", "closing",
};

void smtp_set_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	log_debug("smtp", s->id, "event=state from=%s to=%s", state_names[s->state],
		  state_names[state]);
	s->state = state;
	const struct config *cfg = s->srv->config;
	net_conn_set_timeout(s->conn, state == SMTP_DATA || state == SMTP_BDAT
					      ? cfg->limits.data_timeout
					      : cfg->limits.command_timeout);
}

static void vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	net_conn_write(s->conn, buf, (size_t)n);
}

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
}

void smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
	if (++s->errors >= s->srv->config->limits.max_errors) {
		log_info("smtp", s->id, "event=too-many-errors errors=%u", s->errors);
		smtp_reply(s, "421 4.7.0 %s Too many errors, closing connection",
			   s->srv->config->hostname);
		smtp_set_state(s, SMTP_CLOSING);
		net_conn_close(s->conn);
	}
}

void smtp_reset_transaction(struct smtp_session *s)
{
	memset(&s->from, 0, sizeof(s->from));
	s->body_8bit = 0;
	s->smtputf8 = 0;
	s->n_rcpts = 0;
	s->rcpt_attempts = 0;
	s->first_rcpt[0] = '\0';
	store_delivery_abort(s->delivery);
	s->delivery = NULL;
	s->data_size = 0;
	s->too_big = 0;
	s->io_error = 0;
	s->bdat_started = 0;
	s->bdat_failed = 0;
	s->bdat_last = 0;
	s->bdat_left = 0;
	if (s->state != SMTP_INIT && s->state != SMTP_CLOSING)
		smtp_set_state(s, SMTP_READY);
}

static void dispatch(struct smtp_session *s, char *line, size_t len)
{
	if (memchr(line, '\0', len) != NULL) {
		smtp_reply_error(s, "500 5.5.2 NUL character in command");
		return;
	}
	char *sp = strchr(line, ' ');
	size_t vlen = sp != NULL ? (size_t)(sp - line) : len;
	const char *args = sp != NULL ? sp + 1 : "";
	/* Trailing spaces are common ("RSET ") and harmless. */
	while (len > 0 && line[len - 1] == ' ')
		line[--len] = '\0';
	if (sp != NULL && (size_t)(sp - line) >= len)
		args = "";
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct smtp_cmd *c = &commands[i];
		if (strlen(c->name) != vlen || strncasecmp(line, c->name, vlen) != 0)
			continue;
		if ((c->flags & CMD_NO_ARGS) && *args != '\0') {
			smtp_reply_error(s, "501 5.5.4 %s takes no arguments", c->name);
			return;
		}
		if ((c->flags & CMD_NEEDS_HELO) && s->state == SMTP_INIT) {
			smtp_reply_error(s, "503 5.5.1 Send EHLO or HELO first");
			return;
		}
		c->fn(s, args);
		return;
	}
	char safe[64];
	log_info("smtp", s->id, "event=unknown-command verb=%s",
		 log_safe(line, vlen < 32 ? vlen : 32, safe, sizeof(safe)));
	smtp_reply_error(s, "500 5.5.1 Command unrecognized");
}

static void close_for_shutdown(struct smtp_session *s)
{
	smtp_reply(s, "421 4.3.2 %s Service shutting down", s->srv->config->hostname);
	smtp_set_state(s, SMTP_CLOSING);
	net_conn_close(s->conn);
}

static void smtp_input(void *arg)
{
	struct smtp_session *s = arg;
	size_t line_max = s->srv->config->limits.smtp_line_max;
	for (;;) {
		switch (s->state) {
		case SMTP_DATA:
			smtp_data_input(s);
			if (s->state == SMTP_DATA)
				return; /* need more input */
			if (s->stopping && s->state == SMTP_READY) {
				close_for_shutdown(s); /* the message was refused */
				return;
			}
			continue;
		case SMTP_BDAT:
			smtp_bdat_input(s);
			if (s->state == SMTP_BDAT)
				return;
			if (s->stopping && (s->state == SMTP_READY || s->state == SMTP_INIT)) {
				close_for_shutdown(s);
				return;
			}
			continue;
		case SMTP_COMMIT:
		case SMTP_CLOSING:
			return;
		default:
			break;
		}
		if (!net_conn_can_process(s->conn))
			return; /* resumed when the output drains */
		char *line;
		size_t len;
		int r = net_conn_readline(s->conn, line_max, &line, &len);
		if (r == 0)
			return;
		if (r < 0) {
			smtp_reply_error(s, "500 5.5.2 Line too long (max %zu octets)", line_max);
			continue;
		}
		dispatch(s, line, len);
		if (s->stopping && (s->state == SMTP_INIT || s->state == SMTP_READY)) {
			close_for_shutdown(s); /* the transaction ended (RSET, refusal) */
			return;
		}
	}
}

static void *smtp_open(net_conn_t *conn, void *proto_ctx)
{
	struct smtp_server *srv = proto_ctx;
	struct smtp_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->conn = conn;
	s->worker = net_conn_worker(conn);
	s->srv = srv;
	s->id = net_conn_id(conn);
	s->state = SMTP_INIT;
	net_conn_set_timeout(conn, srv->config->limits.command_timeout);
	log_info("smtp", s->id, "event=connect peer=%s tls=%s", net_conn_peer(conn),
		 net_conn_is_tls(conn) ? "yes" : "no");
	smtp_reply(s, "220 %s ESMTP Petrel", srv->config->hostname);
	return s;
}

static void smtp_timeout(void *arg)
{
	struct smtp_session *s = arg;
	log_info("smtp", s->id, "event=timeout state=%s", state_names[s->state]);
	if (s->state == SMTP_COMMIT)
		return; /* the store answers soon; the reply comes then */
	smtp_reply(s, "421 4.4.2 %s Timeout exceeded, closing connection", s->srv->config->hostname);
	smtp_set_state(s, SMTP_CLOSING);
	net_conn_close(s->conn);
}

static void smtp_shutdown(void *arg)
{
	struct smtp_session *s = arg;
	s->stopping = 1;
	/* In-flight transactions finish; idle sessions go now. */
	if (s->state == SMTP_INIT || s->state == SMTP_READY)
		close_for_shutdown(s);
}

void smtp_session_free(struct smtp_session *s)
{
	store_delivery_abort(s->delivery);
	free(s->rcpt_ids);
	free(s->scratch);
	free(s);
}

static void smtp_closed(void *arg)
{
	struct smtp_session *s = arg;
	log_info("smtp", s->id, "event=disconnect messages=%u errors=%u", s->transactions,
		 s->errors);
	s->conn = NULL;
	if (s->state == SMTP_COMMIT) {
		s->gone = 1; /* freed when the store answers */
		return;
	}
	smtp_session_free(s);
}

const struct net_proto_ops smtp_proto_ops = {
	.name = "smtp",
	.busy_reply = "421 4.7.0 Too many connections, try again later\r\n",
	.open = smtp_open,
	.input = smtp_input,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.closed = smtp_closed,
};
