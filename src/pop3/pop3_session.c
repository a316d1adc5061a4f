/* The POP3 session: greeting, command table and dispatch, replies, input
 * loop (pipelining, RFC 2449 6.6), continuation of long responses, the
 * session's end. */
#include "pop3/pop3_session.h"

#include "auth/sasl.h"
#include "core/config.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The states a command is allowed in. */
#define S_AUTHZ 0x01
#define S_TRANS 0x02
#define S_ANY   (S_AUTHZ | S_TRANS)
#define ARGS_REST 0xff /* takes the rest of the line (PASS) */

struct pop3_cmd_def {
	const char *name;
	pop3_cmd_fn *fn;
	unsigned states;
	unsigned char min_args, max_args;
	const char *syntax;
};

static const struct pop3_cmd_def commands[] = {
	{ "USER", pop3_cmd_user, S_AUTHZ, 1, 1, "USER name" },
	{ "PASS", pop3_cmd_pass, S_AUTHZ, 1, ARGS_REST, "PASS string" },
	{ "APOP", pop3_cmd_apop, S_AUTHZ, 2, 2, "APOP name digest" },
	{ "AUTH", pop3_cmd_auth, S_AUTHZ, 0, 2, "AUTH mechanism [initial-response]" },
	{ "STLS", pop3_cmd_stls, S_AUTHZ, 0, 0, "STLS" },
	{ "CAPA", pop3_cmd_capa, S_ANY, 0, 0, "CAPA" },
	{ "QUIT", pop3_cmd_quit, S_ANY, 0, 0, "QUIT" },
	{ "STAT", pop3_cmd_stat, S_TRANS, 0, 0, "STAT" },
	{ "LIST", pop3_cmd_list, S_TRANS, 0, 1, "LIST [msg]" },
	{ "UIDL", pop3_cmd_uidl, S_TRANS, 0, 1, "UIDL [msg]" },
	{ "RETR", pop3_cmd_retr, S_TRANS, 1, 1, "RETR msg" },
	{ "TOP", pop3_cmd_top, S_TRANS, 2, 2, "TOP msg n" },
	{ "DELE", pop3_cmd_dele, S_TRANS, 1, 1, "DELE msg" },
	{ "RSET", pop3_cmd_rset, S_TRANS, 0, 0, "RSET" },
	{ "NOOP", pop3_cmd_noop, S_TRANS, 0, 0, "NOOP" },
};

static const char *const state_names[] = {
	"authorization", "transaction", "update", "closing",
};

void pop3_set_state(struct pop3_session *s, enum pop3_state state)
{
	if (s->state == state)
		return;
	log_debug("pop3", s->id, "event=state from=%s to=%s", state_names[s->state],
		  state_names[state]);
	s->state = state;
	if (state == POP3_TRANSACTION) {
		unsigned t = s->srv->config->limits.command_timeout;
		net_conn_set_timeout(s->conn, t > POP3_AUTOLOGOUT_MIN ? t : POP3_AUTOLOGOUT_MIN);
	}
}

/* ------------------------------------------------------------------ output */

void pop3_write(struct pop3_session *s, const void *data, size_t len)
{
	net_conn_write(s->conn, data, len);
}

/* One reply line: status, text, and (for counted errors past the limit) the
 * notice that the session ends. */
static void vreply(struct pop3_session *s, const char *status, int counted, const char *fmt,
		   va_list ap)
{
	char buf[1024];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "%s ", status);
	int n = vsnprintf(buf + o, sizeof(buf) - o - 64, fmt, ap);
	if (n <= 0)
		o--; /* no text: no space either */
	else
		o += (size_t)n < sizeof(buf) - o - 64 ? (size_t)n : sizeof(buf) - o - 65;
	int closing = 0;
	if (counted) {
		if (++s->errors >= s->srv->config->limits.max_errors) {
			closing = 1;
			o += (size_t)snprintf(buf + o, sizeof(buf) - o,
					      " (too many errors, closing connection)");
		}
	} else if (status[0] == '+') {
		s->errors = 0; /* max_errors counts consecutive errors */
	}
	buf[o++] = '\r';
	buf[o++] = '\n';
	net_conn_write(s->conn, buf, o);
	if (closing) {
		log_info("pop3", s->id, "event=too-many-errors errors=%u", s->errors);
		pop3_session_close(s);
	}
}

void pop3_ok(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, "+OK", 0, fmt, ap);
	va_end(ap);
}

void pop3_err(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, "-ERR", 1, fmt, ap);
	va_end(ap);
}

void pop3_fail(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, "-ERR", 0, fmt, ap);
	va_end(ap);
}

void pop3_session_close(struct pop3_session *s)
{
	if (s->state == POP3_CLOSING)
		return;
	pop3_set_state(s, POP3_CLOSING);
	net_conn_close(s->conn);
}

int pop3_plaintext_ok(struct pop3_session *s)
{
	return net_conn_is_tls(s->conn) || net_conn_is_loopback(s->conn) ||
	       s->srv->config->pop3_plaintext_auth;
}

/* ------------------------------------------------------------------ async */

void pop3_async(struct pop3_session *s)
{
	s->busy = 1;
	net_conn_pause(s->conn);
}

void pop3_done(struct pop3_session *s)
{
	s->busy = 0;
	if (s->state == POP3_CLOSING)
		return;
	if (s->stopping) {
		pop3_session_close(s);
		return;
	}
	net_conn_resume(s->conn); /* pipelined commands wait in the input buffer */
}

void pop3_cont_done(struct pop3_session *s)
{
	s->cont = NULL;
	if (s->stopping)
		pop3_session_close(s);
	/* Pipelined commands: the input loop goes on (net runs it after the
	 * writable hook; within a command the loop simply continues). */
}

/* ----------------------------------------------------------------- dispatch */

static void dispatch(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command cmd;
	const char *why;
	/* A command fits on the stack; a longer line (AUTH's initial
	 * response) is allocated. */
	char stack[POP3_LINE_MAX + 1];
	char *buf = len < sizeof(stack) ? stack : malloc(len + 1);
	if (buf == NULL) {
		pop3_fail(s, "[SYS/TEMP] Out of memory");
		return;
	}
	if (pop3_command_parse(line, len, buf, &cmd, &why) < 0) {
		char safe[64];
		log_info("pop3", s->id, "event=unknown-command line=%s",
			 log_safe(line, len < 32 ? len : 32, safe, sizeof(safe)));
		pop3_err(s, "%s", why);
		if (buf != stack)
			free(buf);
		return;
	}
	const struct pop3_cmd_def *c = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd.keyword, commands[i].name) == 0) {
			c = &commands[i];
			break;
		}
	}
	if (c == NULL) {
		log_info("pop3", s->id, "event=unknown-command verb=%s", cmd.keyword);
		pop3_err(s, "Unknown command");
	} else if (!(c->states & (s->state == POP3_AUTHORIZATION ? S_AUTHZ : S_TRANS))) {
		pop3_err(s, "%s not allowed %s", c->name,
			 s->state == POP3_AUTHORIZATION ? "before authentication"
							: "after authentication");
	} else if (c->max_args == ARGS_REST ? cmd.rest[0] == '\0'
		   : cmd.too_many || cmd.n_args < c->min_args || cmd.n_args > c->max_args) {
		pop3_err(s, "Syntax: %s", c->syntax);
	} else {
		struct pop3_cmd_args a = {
			.cmd = &cmd, .args = cmd.args, .n_args = cmd.n_args, .rest = cmd.rest,
		};
		c->fn(s, &a);
	}
	explicit_bzero(buf, len); /* PASS */
	if (buf != stack)
		free(buf);
}

static void pop3_input(void *arg)
{
	struct pop3_session *s = arg;
	while (s->state != POP3_CLOSING && s->state != POP3_UPDATE && !s->busy &&
	       s->cont == NULL) {
		if (!net_conn_can_process(s->conn))
			return; /* resumed when the output drains */
		const char *data;
		size_t avail = net_conn_peek(s->conn, &data);
		if (avail == 0)
			return;
		size_t used = 0;
		enum pop3_parse_result r = pop3_parser_feed(&s->parser, data, avail, &used);
		net_conn_consume(s->conn, used);
		switch (r) {
		case POP3_PARSE_NEED_MORE:
			break;
		case POP3_PARSE_TOO_LONG:
			if (s->sasl_step > 0)
				pop3_sasl_input(s, NULL, 0);
			else
				pop3_err(s, "Line too long (max %zu octets)", s->parser.max);
			break;
		case POP3_PARSE_NUL:
			if (s->sasl_step > 0)
				pop3_sasl_input(s, NULL, 0);
			else
				pop3_err(s, "NUL octet in command");
			break;
		case POP3_PARSE_LINE: {
			size_t len;
			const char *line = pop3_parser_line(&s->parser, &len);
			if (s->sasl_step > 0)
				pop3_sasl_input(s, line, len);
			else
				dispatch(s, line, len);
			pop3_parser_wipe(&s->parser); /* PASS, AUTH */
			break;
		}
		}
	}
}

static void pop3_writable(void *arg)
{
	struct pop3_session *s = arg;
	if (s->cont != NULL && s->state != POP3_CLOSING)
		s->cont(s);
}

/* ---------------------------------------------------------------- lifetime */

static void *pop3_open(net_conn_t *conn, void *proto_ctx)
{
	static _Atomic uint64_t counter;
	struct pop3_server *srv = proto_ctx;
	struct pop3_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->handle = net_handle_new(net_conn_worker(conn), s);
	if (s->handle == NULL) {
		free(s);
		return NULL;
	}
	s->conn = conn;
	s->worker = net_conn_worker(conn);
	s->srv = srv;
	s->id = net_conn_id(conn);
	s->state = POP3_AUTHORIZATION;
	pop3_parser_init(&s->parser, POP3_LINE_MAX);
	/* RFC 1939 7: unique per greeting (process, counter, clock) */
	snprintf(s->timestamp, sizeof(s->timestamp), "<%ld.%llu.%lld@%s>", (long)getpid(),
		 (unsigned long long)atomic_fetch_add(&counter, 1) + 1, (long long)time(NULL),
		 srv->config->hostname);
	net_conn_set_timeout(conn, srv->config->limits.command_timeout);
	log_info("pop3", s->id, "event=connect peer=%s tls=%s", net_conn_peer(conn),
		 net_conn_is_tls(conn) ? "yes" : "no");
	pop3_ok(s, "Petrel POP3 server ready %s", s->timestamp);
	return s;
}

static void pop3_timeout(void *arg)
{
	struct pop3_session *s = arg;
	log_info("pop3", s->id, "event=timeout state=%s", state_names[s->state]);
	if (s->state == POP3_UPDATE)
		return; /* the commit answers soon; then the session ends */
	/* RFC 1939 3: close without a response and without deleting */
	pop3_session_close(s);
}

static void pop3_shutdown(void *arg)
{
	struct pop3_session *s = arg;
	s->stopping = 1;
	if (s->busy || s->cont != NULL)
		return; /* the reply in progress ends first (pop3_done, pop3_cont_done) */
	if (s->state != POP3_CLOSING)
		pop3_fail(s, "[SYS/TEMP] Server shutting down");
	pop3_session_close(s);
}

static void pop3_closed(void *arg)
{
	struct pop3_session *s = arg;
	log_info("pop3", s->id, "event=disconnect user=%s state=%s retrieved=%u",
		 s->address[0] ? s->address : "-", state_names[s->state], s->retrieved);
	pop3_body_free(s);
	/* A dropped connection deletes nothing (RFC 1939 6). During UPDATE the
	 * commit's callback owns the lock (and s->locked is 0). */
	if (s->locked)
		pop3_lock_release(s->user_id);
	pop3_maildrop_free(&s->md);
	pop3_parser_free(&s->parser);
	explicit_bzero(s->sasl_user, sizeof(s->sasl_user));
	sasl_free(s->scram);
	net_handle_detach(&s->handle);
	free(s);
}

const struct net_proto_ops pop3_proto_ops = {
	.name = "pop3",
	.busy_reply = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.open = pop3_open,
	.input = pop3_input,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.writable = pop3_writable,
	.closed = pop3_closed,
};
