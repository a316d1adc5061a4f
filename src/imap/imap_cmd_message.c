/* APPEND, CLOSE, UNSELECT, EXPUNGE, STORE, COPY, MOVE (RFC 3501 6.3.11,
 * 6.4; UIDPLUS RFC 4315; MOVE RFC 6851). Writes go through the store's
 * committer; the session waits (paused) for durability before replying. */
#include "imap/imap_session.h"

#include "core/config.h"
#include "core/log.h"
#include "mime/mime_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A copy of what a store result says, handed to the session's thread. */
struct op_copy {
	int status;
	enum store_op_error code;
	uint32_t dst_uidvalidity;
	uint32_t *src_uids, *dst_uids;
	size_t n_copied;
	struct store_msg *changed;
	char **changed_kw;
	size_t n_changed;
	uint32_t *modified;
	size_t n_modified;
	uint32_t *expunged;
	size_t n_expunged;
	/* what the command needs to finish */
	void (*finish)(struct imap_session *s, struct op_copy *oc);
	uint32_t flags_silent;
	int own_view;            /* flags or expunge of the selected mailbox */
	uint64_t highestmodseq;
	uint32_t *req;           /* STORE: the uids it named, sorted */
	size_t n_req;
};

static void op_copy_free(struct op_copy *oc)
{
	free(oc->src_uids);
	free(oc->dst_uids);
	for (size_t i = 0; i < oc->n_changed; i++)
		free(oc->changed_kw[i]);
	free(oc->changed);
	free(oc->changed_kw);
	free(oc->modified);
	free(oc->expunged);
	free(oc->req);
	free(oc);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t *dup_u32(const uint32_t *a, size_t n)
{
	uint32_t *r = malloc((n ? n : 1) * sizeof(*r));
	if (r != NULL && n > 0)
		memcpy(r, a, n * sizeof(*r));
	return r;
}

static void op_finish(void *session, void *arg)
{
	struct imap_session *s = session;
	struct op_copy *oc = arg;
	if (s != NULL) {
		/* flag changes are reported by the command itself: the sync
		 * skips that modseq (only a flag step's own, never the
		 * mailbox's, which may be another session's change) */
		if (s->sel != NULL && oc->status == 0 && oc->n_changed > 0)
			s->sel->own_modseq = oc->changed[0].modseq;
		/* our own change: taken as it is when nothing else happened
		 * since the view was synced, else picked up from the store */
		uint64_t modseq = oc->n_changed > 0 ? oc->changed[0].modseq
				  : oc->n_expunged > 0 ? oc->highestmodseq : 0;
		if (!oc->own_view || oc->status != 0 ||
		    imap_mailbox_own_change(s, modseq, oc->highestmodseq, oc->expunged,
					    oc->n_expunged) < 0)
			s->notify_pending = 1;
		oc->finish(s, oc);
		imap_cmd_done(s);
	}
	op_copy_free(oc);
}

struct op_ctx {
	net_handle_t *h;
	void (*finish)(struct imap_session *s, struct op_copy *oc);
	uint32_t flags_silent;
	int own_view;
	uint32_t *req;
	size_t n_req;
};

static void op_result(void *ctx, const struct store_op_result *res)
{
	struct op_ctx *c = ctx;
	struct op_copy *oc = calloc(1, sizeof(*oc));
	oc->status = res->status;
	oc->code = res->code;
	oc->highestmodseq = res->highestmodseq;
	oc->dst_uidvalidity = res->dst_uidvalidity;
	oc->n_copied = res->n_copied;
	oc->src_uids = dup_u32(res->src_uids, res->n_copied);
	oc->dst_uids = dup_u32(res->dst_uids, res->n_copied);
	oc->n_changed = res->n_changed;
	oc->changed = malloc((res->n_changed ? res->n_changed : 1) * sizeof(*oc->changed));
	oc->changed_kw = malloc((res->n_changed ? res->n_changed : 1) * sizeof(char *));
	for (size_t i = 0; i < res->n_changed; i++) {
		oc->changed[i] = res->changed[i];
		oc->changed_kw[i] = strdup(res->changed[i].keywords ? res->changed[i].keywords : "");
		oc->changed[i].keywords = NULL;
	}
	oc->n_modified = res->n_modified;
	oc->modified = dup_u32(res->modified, res->n_modified);
	oc->n_expunged = res->n_expunged;
	oc->expunged = dup_u32(res->expunged, res->n_expunged);
	if (oc->expunged == NULL)
		oc->n_expunged = 0;
	oc->finish = c->finish;
	oc->flags_silent = c->flags_silent;
	oc->own_view = c->own_view;
	oc->req = c->req;
	oc->n_req = c->n_req;
	net_handle_post(c->h, op_finish, oc);
	free(c);
}

/* own_view: op changes only the selected mailbox's flags or expunges from
 * it (see imap_mailbox_own_change). req: uids for the finish step (taken
 * over, freed with the result), NULL when it needs none. */
static void submit(struct imap_session *s, struct imap_cmd *cmd, store_op_t *op,
		   void (*finish)(struct imap_session *, struct op_copy *), uint32_t silent,
		   int own_view, uint32_t *req, size_t n_req)
{
	struct op_ctx *c = malloc(sizeof(*c));
	c->h = net_handle_ref(s->handle);
	c->finish = finish;
	c->flags_silent = silent;
	c->own_view = own_view;
	c->req = req;
	c->n_req = n_req;
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_result, c);
}

static const char *op_error(enum store_op_error code)
{
	switch (code) {
	case STORE_ERR_NONEXISTENT:
		return "[TRYCREATE] No such mailbox";
	case STORE_ERR_EXISTS:
		return "[ALREADYEXISTS] Mailbox exists";
	case STORE_ERR_INVALID:
		return "[CANNOT] Not allowed";
	default:
		return "[SERVERBUG] Operation failed";
	}
}

/* ------------------------------------------------------------------ APPEND */

/* APPEND mailbox 1*([SP flag-list] [SP date-time] SP literal) (RFC 3502
 * MULTIAPPEND; one message is the RFC 3501 form). Each literal streams into
 * its own store delivery as it arrives; the deliveries gather in a store
 * group that is committed when the command line ends, so that every
 * message is stored or none is (RFC 3502 6.3.11). The first failure sticks:
 * later synchronizing literals are refused at once (no "+", the command
 * ends there: "The server MAY return an error before processing all the
 * message arguments"), later {n+} octets, which come anyway, are skipped. */
struct append_state {
	int64_t mailbox_id;
	uint32_t uidvalidity;
	char mailbox[STORE_MAILBOX_NAME_MAX + 1];
	store_delivery_group_t *group;
	size_t n_msgs;
	uint64_t total;          /* announced octets of every message so far */
	size_t next_arg;         /* where the next message's options start */
	size_t utf8_list;        /* index of a UTF8 message's "(literal8)", 0 none */
	/* the first failure: "NO" or "BAD" and the text, NULL while none */
	const char *status;
	char text[160];
};

static void __attribute__((format(printf, 3, 4)))
append_fail(struct append_state *st, const char *status, const char *fmt, ...)
{
	va_list ap;
	if (st->status != NULL)
		return;
	st->status = status;
	va_start(ap, fmt);
	vsnprintf(st->text, sizeof(st->text), fmt, ap);
	va_end(ap);
}

static const char append_syntax[] =
	"Syntax: APPEND mailbox 1*([(flags)] [date-time] (literal | ~literal | UTF8 (~literal)))";

void imap_append_abort(struct imap_session *s)
{
	store_delivery_abort(s->append);
	s->append = NULL;
	s->append_streaming = 0;
	s->append_left = 0;
	if (s->append_state != NULL) {
		store_delivery_group_abort(s->append_state->group);
		free(s->append_state);
		s->append_state = NULL;
	}
}

static int month_index(const char *m)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	for (int i = 0; i < 12; i++)
		if (strncasecmp(m, months[i], 3) == 0)
			return i;
	return -1;
}

/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE */
static int parse_date_time(const char *str, time_t *out)
{
	int day, year, hh, mm, ss, zone;
	char mon[4];
	const char *p = str;
	if (*p == ' ')
		p++;
	if (sscanf(p, "%2d-%3s-%4d %2d:%2d:%2d %5d", &day, mon, &year, &hh, &mm, &ss, &zone) != 7)
		return -1;
	int m = month_index(mon);
	if (m < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1900)
		return -1;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = m, .tm_mday = day, .tm_hour = hh,
			 .tm_min = mm, .tm_sec = ss };
	time_t t = timegm(&tm);
	int zs = zone < 0 ? -1 : 1, za = zone < 0 ? -zone : zone;
	t -= zs * ((za / 100) * 3600 + (za % 100) * 60);
	*out = t;
	return 0;
}

/* The first literal of the command: the mailbox must exist before any
 * octet is taken (RFC 3501 6.3.11: [TRYCREATE], never created). */
static struct append_state *append_start(struct imap_session *s)
{
	size_t n;
	const struct imap_arg *args = imap_parser_args(s->parser, &n);
	struct append_state *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->next_arg = 1;
	const char *raw = imap_arg_string(&args[0]);
	/* modified UTF-7 may take up to 4 octets per octet of UTF-8 */
	if (raw == NULL || strlen(raw) > 4 * STORE_MAILBOX_NAME_MAX) {
		append_fail(st, "BAD", "%s", append_syntax);
		return st;
	}
	const char *err;
	char *uname = imap_mailbox_name_in(s, raw, &err); /* RFC 3501 5.1.3 */
	if (uname == NULL) {
		append_fail(st, "NO", "[CANNOT] Invalid mailbox name (%s): %s",
			    imap_utf8_names(s) ? "UTF-8" : "modified UTF-7, RFC 3501 5.1.3", err);
		return st;
	}
	if (strlen(uname) > STORE_MAILBOX_NAME_MAX) {
		free(uname);
		append_fail(st, "BAD", "%s", append_syntax);
		return st;
	}
	const char *name = strcasecmp(uname, "INBOX") == 0 ? "INBOX" : uname;
	snprintf(st->mailbox, sizeof(st->mailbox), "%s", name);
	free(uname);
	name = st->mailbox;
	struct store_mailbox_status mst;
	int r = store_mailbox_find(s->srv->store, s->user_id, name, &mst, &err);
	if (r == 1) {
		st->mailbox_id = mst.id;
		st->uidvalidity = mst.uidvalidity;
		if ((st->group = store_delivery_group_new(s->srv->store)) == NULL)
			append_fail(st, "NO", "[SERVERBUG] Out of memory");
	} else if (r == 0) {
		append_fail(st, "NO", "[TRYCREATE] No such mailbox");
	} else {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		append_fail(st, "NO", "[SERVERBUG] Cannot read the mailbox");
	}
	return st;
}

int imap_append_literal(struct imap_session *s, uint64_t size, int sync)
{
	if (s->append_state == NULL && (s->append_state = append_start(s)) == NULL) {
		imap_parser_literal_reject(s->parser, "[SERVERBUG] Out of memory");
		return -1;
	}
	struct append_state *st = s->append_state;
	const struct config_limits *lim = &s->srv->config->limits;
	st->n_msgs++;
	if (size == 0)
		/* RFC 3502 6.3.11: "A zero-length message literal argument is
		 * an error, and MUST return a NO. This can be used to cancel
		 * the append." */
		append_fail(st, "NO", "APPEND cancelled (zero-length message)");
	else if (size > lim->max_message_size)
		/* RFC 7889 3: over APPENDLIMIT, a tagged TOOBIG */
		append_fail(st, "NO", "[TOOBIG] Message %zu is too big (APPENDLIMIT=%llu)",
			    st->n_msgs, (unsigned long long)lim->max_message_size);
	else if (size > lim->max_multiappend_size - st->total)
		/* RFC 9051 7.1: LIMIT, an implementation limit */
		append_fail(st, "NO", "[LIMIT] The messages of one APPEND exceed %llu octets",
			    (unsigned long long)lim->max_multiappend_size);
	if (st->status != NULL && sync) {
		/* no "+" for octets the command would drop: the client sends
		 * no literal, and the command ends at "{n}" (RFC 3501 7.5) */
		s->reject_no = strcmp(st->status, "NO") == 0;
		imap_parser_literal_reject(s->parser, st->text);
		return -1;
	}
	if (st->status == NULL) {
		st->total += size;
		if ((s->append = store_delivery_new(s->srv->store)) == NULL)
			append_fail(st, "NO", "[SERVERBUG] Out of memory");
	}
	/* a failed command's {n+} octets come anyway (RFC 7888 4): skipped */
	s->append_left = size;
	s->append_nul = 0;
	s->append_streaming = 1;
	imap_parser_literal_stream(s->parser);
	if (sync)
		imap_printf(s, "+ Ready for literal data\r\n");
	return 0;
}

/* A UTF8 message's literal8 sits in "(" ")" (RFC 6855 4: utf8-literal =
 * "UTF8" SP "(" literal8 ")"), complete once the list has closed. */
static int utf8_list_ok(const struct imap_arg *args, size_t n, size_t at)
{
	return at < n && args[at].type == IMAP_ARG_LIST && args[at].list_count == 1 &&
	       args[at].list[0].type == IMAP_ARG_STREAMED && args[at].list[0].literal8;
}

/* A literal has been streamed: check the options before it (flags, date)
 * and hand the message to the group. */
void imap_append_literal_done(struct imap_session *s)
{
	struct append_state *st = s->append_state;
	store_delivery_t *d = s->append;
	s->append = NULL;
	size_t n;
	const struct imap_arg *args = imap_parser_args(s->parser, &n);
	uint32_t flags = 0;
	char *keywords = NULL;
	time_t date = time(NULL);
	int utf8 = 0;
	/* the literal is the last argument so far; within "UTF8 (" the list
	 * is still open, so UTF8 is */
	int ok = n >= 2 && st->next_arg <= n - 1;
	int literal8 = 0;
	if (ok && args[n - 1].type == IMAP_ARG_ATOM && strcasecmp(args[n - 1].str, "UTF8") == 0)
		utf8 = literal8 = 1;
	else if (!ok || args[n - 1].type != IMAP_ARG_STREAMED)
		ok = 0;
	else
		literal8 = args[n - 1].literal8; /* BINARY (RFC 3516 4.4) */
	if (ok && st->utf8_list != 0 && !utf8_list_ok(args, n, st->utf8_list))
		ok = 0;
	size_t i = st->next_arg;
	if (ok && i < n - 1 && args[i].type == IMAP_ARG_LIST) {
		if (imap_parse_flags(&args[i], &flags, &keywords) < 0)
			ok = 0;
		i++;
	}
	if (ok && i < n - 1) {
		const char *dt = imap_arg_string(&args[i]);
		if (dt == NULL || args[i].type != IMAP_ARG_QUOTED || parse_date_time(dt, &date) < 0)
			ok = 0;
		i++;
	}
	if (i != n - 1)
		ok = 0;
	st->next_arg = n + (size_t)utf8; /* after the "(literal8)" to come */
	st->utf8_list = utf8 ? n : 0;
	if (!ok)
		append_fail(st, "BAD", "%s", append_syntax);
	else if (s->append_nul && !literal8)
		/* a literal is *CHAR8, no NUL (RFC 9051 9) */
		append_fail(st, "BAD", "NUL in literal (use literal8)");
	else if (s->append_nul)
		/* RFC 3516 4.4: a mailbox that cannot keep binary content
		 * fails the APPEND with UNKNOWN-CTE. Petrel keeps messages
		 * as sent, and a message with NUL octets could be returned
		 * only by BINARY[] (RFC 9051 4.3: BODY[] never carries NUL). */
		append_fail(st, "NO", "[UNKNOWN-CTE] Messages with NUL octets are not stored");
	else if (st->status == NULL && d == NULL)
		append_fail(st, "NO", "[SERVERBUG] Cannot store the message");
	if (st->status == NULL) {
		/* Raw 8-bit header octets are accepted without ENABLE
		 * UTF8=ACCEPT (RFC 6855 4 would refuse them): old mail
		 * synchronised by mbsync and friends has them, and refusing
		 * loses it. Dovecot accepts them too. */
		const char *err;
		if (mime_store_attach(d, &err) < 0)
			log_warn("imap", s->id, "event=parse-failed error=\"%s\"", err);
		store_delivery_add_mailbox(d, st->mailbox_id, flags, keywords);
		if (store_delivery_group_add(st->group, d, date, &err) < 0) {
			log_error("imap", s->id, "event=store-error error=\"%s\"", err);
			append_fail(st, "NO", "[SERVERBUG] Cannot store the message");
		}
		d = NULL; /* the group's now, even when it failed */
	}
	store_delivery_abort(d);
	free(keywords);
}

struct append_reply {
	net_handle_t *h;
	char tag[128];
	char mailbox[STORE_MAILBOX_NAME_MAX + 1];
	int64_t mailbox_id;
	uint32_t uidvalidity;
	int status;
	uint32_t *uids;
	size_t n;
};

static void append_finish(void *session, void *arg)
{
	struct imap_session *s = session;
	struct append_reply *r = arg;
	if (s != NULL) {
		char *set = r->status == 0 ? imap_seqset_format(r->uids, r->n) : NULL;
		if (set != NULL) {
			if (s->sel != NULL)
				s->notify_pending = 1;
			imap_mailbox_sync(s, 1);
			/* RFC 4315 3, RFC 3502: every uid, in append order */
			imap_tagged(s, r->tag, "OK", "[APPENDUID %u %s] APPEND completed", r->uidvalidity,
				    set);
		} else if (r->status == 0) {
			imap_mailbox_sync(s, 1);
			imap_tagged(s, r->tag, "OK", "APPEND completed");
		} else {
			/* nothing was stored; most likely the mailbox was
			 * deleted (or renamed, or replaced) meanwhile */
			struct store_mailbox_status mst;
			const char *err;
			int e = store_mailbox_find(s->srv->store, s->user_id, r->mailbox, &mst, &err);
			if (e == 0)
				imap_tagged(s, r->tag, "NO", "[TRYCREATE] No such mailbox");
			else if (e == 1 && mst.id != r->mailbox_id)
				imap_tagged(s, r->tag, "NO", "Mailbox replaced during APPEND; try again");
			else
				imap_tagged(s, r->tag, "NO", "[SERVERBUG] APPEND failed");
		}
		free(set);
		imap_cmd_done(s);
	}
	free(r->uids);
	free(r);
}

static void append_cb(void *ctx, const struct store_delivery_result *res)
{
	struct append_reply *r = ctx;
	r->status = res->status;
	if (res->status == 0 && (r->uids = dup_u32(res->uids, res->n_rcpts)) != NULL)
		r->n = res->n_rcpts;
	if (res->status != 0)
		log_warn("imap", 0, "event=append-failed error=\"%s\"", res->error);
	/* the uids come ascending: one mailbox, one savepoint */
	net_handle_post(r->h, append_finish, r);
}

void imap_cmd_append(struct imap_session *s, struct imap_cmd *cmd)
{
	/* Reached when the command line is complete: every literal was
	 * streamed and handed to the group (imap_append_literal_done). */
	struct append_state *st = s->append_state;
	s->append_state = NULL;
	if (st == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "%s", append_syntax);
		return;
	}
	/* nothing may follow the last message but its UTF8 list */
	if (st->next_arg != cmd->n_args ||
	    (st->utf8_list != 0 && !utf8_list_ok(cmd->args, cmd->n_args, st->utf8_list)))
		append_fail(st, "BAD", "%s", append_syntax);
	struct append_reply *r = st->status == NULL ? calloc(1, sizeof(*r)) : NULL;
	if (st->status == NULL && r == NULL)
		append_fail(st, "NO", "[SERVERBUG] Out of memory");
	if (st->status != NULL) {
		imap_tagged(s, cmd->tag, st->status, "%s", st->text);
		store_delivery_group_abort(st->group);
		free(st);
		return;
	}
	r->h = net_handle_ref(s->handle);
	snprintf(r->tag, sizeof(r->tag), "%s", cmd->tag);
	snprintf(r->mailbox, sizeof(r->mailbox), "%s", st->mailbox);
	r->mailbox_id = st->mailbox_id;
	r->uidvalidity = st->uidvalidity;
	imap_cmd_async(s, cmd);
	store_delivery_group_commit(st->group, append_cb, r);
	free(st);
}

/* --------------------------------------------------- CLOSE/UNSELECT/EXPUNGE */

static void expunge_finish(struct imap_session *s, struct op_copy *oc)
{
	if (oc->status != 0) {
		imap_tagged(s, s->cur.tag, "NO", "%s", op_error(oc->code));
		return;
	}
	if (strcmp(s->cur.name, "CLOSE") == 0) {
		/* CLOSE sends no EXPUNGE responses (RFC 3501 6.4.2) */
		imap_mailbox_close(s);
		s->state = IMAP_AUTH;
		imap_tagged(s, s->cur.tag, "OK", "CLOSE completed");
		return;
	}
	imap_mailbox_sync(s, 1);
	/* RFC 7162 3.2.7, 3.2.9: with QRESYNC the new HIGHESTMODSEQ */
	if (s->qresync && s->sel != NULL)
		imap_tagged(s, s->cur.tag, "OK", "[HIGHESTMODSEQ %llu] EXPUNGE completed",
			    (unsigned long long)imap_mailbox_highestmodseq(s->sel));
	else
		imap_tagged(s, s->cur.tag, "OK", "EXPUNGE completed");
}

/* uids of \Deleted messages in the view (optionally within a uid set) */
struct deleted_ctx {
	struct imap_session *s;
	uint32_t *uids;
	size_t n;
	const uint32_t *within;
	size_t n_within;
};

static void deleted_cb(void *ctx, uint32_t uid)
{
	struct deleted_ctx *dc = ctx;
	if (imap_seq_of_uid(dc->s->sel, uid) == 0)
		return;
	if (dc->within != NULL) {
		size_t lo = 0, hi = dc->n_within;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (dc->within[mid] < uid)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo >= dc->n_within || dc->within[lo] != uid)
			return;
	}
	uint32_t *n = realloc(dc->uids, (dc->n + 1) * sizeof(*n));
	if (n == NULL)
		return;
	dc->uids = n;
	dc->uids[dc->n++] = uid;
}

static void expunge_common(struct imap_session *s, struct imap_cmd *cmd, const uint32_t *within,
			   size_t n_within)
{
	struct deleted_ctx dc = { .s = s, .within = within, .n_within = n_within };
	struct imap_mailbox *mb = s->sel;
	const char *err;
	/* only \Deleted messages are read, within the view (and the set) */
	uint32_t lo = mb->n > 0 ? mb->uids[0] : 1, hi = mb->n > 0 ? mb->uids[mb->n - 1] : 0;
	if (within != NULL && n_within > 0) {
		if (within[0] > lo)
			lo = within[0];
		if (within[n_within - 1] < hi)
			hi = within[n_within - 1];
	} else if (within != NULL) {
		hi = 0; /* an empty set */
	}
	if (lo <= hi &&
	    store_msg_scan_deleted(s->srv->store, mb->id, lo, hi, deleted_cb, &dc, &err) < 0) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot read mailbox");
		free(dc.uids);
		return;
	}
	if (dc.n == 0) {
		if (strcmp(cmd->name, "CLOSE") == 0) {
			imap_mailbox_close(s);
			s->state = IMAP_AUTH;
		} else {
			imap_mailbox_sync(s, 1);
		}
		imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->name);
		free(dc.uids);
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_expunge(op, s->sel->id, dc.uids, dc.n);
	free(dc.uids);
	submit(s, cmd, op, expunge_finish, 0, 1, NULL, 0);
}

void imap_cmd_close(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "CLOSE takes no arguments");
		return;
	}
	if (s->sel->readonly) {
		imap_mailbox_close(s);
		s->state = IMAP_AUTH;
		imap_tagged(s, cmd->tag, "OK", "CLOSE completed");
		return;
	}
	expunge_common(s, cmd, NULL, 0);
}

void imap_cmd_unselect(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "UNSELECT takes no arguments");
		return;
	}
	imap_mailbox_close(s);
	s->state = IMAP_AUTH;
	imap_tagged(s, cmd->tag, "OK", "UNSELECT completed");
}

void imap_cmd_expunge(struct imap_session *s, struct imap_cmd *cmd)
{
	if (s->sel->readonly) {
		imap_tagged(s, cmd->tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (cmd->uid) {
		/* UID EXPUNGE set (UIDPLUS, RFC 4315 2.1) */
		const char *set = cmd->n_args == 1 ? imap_arg_atom(&cmd->args[0]) : NULL;
		uint32_t *uids;
		size_t n;
		if (set == NULL || imap_seqset_uids(s, set, 1, &uids, &n) < 0) {
			imap_tagged(s, cmd->tag, "BAD", "Syntax: UID EXPUNGE uid-set");
			return;
		}
		expunge_common(s, cmd, uids, n);
		free(uids);
		return;
	}
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "EXPUNGE takes no arguments");
		return;
	}
	expunge_common(s, cmd, NULL, 0);
}

/* ------------------------------------------------------------------- STORE */

/* "[MODIFIED set]" (RFC 7162 3.1.3): message numbers, or UIDs for UID
 * STORE; "" when none. malloc'd, NULL when out of memory. */
static char *modified_code(struct imap_session *s, const uint32_t *uids, size_t n, int uid)
{
	if (n == 0)
		return strdup("");
	uint32_t *v = malloc(n * sizeof(*v));
	if (v == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t x = uid ? uids[i] : imap_seq_of_uid(s->sel, uids[i]);
		if (x != 0)
			v[k++] = x;
	}
	qsort(v, k, sizeof(*v), cmp_u32);
	char *set = imap_seqset_format(v, k);
	free(v);
	if (set == NULL || k == 0)
		return set;
	char *code = malloc(strlen(set) + 16);
	if (code != NULL)
		sprintf(code, "[MODIFIED %s] ", set);
	free(set);
	return code;
}

struct unchanged_ctx {
	struct imap_session *s;
	struct op_copy *oc;
};

static void store_unchanged_cb(void *ctx, const struct store_msg *m)
{
	struct unchanged_ctx *u = ctx;
	struct imap_session *s = u->s;
	uint32_t seq = imap_seq_of_uid(s->sel, m->uid);
	if (seq == 0)
		return;
	imap_printf(s, "* %u FETCH (", seq);
	if (s->cur.uid || s->condstore)
		imap_printf(s, "UID %u ", m->uid);
	imap_printf(s, "FLAGS ");
	imap_write_flags(s, m->flags, m->keywords, !s->rev2 && imap_is_recent(s->sel, m->uid));
	if (s->condstore)
		imap_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	imap_write(s, ")\r\n", 3);
}

/* RFC 9051 6.4.6 (RFC 3501 6.4.6): without .SILENT, "the new value of the
 * flags is returned as if a FETCH of those flags was done" for every
 * message of the set, also those the STORE left as they were (adding a
 * flag already set); those that failed UNCHANGEDSINCE are in MODIFIED
 * instead (RFC 7162 3.1.3). */
static void store_report_unchanged(struct imap_session *s, struct op_copy *oc)
{
	if (oc->n_req == 0 || oc->req == NULL || oc->n_req <= oc->n_changed + oc->n_modified)
		return;
	uint32_t *done = malloc((oc->n_changed + oc->n_modified + 1) * sizeof(*done));
	uint32_t *rest = malloc(oc->n_req * sizeof(*rest));
	if (done == NULL || rest == NULL) {
		free(done);
		free(rest);
		return;
	}
	size_t nd = 0, nr = 0;
	for (size_t i = 0; i < oc->n_changed; i++)
		done[nd++] = oc->changed[i].uid;
	for (size_t i = 0; i < oc->n_modified; i++)
		done[nd++] = oc->modified[i];
	qsort(done, nd, sizeof(*done), cmp_u32);
	for (size_t i = 0; i < oc->n_req; i++)
		if (bsearch(&oc->req[i], done, nd, sizeof(*done), cmp_u32) == NULL)
			rest[nr++] = oc->req[i];
	struct unchanged_ctx u = { s, oc };
	const char *err;
	if (nr > 0 && store_msg_get_uids(s->srv->store, s->sel->id, rest, nr, store_unchanged_cb,
					 &u, &err) < 0)
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
	free(done);
	free(rest);
}

static void store_finish(struct imap_session *s, struct op_copy *oc)
{
	if (oc->status != 0) {
		imap_tagged(s, s->cur.tag, "NO", "%s", op_error(oc->code));
		return;
	}
	struct imap_mailbox *mb = s->sel;
	for (size_t i = 0; i < oc->n_changed; i++) {
		const struct store_msg *m = &oc->changed[i];
		uint32_t seq = imap_seq_of_uid(mb, m->uid);
		if (seq == 0)
			continue;
		/* RFC 7162 3.1.3: with CONDSTORE the new MODSEQ goes out even
		 * for .SILENT; 3.2.4: with UID */
		if (oc->flags_silent && !s->condstore)
			continue;
		imap_printf(s, "* %u FETCH (", seq);
		if (s->cur.uid || s->condstore)
			imap_printf(s, "UID %u ", m->uid);
		if (!oc->flags_silent) {
			imap_printf(s, "FLAGS ");
			imap_write_flags(s, m->flags, oc->changed_kw[i],
					 !s->rev2 && imap_is_recent(mb, m->uid));
		}
		if (s->condstore)
			imap_printf(s, "%sMODSEQ (%llu)", oc->flags_silent ? "" : " ",
				    (unsigned long long)m->modseq);
		imap_write(s, ")\r\n", 3);
	}
	if (!oc->flags_silent)
		store_report_unchanged(s, oc);
	char *code = modified_code(s, oc->modified, oc->n_modified, s->cur.uid);
	imap_mailbox_sync(s, s->cur.uid);
	imap_tagged(s, s->cur.tag, "OK", "%sSTORE completed", code != NULL ? code : "");
	free(code);
}

void imap_cmd_store(struct imap_session *s, struct imap_cmd *cmd)
{
	/* STORE set [(store-modifiers)] item value (RFC 4466 2.5) */
	int has_mod = cmd->n_args == 4;
	const char *set = cmd->n_args == 3 || has_mod ? imap_arg_atom(&cmd->args[0]) : NULL;
	const char *what = set != NULL ? imap_arg_atom(&cmd->args[1 + has_mod]) : NULL;
	if (set == NULL || what == NULL) {
		imap_tagged(s, cmd->tag, "BAD",
			    "Syntax: STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] (flags)");
		return;
	}
	/* UNCHANGEDSINCE (RFC 7162 3.1.3), the only modifier, at most once */
	int conditional = 0;
	uint64_t unchangedsince = 0;
	if (has_mod) {
		const struct imap_arg *m = &cmd->args[1];
		const char *name = m->type == IMAP_ARG_LIST && m->list_count == 2
					   ? imap_arg_atom(&m->list[0])
					   : NULL;
		const char *num = name != NULL ? imap_arg_atom(&m->list[1]) : NULL;
		uint64_t v = 0;
		int ok = name != NULL && num != NULL && strcasecmp(name, "UNCHANGEDSINCE") == 0 &&
			 m->list[1].type == IMAP_ARG_ATOM && *num != '\0' && strlen(num) <= 19;
		for (const char *p = num; ok && *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				ok = 0;
			else
				v = v * 10 + (uint64_t)(*p - '0');
		}
		if (!ok || v > INT64_MAX) {
			imap_tagged(s, cmd->tag, "BAD", "Syntax: STORE modifier (UNCHANGEDSINCE mod-sequence)");
			return;
		}
		conditional = 1;
		unchangedsince = v;
	}
	enum store_flags_mode mode = STORE_FLAGS_SET;
	const char *w = what;
	if (*w == '+')
		mode = STORE_FLAGS_ADD, w++;
	else if (*w == '-')
		mode = STORE_FLAGS_DEL, w++;
	int silent;
	if (strcasecmp(w, "FLAGS") == 0)
		silent = 0;
	else if (strcasecmp(w, "FLAGS.SILENT") == 0)
		silent = 1;
	else {
		imap_tagged(s, cmd->tag, "BAD", "Unknown STORE item");
		return;
	}
	uint32_t flags;
	char *kw;
	if (imap_parse_flags(&cmd->args[2 + has_mod], &flags, &kw) < 0) {
		imap_tagged(s, cmd->tag, "BAD", "Invalid flags");
		return;
	}
	uint32_t *uids;
	size_t n;
	if ((!cmd->uid && !imap_seqset_in_range(set, (uint32_t)s->sel->n)) ||
	    imap_seqset_uids(s, set, cmd->uid, &uids, &n) < 0) {
		free(kw);
		imap_tagged(s, cmd->tag, "BAD", "Invalid sequence set");
		return;
	}
	if (s->sel->readonly) {
		free(kw);
		free(uids);
		imap_tagged(s, cmd->tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (conditional)
		imap_condstore_enable(s);
	if (n == 0 || (conditional && unchangedsince == 0)) {
		/* UNCHANGEDSINCE 0 fails for every message (RFC 7162 3.1.3,
		 * example 7: a system flag always exists) */
		char *code = conditional ? modified_code(s, uids, n, cmd->uid) : NULL;
		free(kw);
		free(uids);
		imap_mailbox_sync(s, cmd->uid);
		imap_tagged(s, cmd->tag, "OK", "%sSTORE completed", code != NULL ? code : "");
		free(code);
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_flags(op, s->sel->id, uids, n, mode, flags, kw, unchangedsince);
	free(kw);
	if (silent) {
		free(uids);
		uids = NULL;
		n = 0;
	}
	submit(s, cmd, op, store_finish, (uint32_t)silent, 1, uids, n);
}

/* --------------------------------------------------------------- COPY/MOVE */

static void copy_finish(struct imap_session *s, struct op_copy *oc)
{
	if (oc->status != 0) {
		imap_tagged(s, s->cur.tag, "NO", "%s", op_error(oc->code));
		return;
	}
	char *src = imap_seqset_format(oc->src_uids, oc->n_copied);
	char *dst = imap_seqset_format(oc->dst_uids, oc->n_copied);
	int move = strcmp(s->cur.name, "MOVE") == 0;
	if (move) {
		/* RFC 6851 4.3: COPYUID in an untagged OK, then the expunges */
		if (oc->n_copied > 0)
			imap_untagged(s, "OK [COPYUID %u %s %s] Moved", oc->dst_uidvalidity, src, dst);
		imap_mailbox_sync(s, 1);
		imap_tagged(s, s->cur.tag, "OK", "MOVE completed");
	} else {
		imap_mailbox_sync(s, s->cur.uid);
		if (oc->n_copied > 0)
			imap_tagged(s, s->cur.tag, "OK", "[COPYUID %u %s %s] COPY completed",
				    oc->dst_uidvalidity, src, dst);
		else
			imap_tagged(s, s->cur.tag, "OK", "COPY completed");
	}
	free(src);
	free(dst);
}

static void copy_common(struct imap_session *s, struct imap_cmd *cmd, int move)
{
	const char *set = cmd->n_args == 2 ? imap_arg_atom(&cmd->args[0]) : NULL;
	const char *dest = cmd->n_args == 2 ? imap_arg_string(&cmd->args[1]) : NULL;
	if (set == NULL || dest == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s set mailbox", cmd->name);
		return;
	}
	uint32_t *uids;
	size_t n;
	if ((!cmd->uid && !imap_seqset_in_range(set, (uint32_t)s->sel->n)) ||
	    imap_seqset_uids(s, set, cmd->uid, &uids, &n) < 0) {
		imap_tagged(s, cmd->tag, "BAD", "Invalid sequence set");
		return;
	}
	if (move && s->sel->readonly) {
		free(uids);
		imap_tagged(s, cmd->tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	struct store_mailbox_status st;
	const char *err;
	char *udest = imap_mailbox_name_in(s, dest, &err); /* RFC 3501 5.1.3 */
	if (udest == NULL) {
		free(uids);
		imap_reply_bad_name(s, cmd->tag, err);
		return;
	}
	int r = store_mailbox_find(s->srv->store, s->user_id,
				     strcasecmp(udest, "INBOX") == 0 ? "INBOX" : udest, &st, &err);
	free(udest);
	if (r <= 0) {
		free(uids);
		imap_tagged(s, cmd->tag, "NO", r == 0 ? "[TRYCREATE] No such mailbox"
						      : "[SERVERBUG] Cannot read mailbox");
		return;
	}
	if (n == 0) {
		free(uids);
		imap_mailbox_sync(s, cmd->uid);
		imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->name);
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_copy(op, s->sel->id, uids, n, st.id, move);
	free(uids);
	submit(s, cmd, op, copy_finish, 0, 0, NULL, 0);
}

void imap_cmd_copy(struct imap_session *s, struct imap_cmd *cmd)
{
	copy_common(s, cmd, 0);
}

void imap_cmd_move(struct imap_session *s, struct imap_cmd *cmd)
{
	copy_common(s, cmd, 1);
}
