#include "imap/imap_session.h"

#include "imap/imap_fetch.h"
#include "imap/imap_mutf7.h"

#include "auth/sasl.h"
#include "core/config.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Command flags: the states a command is allowed in. */
#define S_NOTAUTH  0x01
#define S_AUTH     0x02
#define S_SELECTED 0x04
#define S_ANY      (S_NOTAUTH | S_AUTH | S_SELECTED)
#define F_UID      0x10 /* has a UID variant */

struct imap_command {
	const char *name;
	imap_cmd_fn *fn;
	unsigned flags;
};

static const struct imap_command commands[] = {
	{ "CAPABILITY", imap_cmd_capability, S_ANY },
	{ "NOOP", imap_cmd_noop, S_ANY },
	{ "LOGOUT", imap_cmd_logout, S_ANY },
	{ "ID", imap_cmd_id, S_ANY },
	{ "ENABLE", imap_cmd_enable, S_AUTH | S_SELECTED },
	{ "STARTTLS", imap_cmd_starttls, S_NOTAUTH },
	{ "LOGIN", imap_cmd_login, S_NOTAUTH },
	{ "AUTHENTICATE", imap_cmd_authenticate, S_NOTAUTH },
	{ "SELECT", imap_cmd_select, S_AUTH | S_SELECTED },
	{ "EXAMINE", imap_cmd_examine, S_AUTH | S_SELECTED },
	{ "CREATE", imap_cmd_create, S_AUTH | S_SELECTED },
	{ "DELETE", imap_cmd_delete, S_AUTH | S_SELECTED },
	{ "RENAME", imap_cmd_rename, S_AUTH | S_SELECTED },
	{ "SUBSCRIBE", imap_cmd_subscribe, S_AUTH | S_SELECTED },
	{ "UNSUBSCRIBE", imap_cmd_unsubscribe, S_AUTH | S_SELECTED },
	{ "LIST", imap_cmd_list, S_AUTH | S_SELECTED },
	{ "LSUB", imap_cmd_lsub, S_AUTH | S_SELECTED },
	{ "NAMESPACE", imap_cmd_namespace, S_AUTH | S_SELECTED },
	{ "STATUS", imap_cmd_status, S_AUTH | S_SELECTED },
	{ "APPEND", imap_cmd_append, S_AUTH | S_SELECTED },
	{ "IDLE", imap_cmd_idle, S_AUTH | S_SELECTED },
	{ "COMPRESS", imap_cmd_compress, S_AUTH | S_SELECTED },
	{ "CHECK", imap_cmd_check, S_SELECTED },
	{ "CLOSE", imap_cmd_close, S_SELECTED },
	{ "UNSELECT", imap_cmd_unselect, S_SELECTED },
	{ "EXPUNGE", imap_cmd_expunge, S_SELECTED | F_UID },
	{ "SEARCH", imap_cmd_search, S_SELECTED | F_UID },
	{ "SORT", imap_cmd_sort, S_SELECTED | F_UID },
	{ "THREAD", imap_cmd_thread, S_SELECTED | F_UID },
	{ "FETCH", imap_cmd_fetch, S_SELECTED | F_UID },
	{ "STORE", imap_cmd_store, S_SELECTED | F_UID },
	{ "COPY", imap_cmd_copy, S_SELECTED | F_UID },
	{ "MOVE", imap_cmd_move, S_SELECTED | F_UID },
};

/* Limits: tighter before authentication (a stranger gets less). */
#define PREAUTH_LINE     8192
#define PREAUTH_LITERAL  8192
#define AUTH_LINE        (64 * 1024)
#define AUTH_LITERAL     (64 * 1024)   /* non-APPEND literals */
#define MAX_DEPTH        16
#define MAX_ARGS         10000
/* RFC 7888 5: the largest {n+} a LITERAL- server takes */
#define LITERAL_MINUS_MAX 4096

static void set_limits(struct imap_session *s)
{
	struct imap_parser_limits lim = {
		.max_line = s->state == IMAP_NOTAUTH ? PREAUTH_LINE : AUTH_LINE,
		.max_literal = s->state == IMAP_NOTAUTH ? PREAUTH_LITERAL : AUTH_LITERAL,
		.max_literal_total = s->state == IMAP_NOTAUTH ? 2 * PREAUTH_LITERAL
							      : 4 * AUTH_LITERAL,
		.max_depth = MAX_DEPTH,
		.max_args = s->state == IMAP_NOTAUTH ? 16 : MAX_ARGS,
	};
	imap_parser_set_limits(s->parser, &lim);
}

/* ------------------------------------------------------------------ output */

void imap_write(struct imap_session *s, const void *data, size_t len)
{
	net_conn_write(s->conn, data, len);
}

static void vwrite(struct imap_session *s, const char *fmt, va_list ap)
{
	char buf[1024];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return;
	}
	if ((size_t)n < sizeof(buf)) {
		net_conn_write(s->conn, buf, (size_t)n);
	} else {
		char *big = malloc((size_t)n + 1);
		if (big != NULL) {
			vsnprintf(big, (size_t)n + 1, fmt, ap2);
			net_conn_write(s->conn, big, (size_t)n);
			free(big);
		}
	}
	va_end(ap2);
}

void imap_printf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwrite(s, fmt, ap);
	va_end(ap);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	net_conn_write(s->conn, "* ", 2);
	va_list ap;
	va_start(ap, fmt);
	vwrite(s, fmt, ap);
	va_end(ap);
	net_conn_write(s->conn, "\r\n", 2);
}

void imap_tagged(struct imap_session *s, const char *tag, const char *status, const char *fmt, ...)
{
	imap_printf(s, "%s %s ", tag, status);
	va_list ap;
	va_start(ap, fmt);
	vwrite(s, fmt, ap);
	va_end(ap);
	net_conn_write(s->conn, "\r\n", 2);
	if (strcmp(status, "BAD") == 0) {
		if (++s->bad_count >= s->srv->config->limits.max_errors)
			imap_session_close(s, "Too many invalid commands");
	} else {
		s->bad_count = 0; /* max_errors counts consecutive BADs */
	}
}

void imap_write_string(struct imap_session *s, const char *str, size_t len)
{
	int quote = len < 1024, high = 0;
	for (size_t i = 0; i < len && quote; i++) {
		unsigned char c = (unsigned char)str[i];
		/* UTF-8 in quoted strings: RFC 6855 3, RFC 9051 4.3 */
		if (c == '\r' || c == '\n' || c == '\0' || (c >= 0x80 && !s->utf8_accept && !s->rev2))
			quote = 0;
		high |= c >= 0x80;
	}
	/* QUOTED-CHAR takes well-formed UTF-8 only (RFC 9051 9: UTF8-2 /
	 * UTF8-3 / UTF8-4); other 8-bit octets go in a literal */
	if (quote && high && !imap_utf8_valid(str, len))
		quote = 0;
	if (!quote) {
		imap_printf(s, "{%zu}\r\n", len);
		imap_write(s, str, len);
		return;
	}
	char buf[2100];
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\')
			buf[o++] = '\\';
		buf[o++] = str[i];
	}
	buf[o++] = '"';
	imap_write(s, buf, o);
}

void imap_write_nstring(struct imap_session *s, const char *str)
{
	if (str == NULL)
		imap_write(s, "NIL", 3);
	else
		imap_write_string(s, str, strlen(str));
}

int imap_utf8_names(const struct imap_session *s)
{
	return s->utf8_accept || s->rev2;
}

void imap_write_mailbox(struct imap_session *s, const char *name)
{
	size_t len = strlen(name);
	char *m = NULL;
	const char *err;
	/* RFC 6855 3: no modified UTF-7 once UTF8=ACCEPT is enabled. A stored
	 * name that is not UTF-8 (none can be created) goes out as it is. */
	if (!imap_utf8_names(s) && (m = imap_utf8_to_mutf7(name, len, &err)) != NULL) {
		imap_write_string(s, m, strlen(m));
		free(m);
		return;
	}
	imap_write_string(s, name, len);
}

char *imap_mailbox_name_in(const struct imap_session *s, const char *arg, const char **error_r)
{
	size_t len = strlen(arg);
	int eight_bit = 0;
	for (size_t i = 0; i < len && !eight_bit; i++)
		eight_bit = (unsigned char)arg[i] >= 0x80;
	if (imap_utf8_names(s) || eight_bit) {
		if (eight_bit && !imap_utf8_valid(arg, len)) {
			*error_r = "8-bit octets that are not UTF-8";
			return NULL;
		}
		char *copy = strdup(arg);
		if (copy == NULL)
			*error_r = "Out of memory";
		return copy;
	}
	return imap_mutf7_to_utf8(arg, len, error_r);
}

void imap_reply_bad_name(struct imap_session *s, const char *tag, const char *error)
{
	/* NO, not BAD: the argument is a well-formed astring, only its
	 * content is refused (and BAD would count towards max_errors) */
	imap_tagged(s, tag, "NO", "[CANNOT] Invalid mailbox name (%s): %s",
		    imap_utf8_names(s) ? "UTF-8" : "modified UTF-7, RFC 3501 5.1.3", error);
}

static const struct {
	uint32_t bit;
	const char *name;
} system_flags[] = {
	{ STORE_FLAG_ANSWERED, "\\Answered" }, { STORE_FLAG_FLAGGED, "\\Flagged" },
	{ STORE_FLAG_DELETED, "\\Deleted" },   { STORE_FLAG_SEEN, "\\Seen" },
	{ STORE_FLAG_DRAFT, "\\Draft" },
};

void imap_write_flags(struct imap_session *s, uint32_t flags, const char *keywords, int recent)
{
	char buf[1024];
	size_t o = 0;
	buf[o++] = '(';
	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
		if (!(flags & system_flags[i].bit))
			continue;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", o > 1 ? " " : "",
				      system_flags[i].name);
	}
	if (recent)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\\Recent", o > 1 ? " " : "");
	imap_write(s, buf, o);
	if (keywords != NULL && *keywords != '\0') {
		if (o > 1)
			imap_write(s, " ", 1);
		imap_write(s, keywords, strlen(keywords));
	}
	imap_write(s, ")", 1);
}

/* --------------------------------------------------------------- arguments */

const char *imap_arg_string(const struct imap_arg *a)
{
	if (a == NULL)
		return NULL;
	if (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL)
		return a->str;
	if (a->type == IMAP_ARG_NIL)
		return "NIL"; /* as an astring, NIL is the name "NIL" */
	return NULL;
}

const char *imap_arg_atom(const struct imap_arg *a)
{
	if (a == NULL || (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL))
		return a != NULL && a->type == IMAP_ARG_NIL ? "NIL" : NULL;
	return a->type == IMAP_ARG_NIL ? "NIL" : a->str;
}

static int add_flag(const char *f, uint32_t *flags, char **kw, size_t *kwlen)
{
	if (f[0] == '\\') {
		for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
			if (strcasecmp(f, system_flags[i].name) == 0) {
				*flags |= system_flags[i].bit;
				return 0;
			}
		}
		return -1; /* \Recent and unknown system flags cannot be stored */
	}
	/* keyword: atom without atom-specials */
	for (const char *p = f; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return -1;
	}
	size_t n = strlen(f);
	char *r = realloc(*kw, *kwlen + n + 2);
	if (r == NULL)
		return -1;
	*kw = r;
	if (*kwlen > 0)
		r[(*kwlen)++] = ' ';
	memcpy(r + *kwlen, f, n);
	*kwlen += n;
	r[*kwlen] = '\0';
	return 0;
}

int imap_parse_flags(const struct imap_arg *a, uint32_t *flags_r, char **keywords_r)
{
	*flags_r = 0;
	char *kw = NULL;
	size_t kwlen = 0;
	if (a->type == IMAP_ARG_LIST) {
		for (size_t i = 0; i < a->list_count; i++) {
			const struct imap_arg *f = &a->list[i];
			if (f->type != IMAP_ARG_ATOM || add_flag(f->str, flags_r, &kw, &kwlen) < 0) {
				free(kw);
				return -1;
			}
		}
	} else if (a->type == IMAP_ARG_ATOM) {
		if (add_flag(a->str, flags_r, &kw, &kwlen) < 0) {
			free(kw);
			return -1;
		}
	} else {
		return -1;
	}
	*keywords_r = kw != NULL ? kw : strdup("");
	return 0;
}

uint32_t imap_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (mb->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mb->n && mb->uids[lo] == uid ? (uint32_t)(lo + 1) : 0;
}

int imap_seqset_uids(struct imap_session *s, const char *str, int uid, uint32_t **uids_r,
		     size_t *n_r)
{
	struct imap_mailbox *mb = s->sel;
	*uids_r = NULL;
	*n_r = 0;
	if (strcmp(str, "$") == 0) {
		/* SEARCHRES (RFC 5182): the saved uids, whatever the command form */
		uint32_t *out = malloc((s->n_saved ? s->n_saved : 1) * sizeof(*out));
		size_t n = 0;
		if (out == NULL)
			return -1;
		for (size_t i = 0; i < s->n_saved; i++)
			if (imap_seq_of_uid(mb, s->saved[i]) != 0)
				out[n++] = s->saved[i];
		*uids_r = out;
		*n_r = n;
		return 0;
	}
	struct imap_seqset set;
	if (imap_seqset_parse(str, 0, &set) < 0)
		return -1;
	uint32_t max = uid ? (mb->n ? mb->uids[mb->n - 1] : 0) : (uint32_t)mb->n;
	imap_seqset_resolve(&set, max);
	uint32_t *out = malloc((mb->n ? mb->n : 1) * sizeof(*out));
	size_t n = 0;
	if (!uid) {
		for (size_t r = 0; r < set.n; r++)
			for (uint64_t q = set.r[r].lo; q <= set.r[r].hi && q <= mb->n; q++)
				out[n++] = mb->uids[q - 1];
	} else {
		/* walk the view once, keeping uids inside the set */
		size_t r = 0;
		for (size_t i = 0; i < mb->n && r < set.n; i++) {
			uint32_t u = mb->uids[i];
			while (r < set.n && set.r[r].hi < u)
				r++;
			if (r < set.n && set.r[r].lo <= u)
				out[n++] = u;
		}
	}
	imap_seqset_free(&set);
	*uids_r = out;
	*n_r = n;
	return 0;
}

/* ------------------------------------------------------------------ async */

void imap_cmd_async(struct imap_session *s, struct imap_cmd *cmd)
{
	s->cur = *cmd;
	s->cur.args = NULL;
	s->cur.n_args = 0;
	s->busy = 1;
	net_conn_pause(s->conn);
}

void imap_cmd_done(struct imap_session *s)
{
	s->busy = 0;
	if (s->stopping) {
		imap_session_close(s, "Server shutting down");
		return;
	}
	if (s->state != IMAP_LOGOUT)
		net_conn_resume(s->conn);
}

void imap_session_close(struct imap_session *s, const char *bye)
{
	if (s->state == IMAP_LOGOUT)
		return;
	if (bye != NULL)
		imap_untagged(s, "BYE %s", bye);
	s->state = IMAP_LOGOUT;
	net_conn_close(s->conn);
}

/* ----------------------------------------------------------------- dispatch */

int imap_utf8_valid(const char *str, size_t len)
{
	const unsigned char *p = (const unsigned char *)str, *end = p + len;
	while (p < end) {
		unsigned c = *p++;
		if (c < 0x80)
			continue;
		size_t more;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf)
			more = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if ((size_t)(end - p) < more)
			return 0;
		for (size_t i = 0; i < more; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		p += more;
		/* overlong forms, surrogates, beyond U+10FFFF (RFC 3629 3) */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
	}
	return 1;
}

/* RFC 6855 3: 8-bit octets in a quoted string must be UTF-8. */
static int quoted_utf8_ok(const struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (args[i].type == IMAP_ARG_QUOTED && !imap_utf8_valid(args[i].str, args[i].len))
			return 0;
		if (args[i].type == IMAP_ARG_LIST && !quoted_utf8_ok(args[i].list, args[i].list_count))
			return 0;
	}
	return 1;
}

static void dispatch(struct imap_session *s)
{
	struct imap_cmd cmd = { 0 };
	snprintf(cmd.tag, sizeof(cmd.tag), "%s", imap_parser_tag(s->parser));
	const char *name = imap_parser_command(s->parser);
	cmd.args = imap_parser_args(s->parser, &cmd.n_args);
	if (!quoted_utf8_ok(cmd.args, cmd.n_args)) {
		/* an APPEND whose literals were streamed: drop them */
		imap_append_abort(s);
		imap_tagged(s, cmd.tag, "BAD", "Invalid UTF-8 in a quoted string");
		return;
	}
	if (strcmp(name, "UID") == 0) {
		const char *sub = cmd.n_args > 0 ? imap_arg_atom(&cmd.args[0]) : NULL;
		if (sub == NULL) {
			imap_tagged(s, cmd.tag, "BAD", "UID needs a command");
			return;
		}
		cmd.uid = 1;
		name = sub;
		cmd.args++;
		cmd.n_args--;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct imap_command *c = &commands[i];
		if (strcasecmp(name, c->name) != 0)
			continue;
		if (cmd.uid && !(c->flags & F_UID))
			break;
		unsigned need = s->state == IMAP_NOTAUTH ? S_NOTAUTH
				: s->state == IMAP_AUTH	 ? S_AUTH
							 : S_SELECTED;
		if (!(c->flags & need)) {
			/* the reason names what is missing: login, a selected
			 * mailbox, or (LOGIN, STARTTLS...) nothing but the state */
			imap_tagged(s, cmd.tag, "BAD", "%s not allowed %s", c->name,
				    s->state == IMAP_NOTAUTH ? "before authentication"
				    : s->state == IMAP_AUTH && (c->flags & S_SELECTED)
					    ? "without a selected mailbox"
					    : "now");
			return;
		}
		cmd.name = c->name;
		c->fn(s, &cmd);
		return;
	}
	imap_tagged(s, cmd.tag, "BAD", "Unknown command");
}

static void append_stream(struct imap_session *s)
{
	while (s->append_left > 0) {
		const char *in;
		size_t avail = net_conn_peek(s->conn, &in);
		if (avail == 0)
			return;
		if (avail > s->append_left)
			avail = (size_t)s->append_left;
		if (memchr(in, '\0', avail) != NULL)
			s->append_nul = 1;
		if (s->append != NULL) {
			const char *err;
			if (store_delivery_write(s->append, in, avail, &err) < 0) {
				log_error("imap", s->id, "event=store-error error=\"%s\"", err);
				store_delivery_abort(s->append);
				s->append = NULL;
			}
		}
		net_conn_consume(s->conn, avail);
		s->append_left -= avail;
	}
	s->append_streaming = 0;
	imap_parser_literal_streamed(s->parser);
	imap_append_literal_done(s);
}

static int literal_announced(struct imap_session *s)
{
	uint64_t size = imap_parser_literal_size(s->parser);
	int sync = imap_parser_literal_is_sync(s->parser);
	const char *cmd = imap_parser_command(s->parser);
	size_t nargs;
	imap_parser_args(s->parser, &nargs);
	/* LITERAL- (RFC 7888 5): a {n+} over 4096 octets is refused; its
	 * octets come anyway and are skipped (section 4, choice 1), so the
	 * session goes on; for APPEND the BAD carries TOOBIG, as everywhere */
	if (!sync && !s->srv->config->imap_literal_plus && size > LITERAL_MINUS_MAX) {
		imap_parser_literal_reject(s->parser,
					   "[TOOBIG] Non-synchronizing literal over 4096 octets "
					   "(LITERAL-): send it as {n}");
		return -1;
	}
	/* APPEND mailbox 1*([flags] [date] literal): messages stream to the store */
	if (s->state != IMAP_NOTAUTH && cmd != NULL && strcasecmp(cmd, "APPEND") == 0 &&
	    nargs >= 1)
		return imap_append_literal(s, size, sync);
	/* a literal8 is a message (RFC 3516 7, RFC 6855 4), never an astring */
	if (imap_parser_literal_is_literal8(s->parser)) {
		imap_parser_literal_reject(s->parser, "literal8 is only for APPEND");
		return -1;
	}
	/* other literals are buffered by the parser, within its limits; a
	 * refused one never gets a "+" (the client then sends no octets) */
	if (imap_parser_literal_accept(s->parser) < 0)
		return -1;
	if (sync)
		imap_printf(s, "+ Ready for literal data\r\n");
	return 0;
}

/* The parser is in the ERROR state: BAD, drop what the command had
 * streamed, and go on with the next command. -1 when the session closed. */
static int parse_error(struct imap_session *s)
{
	char tag[128];
	snprintf(tag, sizeof(tag), "%s", imap_parser_error_tag(s->parser));
	imap_tagged(s, tag, s->reject_no ? "NO" : "BAD", "%s", imap_parser_error(s->parser));
	s->reject_no = 0;
	if (imap_parser_error_fatal(s->parser)) {
		imap_session_close(s, "Cannot resynchronise with the command stream");
		return -1;
	}
	imap_append_abort(s);
	imap_parser_reset(s->parser);
	return s->state == IMAP_LOGOUT ? -1 : 0;
}

static void imap_input(void *arg)
{
	struct imap_session *s = arg;
	while (s->state != IMAP_LOGOUT && !s->busy && s->cont == NULL) {
		if (!net_conn_can_process(s->conn))
			return;
		if (s->append_streaming) {
			append_stream(s);
			if (s->append_streaming)
				return;
			continue;
		}
		if (s->idling || s->sasl_step > 0) {
			char *line;
			size_t len;
			int r = net_conn_readline(s->conn, PREAUTH_LINE, &line, &len);
			if (r == 0)
				return;
			if (r < 0) {
				line = "";
				len = 0;
			}
			if (s->idling)
				imap_idle_input(s, line, len);
			else
				imap_sasl_input(s, line, len);
			continue;
		}
		const char *data;
		size_t avail = net_conn_peek(s->conn, &data);
		if (avail == 0)
			return;
		size_t used = 0;
		enum imap_parse_result r = imap_parser_feed(s->parser, data, avail, &used);
		net_conn_consume(s->conn, used);
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			break;
		case IMAP_PARSE_LITERAL:
			/* a refused literal is answered now, not when more input
			 * comes: the client waits for "+" or the BAD */
			if (literal_announced(s) < 0 && parse_error(s) < 0)
				return;
			break;
		case IMAP_PARSE_ERROR:
			if (parse_error(s) < 0)
				return;
			break;
		case IMAP_PARSE_DONE:
			dispatch(s);
			imap_parser_reset(s->parser);
			set_limits(s);
			break;
		}
	}
}

static void imap_writable(void *arg)
{
	struct imap_session *s = arg;
	if (s->cont != NULL)
		s->cont(s);
}

static void *imap_open(net_conn_t *conn, void *proto_ctx)
{
	struct imap_server *srv = proto_ctx;
	struct imap_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->conn = conn;
	s->worker = net_conn_worker(conn);
	s->srv = srv;
	s->id = net_conn_id(conn);
	s->state = IMAP_NOTAUTH;
	s->handle = net_handle_new(s->worker, s);
	if (s->handle == NULL) {
		free(s);
		return NULL;
	}
	struct imap_parser_limits lim = { PREAUTH_LINE, PREAUTH_LITERAL, 2 * PREAUTH_LITERAL,
					  MAX_DEPTH, 16 };
	s->parser = imap_parser_new(&lim);
	/* RFC 3501 5.4: autologout timer of at least 30 minutes */
	net_conn_set_timeout(conn, 30 * 60);
	log_info("imap", s->id, "event=connect peer=%s tls=%s", net_conn_peer(conn),
		 net_conn_is_tls(conn) ? "yes" : "no");
	imap_printf(s, "* OK [CAPABILITY ");
	imap_write_capabilities(s);
	imap_printf(s, "] Petrel IMAP4rev1 ready\r\n");
	return s;
}

static void imap_timeout(void *arg)
{
	struct imap_session *s = arg;
	log_info("imap", s->id, "event=timeout");
	imap_session_close(s, "Autologout; idle for too long");
}

static void imap_shutdown(void *arg)
{
	struct imap_session *s = arg;
	s->stopping = 1;
	if (s->busy)
		return; /* the reply comes, then the close (see imap_cmd_done) */
	imap_session_close(s, "Server shutting down");
}

static void imap_closed(void *arg)
{
	struct imap_session *s = arg;
	log_info("imap", s->id, "event=disconnect user=%s", s->user[0] ? s->user : "-");
	imap_fetch_abort(s);
	imap_mailbox_close(s);
	imap_append_abort(s);
	imap_parser_free(s->parser);
	sasl_free(s->scram);
	free(s->saved);
	free(s->sel_rename_to);
	net_handle_detach(&s->handle);
	free(s);
}

const struct net_proto_ops imap_proto_ops = {
	.name = "imap",
	.busy_reply = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
	.open = imap_open,
	.input = imap_input,
	.timeout = imap_timeout,
	.shutdown = imap_shutdown,
	.writable = imap_writable,
	.closed = imap_closed,
};
