/* APPEND, CLOSE, UNSELECT, EXPUNGE, STORE, COPY, MOVE (RFC 3501 6.3.11,
 * 6.4; UIDPLUS RFC 4315; MOVE RFC 6851). Writes go through the store's
 * committer; the session waits (paused) for durability before replying. */
#include "imap/imap_session.h"

#include "core/config.h"
#include "core/log.h"
#include "mime/mime_store.h"

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

static void op_finish(struct imap_session *s, void *arg)
{
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
	struct imap_handle *h;
	void (*finish)(struct imap_session *s, struct op_copy *oc);
	uint32_t flags_silent;
	int own_view;
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
	imap_post(c->h, op_finish, oc);
	free(c);
}

/* own_view: op changes only the selected mailbox's flags or expunges from
 * it (see imap_mailbox_own_change) */
static void submit(struct imap_session *s, struct imap_cmd *cmd, store_op_t *op,
		   void (*finish)(struct imap_session *, struct op_copy *), uint32_t silent,
		   int own_view)
{
	struct op_ctx *c = malloc(sizeof(*c));
	c->h = imap_handle_ref(s);
	c->finish = finish;
	c->flags_silent = silent;
	c->own_view = own_view;
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

struct append_state {
	int valid;
	int utf8;        /* UTF8 (~{n}) data extension (RFC 6855 4) */
	char tag[128];
	int64_t mailbox_id;
	uint32_t uidvalidity;
	uint32_t flags;
	char *keywords;
	time_t date;
};

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

static void append_commit(struct imap_session *s, struct imap_cmd *cmd, struct append_state *st);


/* What follows the message: nothing, or for UTF8 the ")" closing its
 * list around a literal8 (RFC 6855 4: utf8-literal = "UTF8" SP "(" literal8
 * ")"). */
static int append_tail_ok(const struct imap_cmd *cmd, const struct append_state *st)
{
	size_t n = cmd->n_args;
	const struct imap_arg *a = cmd->args;
	if (!st->utf8)
		return n >= 2 && a[n - 1].type == IMAP_ARG_STREAMED;
	return n >= 3 && a[n - 1].type == IMAP_ARG_LIST && a[n - 1].list_count == 1 &&
	       a[n - 1].list[0].type == IMAP_ARG_STREAMED && a[n - 1].list[0].literal8;
}

void imap_cmd_append(struct imap_session *s, struct imap_cmd *cmd)
{
	/* Reached when the command is complete: the literal was streamed into
	 * s->append by the session and imap_append_literal_done ran. */
	struct append_state *st = s->append_state;
	s->append_state = NULL;
	if (st != NULL && !append_tail_ok(cmd, st))
		st->valid = 0;
	/* Raw 8-bit header octets are accepted without ENABLE UTF8=ACCEPT
	 * (RFC 6855 4 would refuse them): old mail synchronised by mbsync and
	 * friends has them, and refusing loses it. Dovecot accepts them too. */
	if (st != NULL && st->valid && s->append != NULL && st->mailbox_id != 0) {
		append_commit(s, cmd, st);
	} else if (s->append_too_big) {
		imap_tagged(s, cmd->tag, "NO", "[TOOBIG] Message too big");
	} else if (st != NULL && st->valid && st->mailbox_id == 0) {
		imap_tagged(s, cmd->tag, "NO", "[TRYCREATE] No such mailbox");
	} else if (st != NULL && st->valid) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot store the message");
	} else {
		imap_tagged(s, cmd->tag, "BAD",
			    "Syntax: APPEND mailbox [(flags)] [date-time] (literal | UTF8 (~literal))");
	}
	s->append_too_big = 0;
	store_delivery_abort(s->append);
	s->append = NULL;
	imap_append_state_free(st);
}

void imap_append_state_free(struct append_state *st)
{
	if (st == NULL)
		return;
	free(st->keywords);
	free(st);
}

/* The literal has been streamed: parse what came before it (mailbox,
 * flags, date), attach the parse cache, and commit. */
void imap_append_literal_done(struct imap_session *s)
{
	size_t n;
	const struct imap_arg *args = imap_parser_args(s->parser, &n);
	struct append_state *st = calloc(1, sizeof(*st));
	snprintf(st->tag, sizeof(st->tag), "%s", imap_parser_tag(s->parser));
	st->date = time(NULL);
	/* the literal is the last argument so far; within "UTF8 (" the list
	 * is still open, so UTF8 is */
	int ok = n >= 2 && imap_arg_string(&args[0]) != NULL;
	if (ok && args[n - 1].type == IMAP_ARG_ATOM && strcasecmp(args[n - 1].str, "UTF8") == 0)
		st->utf8 = 1;
	else if (!ok || args[n - 1].type != IMAP_ARG_STREAMED)
		ok = 0;
	size_t i = 1;
	if (ok && i < n - 1 && args[i].type == IMAP_ARG_LIST) {
		if (imap_parse_flags(&args[i], &st->flags, &st->keywords) < 0)
			ok = 0;
		i++;
	}
	if (ok && i < n - 1) {
		const char *d = imap_arg_string(&args[i]);
		if (d == NULL || args[i].type != IMAP_ARG_QUOTED || parse_date_time(d, &st->date) < 0)
			ok = 0;
		i++;
	}
	if (i != n - 1)
		ok = 0;
	if (ok && s->append != NULL) {
		struct store_mailbox_status mst;
		const char *err;
		const char *name = imap_arg_string(&args[0]);
		int r = store_mailbox_find(s->srv->store, s->user_id,
					   strcasecmp(name, "INBOX") == 0 ? "INBOX" : name, &mst, &err);
		if (r == 1) {
			st->mailbox_id = mst.id;
			st->uidvalidity = mst.uidvalidity;
		}
	}
	st->valid = ok;
	if (!ok) {
		store_delivery_abort(s->append);
		s->append = NULL;
	}
	/* The command completes when the parser reports DONE (the line may
	 * go on after the literal); imap_cmd_append then commits. */
	imap_append_state_free(s->append_state);
	s->append_state = st;
}

struct append_done_ctx {
	struct imap_handle *h;
	char tag[128];
	uint32_t uidvalidity;
};

struct append_reply {
	int status;
	uint32_t uid;
	uint32_t uidvalidity;
	char tag[128];
	char error[128];
};

static void append_finish(struct imap_session *s, void *arg)
{
	struct append_reply *r = arg;
	if (s != NULL) {
		if (r->status == 0) {
			if (s->sel != NULL)
				s->notify_pending = 1;
			imap_mailbox_sync(s, 1);
			imap_tagged(s, r->tag, "OK", "[APPENDUID %u %u] APPEND completed", r->uidvalidity,
				    r->uid);
		} else {
			imap_tagged(s, r->tag, "NO", "[SERVERBUG] APPEND failed");
		}
		imap_cmd_done(s);
	}
	free(r);
}

static void append_cb(void *ctx, const struct store_delivery_result *res)
{
	struct append_done_ctx *c = ctx;
	struct append_reply *r = calloc(1, sizeof(*r));
	r->status = res->status;
	r->uid = res->n_rcpts > 0 ? res->uids[0] : 0;
	r->uidvalidity = c->uidvalidity;
	snprintf(r->tag, sizeof(r->tag), "%s", c->tag);
	imap_post(c->h, append_finish, r);
	free(c);
}

/* Called from imap_cmd_append when everything is in place. */
static void append_commit(struct imap_session *s, struct imap_cmd *cmd, struct append_state *st)
{
	store_delivery_t *d = s->append;
	s->append = NULL;
	/* parse once, now, while the content is at hand */
	const char *err;
	if (mime_store_attach(d, &err) < 0)
		log_warn("imap", s->id, "event=parse-failed error=\"%s\"", err);
	store_delivery_add_mailbox(d, st->mailbox_id, st->flags, st->keywords);
	struct append_done_ctx *c = calloc(1, sizeof(*c));
	c->h = imap_handle_ref(s);
	snprintf(c->tag, sizeof(c->tag), "%s", cmd->tag);
	c->uidvalidity = st->uidvalidity;
	imap_cmd_async(s, cmd);
	store_delivery_commit(d, st->date, append_cb, c);
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
	submit(s, cmd, op, expunge_finish, 0, 1);
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
	free(uids);
	submit(s, cmd, op, store_finish, (uint32_t)silent, 1);
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
	int r = store_mailbox_find(s->srv->store, s->user_id,
				   strcasecmp(dest, "INBOX") == 0 ? "INBOX" : dest, &st, &err);
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
	submit(s, cmd, op, copy_finish, 0, 0);
}

void imap_cmd_copy(struct imap_session *s, struct imap_cmd *cmd)
{
	copy_common(s, cmd, 0);
}

void imap_cmd_move(struct imap_session *s, struct imap_cmd *cmd)
{
	copy_common(s, cmd, 1);
}
