/* SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
 * LSUB, NAMESPACE, STATUS (RFC 3501 6.3; CHILDREN RFC 3348; SPECIAL-USE
 * RFC 6154). */
#include "imap/imap_session.h"

#include "core/config.h"
#include "core/log.h"
#include "mime/mime_collate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Room for a mailbox name argument: more than the store keeps, so that a
 * name too long is refused as such, never cut down to another's name. */
#define NAME_BUF (2 * (STORE_MAILBOX_NAME_MAX + 1))

/* "inbox" -> "INBOX"; strips one trailing "/" (RFC 3501 6.3.3). */
static void normalize(const char *in, char *out, size_t outsz)
{
	if (strcasecmp(in, "INBOX") == 0) {
		snprintf(out, outsz, "INBOX");
		return;
	}
	if (strlen(in) >= outsz) {
		/* longer than any name: keep it too long (no mailbox has it,
		 * none can get it) */
		memcpy(out, in, outsz - 1);
		out[outsz - 1] = '\0';
		return;
	}
	snprintf(out, outsz, "%s", in);
	size_t n = strlen(out);
	if (n > 1 && out[n - 1] == '/')
		out[n - 1] = '\0';
}

/* Whether argument i is a mailbox name's string (syntax only). */
static int has_name_arg(const struct imap_cmd *cmd, size_t i)
{
	return i < cmd->n_args && imap_arg_string(&cmd->args[i]) != NULL;
}

/* Mailbox name argument i (has_name_arg) as the store's name: decoded
 * from the session's encoding (imap_mailbox_name_in), then normalized.
 * NULL, or why the name is refused. */
static const char *mailbox_name(struct imap_session *s, struct imap_cmd *cmd, size_t i,
				char *buf, size_t bufsz)
{
	const char *err;
	char *name = imap_mailbox_name_in(s, imap_arg_string(&cmd->args[i]), &err);
	if (name == NULL)
		return err;
	normalize(name, buf, bufsz);
	free(name);
	return NULL;
}

/* mailbox_name, answering NO for a refused name: 0 ok, -1 refused. */
static int mailbox_arg(struct imap_session *s, struct imap_cmd *cmd, size_t i, char *buf,
		       size_t bufsz)
{
	const char *err = mailbox_name(s, cmd, i, buf, bufsz);
	if (err != NULL) {
		imap_reply_bad_name(s, cmd->tag, err);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------- SELECT/EXAMINE */

/* The QRESYNC select parameter (RFC 7162 3.2.5):
 * (uidvalidity modseq [known-uids] [(known-seqs known-uids)]) */
struct qresync_param {
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seqset known;      /* n == 0 and !given: 1:uidnext-1 */
	int known_given;
	struct imap_seqset match_seqs, match_uids;
	int match_given;
};

static void qresync_param_free(struct qresync_param *q)
{
	imap_seqset_free(&q->known);
	imap_seqset_free(&q->match_seqs);
	imap_seqset_free(&q->match_uids);
}

static int parse_number(const struct imap_arg *a, uint64_t max, uint64_t *out)
{
	if (a->type != IMAP_ARG_ATOM || a->str[0] == '\0' || a->len > 20)
		return -1;
	uint64_t v = 0;
	for (const char *p = a->str; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > (max - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return 0;
}

/* A sequence-set without "*" (known-uids, known-sequence-set ...). */
static int parse_plain_set(const struct imap_arg *a, struct imap_seqset *set)
{
	if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->str, 0, set) < 0)
		return -1;
	if (set->star) {
		imap_seqset_free(set);
		return -1;
	}
	return 0;
}

static uint64_t seqset_count(const struct imap_seqset *set)
{
	uint64_t n = 0;
	for (size_t i = 0; i < set->n; i++)
		n += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return n;
}

static int parse_qresync(const struct imap_arg *a, struct qresync_param *q)
{
	memset(q, 0, sizeof(*q));
	uint64_t v;
	if (a->type != IMAP_ARG_LIST || a->list_count < 2 || a->list_count > 4)
		return -1;
	const struct imap_arg *l = a->list;
	/* uidvalidity = nz-number; mod-sequence-value = 1*DIGIT, 1..2^63-1 */
	if (parse_number(&l[0], UINT32_MAX, &v) < 0 || v == 0)
		return -1;
	q->uidvalidity = (uint32_t)v;
	if (parse_number(&l[1], INT64_MAX, &q->modseq) < 0 || q->modseq == 0)
		return -1;
	size_t i = 2;
	if (i < a->list_count && l[i].type == IMAP_ARG_ATOM) {
		if (parse_plain_set(&l[i], &q->known) < 0)
			return -1;
		q->known_given = 1;
		i++;
	}
	if (i < a->list_count) {
		const struct imap_arg *m = &l[i];
		if (m->type != IMAP_ARG_LIST || m->list_count != 2 ||
		    parse_plain_set(&m->list[0], &q->match_seqs) < 0)
			return -1;
		q->match_given = 1;
		if (parse_plain_set(&m->list[1], &q->match_uids) < 0 ||
		    seqset_count(&q->match_seqs) != seqset_count(&q->match_uids))
			return -1;
		i++;
	}
	return i == a->list_count ? 0 : -1;
}

struct qresync_ctx {
	struct imap_session *s;
	const struct qresync_param *q;
	uint32_t min_vanished; /* from the sequence match data */
	uint32_t *vanished;
	size_t n_vanished, cap_vanished;
	struct store_msg *changed;
	char **changed_kw;
	size_t n_changed, cap_changed;
	int oom;
};

static int qresync_known(const struct qresync_ctx *qc, uint32_t uid)
{
	if (qc->q->known_given)
		return imap_seqset_contains(&qc->q->known, uid);
	return uid < qc->s->sel->uidnext; /* 1:<uidnext-1> */
}

static void qresync_expunged(void *ctx, uint32_t uid, uint64_t modseq)
{
	struct qresync_ctx *qc = ctx;
	(void)modseq;
	/* one still in the view was expunged after it was loaded: the next
	 * sync reports it as a plain VANISHED */
	if (uid < qc->min_vanished || !qresync_known(qc, uid) ||
	    imap_seq_of_uid(qc->s->sel, uid) != 0)
		return;
	if (qc->n_vanished == qc->cap_vanished) {
		size_t c = qc->cap_vanished ? qc->cap_vanished * 2 : 64;
		uint32_t *n = realloc(qc->vanished, c * sizeof(*n));
		if (n == NULL) {
			qc->oom = 1;
			return;
		}
		qc->vanished = n;
		qc->cap_vanished = c;
	}
	qc->vanished[qc->n_vanished++] = uid;
}

static void qresync_changed(void *ctx, const struct store_msg *m)
{
	struct qresync_ctx *qc = ctx;
	if (imap_seq_of_uid(qc->s->sel, m->uid) == 0 || !qresync_known(qc, m->uid))
		return;
	if (qc->n_changed == qc->cap_changed) {
		size_t c = qc->cap_changed ? qc->cap_changed * 2 : 64;
		struct store_msg *n = realloc(qc->changed, c * sizeof(*n));
		if (n != NULL)
			qc->changed = n;
		char **k = realloc(qc->changed_kw, c * sizeof(*k));
		if (k != NULL)
			qc->changed_kw = k;
		if (n == NULL || k == NULL) {
			qc->oom = 1;
			return;
		}
		qc->cap_changed = c;
	}
	char *kw = strdup(m->keywords != NULL ? m->keywords : "");
	if (kw == NULL) {
		qc->oom = 1;
		return;
	}
	qc->changed[qc->n_changed] = *m;
	qc->changed[qc->n_changed].keywords = NULL;
	qc->changed_kw[qc->n_changed++] = kw;
}

/* RFC 7162 3.2.5.1: what changed since the client's modseq, as
 * VANISHED (EARLIER) and then FETCH (UID FLAGS MODSEQ). 0, -1 store error. */
static int qresync_report(struct imap_session *s, const struct qresync_param *q)
{
	struct imap_mailbox *mb = s->sel;
	struct qresync_ctx qc = { .s = s, .q = q, .min_vanished = 1 };
	if (q->match_given) {
		/* 3.2.5.2: up to the last pair that still matches, the client
		 * knows every expunge */
		size_t ri = 0, ui = 0;
		uint64_t qs = q->match_seqs.n ? q->match_seqs.r[0].lo : 0;
		uint64_t qu = q->match_uids.n ? q->match_uids.r[0].lo : 0;
		while (ri < q->match_seqs.n && ui < q->match_uids.n) {
			if (qs == 0 || qs > mb->n || mb->uids[qs - 1] != qu)
				break;
			qc.min_vanished = (uint32_t)qu + 1;
			if (qs++ == q->match_seqs.r[ri].hi && ++ri < q->match_seqs.n)
				qs = q->match_seqs.r[ri].lo;
			if (qu++ == q->match_uids.r[ui].hi && ++ui < q->match_uids.n)
				qu = q->match_uids.r[ui].lo;
		}
	}
	const char *err;
	int r = store_msg_changes(s->srv->store, mb->id, q->modseq, qresync_changed,
				  qresync_expunged, &qc, &err);
	if (r < 0)
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
	else if (qc.oom)
		r = -1;
	if (r == 0) {
		/* 3.2.6: VANISHED (EARLIER) comes before the FETCH responses */
		imap_write_vanished(s, 1, qc.vanished, qc.n_vanished);
		for (size_t i = 0; i < qc.n_changed; i++) {
			const struct store_msg *m = &qc.changed[i];
			imap_printf(s, "* %u FETCH (UID %u FLAGS ", imap_seq_of_uid(mb, m->uid), m->uid);
			imap_write_flags(s, m->flags, qc.changed_kw[i],
					 !s->rev2 && imap_is_recent(mb, m->uid));
			imap_printf(s, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
		}
	}
	for (size_t i = 0; i < qc.n_changed; i++)
		free(qc.changed_kw[i]);
	free(qc.changed);
	free(qc.changed_kw);
	free(qc.vanished);
	return r;
}

static void write_select_list(struct imap_session *s, const char *name);

static void select_common(struct imap_session *s, struct imap_cmd *cmd, int readonly)
{
	char name[NAME_BUF];
	if (!has_name_arg(cmd, 0)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s mailbox [(parameters)]", cmd->name);
		return;
	}
	/* select-params (RFC 4466 2.1): CONDSTORE (RFC 7162 3.1.8) and
	 * QRESYNC (3.2.5), checked before the mailbox is touched */
	int condstore = 0, qresync = 0;
	struct qresync_param q;
	memset(&q, 0, sizeof(q));
	if (cmd->n_args > 2 || (cmd->n_args == 2 && (cmd->args[1].type != IMAP_ARG_LIST ||
						     cmd->args[1].list_count == 0))) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s mailbox [(parameters)]", cmd->name);
		return;
	}
	for (size_t i = 0; cmd->n_args == 2 && i < cmd->args[1].list_count; i++) {
		const char *p = imap_arg_atom(&cmd->args[1].list[i]);
		if (p != NULL && strcasecmp(p, "CONDSTORE") == 0 && !condstore) {
			condstore = 1;
		} else if (p != NULL && strcasecmp(p, "QRESYNC") == 0 && !qresync) {
			if (!s->qresync) {
				qresync_param_free(&q);
				imap_tagged(s, cmd->tag, "BAD", "QRESYNC is not enabled");
				return;
			}
			if (i + 1 >= cmd->args[1].list_count ||
			    parse_qresync(&cmd->args[1].list[++i], &q) < 0) {
				qresync_param_free(&q);
				imap_tagged(s, cmd->tag, "BAD", "Syntax: QRESYNC (uidvalidity modseq "
								"[known-uids] [(seqs uids)])");
				return;
			}
			qresync = 1;
		} else {
			qresync_param_free(&q);
			imap_tagged(s, cmd->tag, "BAD", "Unknown %s parameter", cmd->name);
			return;
		}
	}
	/* a refused name fails like a missing mailbox: the selected one is
	 * left all the same (RFC 3501 6.3.1) */
	const char *bad_name = mailbox_name(s, cmd, 0, name, sizeof(name));
	if (condstore)
		s->condstore = 1; /* the mailbox's HIGHESTMODSEQ follows below */
	/* RFC 5182 2.1: a new mailbox, an empty "$" */
	free(s->saved);
	s->saved = NULL;
	s->n_saved = 0;
	int was_selected = s->sel != NULL;
	struct store_mailbox_status st;
	int r = 0;
	if (bad_name == NULL)
		r = imap_mailbox_open(s, name, readonly, &st);
	else
		imap_mailbox_close(s);
	/* RFC 7162 3.2.11 / RFC 9051 7.1: the boundary between the two */
	if (was_selected)
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	if (r <= 0) {
		qresync_param_free(&q);
		s->state = IMAP_AUTH;
		if (bad_name != NULL)
			imap_reply_bad_name(s, cmd->tag, bad_name);
		else if (r == 0)
			imap_tagged(s, cmd->tag, "NO", "[NONEXISTENT] No such mailbox");
		else
			imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot open mailbox");
		return;
	}
	s->state = IMAP_SELECTED;
	struct imap_mailbox *mb = s->sel;
	imap_untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
	if (readonly)
		imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox");
	else
		imap_untagged(s, "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
				 "Flags permitted");
	imap_untagged(s, "%zu EXISTS", mb->n);
	if (!s->rev2) {
		uint32_t recent = 0;
		for (size_t i = 0; i < mb->n; i++)
			if (imap_is_recent(mb, mb->uids[i]))
				recent++;
		imap_untagged(s, "%u RECENT", recent);
		if (st.unseen != 0)
			imap_untagged(s, "OK [UNSEEN %u] First unseen", st.unseen);
	}
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", mb->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", mb->uidnext);
	if (s->rev2)
		write_select_list(s, mb->name); /* RFC 9051 6.3.2 */
	if (s->condstore)
		imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
			      (unsigned long long)imap_mailbox_highestmodseq(mb));
	/* 3.2.5: another UIDVALIDITY: the rest of the parameters is ignored */
	if (qresync && q.uidvalidity == mb->uidvalidity && qresync_report(s, &q) < 0) {
		qresync_param_free(&q);
		imap_mailbox_close(s);
		s->state = IMAP_AUTH;
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot read mailbox changes");
		return;
	}
	qresync_param_free(&q);
	imap_tagged(s, cmd->tag, "OK", "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
		    cmd->name);
}

void imap_cmd_select(struct imap_session *s, struct imap_cmd *cmd)
{
	select_common(s, cmd, 0);
}

void imap_cmd_examine(struct imap_session *s, struct imap_cmd *cmd)
{
	select_common(s, cmd, 1);
}

/* ------------------------------------------------- CREATE/DELETE/RENAME/SUB */

static void op_done(void *session, void *arg)
{
	struct imap_session *s = session;
	struct store_op_result *res = arg; /* a copy: code and status only */
	if (s != NULL) {
		if (res->status == 0 && s->sel_rename_to != NULL && s->sel != NULL)
			/* before anything syncs the view, which would take the
			 * old name's absence for a deletion */
			snprintf(s->sel->name, sizeof(s->sel->name), "%s", s->sel_rename_to);
		free(s->sel_rename_to);
		s->sel_rename_to = NULL;
		if (res->status == 0) {
			imap_tagged(s, s->cur.tag, "OK", "%s completed", s->cur.name);
		} else {
			const char *code = res->code == STORE_ERR_NONEXISTENT ? "[NONEXISTENT] No such mailbox"
					   : res->code == STORE_ERR_EXISTS    ? "[ALREADYEXISTS] Mailbox exists"
					   : res->code == STORE_ERR_INBOX     ? "[CANNOT] Not allowed on INBOX"
					   : res->code == STORE_ERR_INVALID   ? "[CANNOT] Invalid mailbox name"
									      : "[SERVERBUG] Operation failed";
			imap_tagged(s, s->cur.tag, "NO", "%s", code);
		}
		imap_cmd_done(s);
	}
	free(res);
}

static void op_cb(void *ctx, const struct store_op_result *res)
{
	struct store_op_result *copy = calloc(1, sizeof(*copy));
	copy->status = res->status;
	copy->code = res->code;
	net_handle_post(ctx, op_done, copy);
}

/* A name a mailbox may get: UTF-8 (RFC 6855 3, RFC 9051 5.1) without
 * control characters (C0, DEL, C1), U+2028 and U+2029, nor the wildcards,
 * in NFC: Net-Unicode (RFC 5198), which RFC 9051 6.3.4 says a server must
 * either refuse or convert; Petrel refuses. */
static int valid_new_name(const char *name)
{
	if (*name == '\0' || *name == '/' || strstr(name, "//") != NULL ||
	    strlen(name) > STORE_MAILBOX_NAME_MAX || !imap_utf8_valid(name, strlen(name)))
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '*' || *p == '%')
			return 0;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return 0; /* U+0080..U+009F */
		if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
			return 0; /* U+2028, U+2029 */
	}
	return mime_utf8_is_nfc(name);
}

/* RFC 9051 6.3.4 (and 6.3.6 for RENAME): the superior names of a new
 * mailbox that do not exist are created with it ("a/b/c" creates "a" and
 * "a/b"), in the same operation. */
static void add_superiors(struct imap_session *s, store_op_t *op, const char *name)
{
	char prefix[NAME_BUF];
	for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/')) {
		size_t len = (size_t)(p - name);
		if (len >= sizeof(prefix))
			return;
		memcpy(prefix, name, len);
		prefix[len] = '\0';
		struct store_mailbox_status st;
		const char *err;
		if (strcasecmp(prefix, "INBOX") == 0 ||
		    store_mailbox_find(s->srv->store, s->user_id, prefix, &st, &err) != 0)
			continue; /* exists (or unreadable: the op will tell) */
		store_op_mailbox_create(op, s->user_id, prefix, STORE_SPECIAL_NONE);
	}
}

void imap_cmd_create(struct imap_session *s, struct imap_cmd *cmd)
{
	char name[NAME_BUF];
	if (cmd->n_args != 1 || !has_name_arg(cmd, 0)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: CREATE mailbox");
		return;
	}
	if (mailbox_arg(s, cmd, 0, name, sizeof(name)) < 0)
		return;
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, cmd->tag, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (!valid_new_name(name)) {
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	add_superiors(s, op, name);
	store_op_mailbox_create(op, s->user_id, name, STORE_SPECIAL_NONE);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, net_handle_ref(s->handle));
}

void imap_cmd_delete(struct imap_session *s, struct imap_cmd *cmd)
{
	char name[NAME_BUF];
	if (cmd->n_args != 1 || !has_name_arg(cmd, 0)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: DELETE mailbox");
		return;
	}
	if (mailbox_arg(s, cmd, 0, name, sizeof(name)) < 0)
		return;
	if (s->sel != NULL && strcmp(s->sel->name, name) == 0) {
		/* deleting the selected mailbox: leave it first */
		imap_mailbox_close(s);
		s->state = IMAP_AUTH;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_mailbox_delete(op, s->user_id, name);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, net_handle_ref(s->handle));
}

void imap_cmd_rename(struct imap_session *s, struct imap_cmd *cmd)
{
	char from[NAME_BUF], to[NAME_BUF];
	if (cmd->n_args != 2 || !has_name_arg(cmd, 0) || !has_name_arg(cmd, 1)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: RENAME from to");
		return;
	}
	if (mailbox_arg(s, cmd, 0, from, sizeof(from)) < 0 ||
	    mailbox_arg(s, cmd, 1, to, sizeof(to)) < 0)
		return;
	if (!valid_new_name(to) || strcmp(to, "INBOX") == 0) {
		imap_tagged(s, cmd->tag, "NO", strcmp(to, "INBOX") == 0
						       ? "[ALREADYEXISTS] INBOX always exists"
						       : "[CANNOT] Invalid mailbox name");
		return;
	}
	/* renaming the selected mailbox (or one above it) keeps it selected
	 * under its new name; INBOX is not renamed, its messages move */
	size_t flen = strlen(from);
	if (s->sel != NULL && strcmp(from, "INBOX") != 0 && strncmp(s->sel->name, from, flen) == 0 &&
	    (s->sel->name[flen] == '\0' || s->sel->name[flen] == '/')) {
		char *n = malloc(strlen(to) + strlen(s->sel->name + flen) + 1);
		if (n != NULL) {
			strcpy(n, to);
			strcat(n, s->sel->name + flen);
		}
		s->sel_rename_to = n;
	}
	store_op_t *op = store_op_new(s->srv->store);
	add_superiors(s, op, to);
	store_op_mailbox_rename(op, s->user_id, from, to);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, net_handle_ref(s->handle));
}

static void subscribe_common(struct imap_session *s, struct imap_cmd *cmd, int on)
{
	char name[NAME_BUF];
	if (cmd->n_args != 1 || !has_name_arg(cmd, 0)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s mailbox", cmd->name);
		return;
	}
	if (mailbox_arg(s, cmd, 0, name, sizeof(name)) < 0)
		return;
	store_op_t *op = store_op_new(s->srv->store);
	store_op_subscribe(op, s->user_id, name, on);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, net_handle_ref(s->handle));
}

void imap_cmd_subscribe(struct imap_session *s, struct imap_cmd *cmd)
{
	subscribe_common(s, cmd, 1);
}

void imap_cmd_unsubscribe(struct imap_session *s, struct imap_cmd *cmd)
{
	subscribe_common(s, cmd, 0);
}

/* -------------------------------------------------------------- LIST/LSUB */

/* A LIST pattern (RFC 3501 6.3.8: '*' matches anything, '%' anything but
 * the separator) with the reference in front, runs of wildcards collapsed
 * ("%*" is "*"), and its number of literal octets. */
struct pattern {
	char *p;
	size_t literals;
};

static int pattern_make(struct pattern *pt, const char *ref, const char *pat)
{
	char *out = malloc(strlen(ref) + strlen(pat) + 1);
	if (out == NULL)
		return -1;
	size_t o = 0, lit = 0;
	for (int k = 0; k < 2; k++) {
		for (const char *c = k ? pat : ref; *c != '\0'; c++) {
			if ((*c == '*' || *c == '%') && o > 0 && (out[o - 1] == '*' || out[o - 1] == '%')) {
				if (*c == '*')
					out[o - 1] = '*';
				continue;
			}
			if (*c != '*' && *c != '%')
				lit++;
			out[o++] = *c;
		}
	}
	out[o] = '\0';
	pt->p = out;
	pt->literals = lit;
	return 0;
}

/* Whether name matches: a set of pattern positions stepped over the name
 * (time O(name * pattern), never exponential). */
static int match(const struct pattern *pt, const char *name)
{
	const char *pat = pt->p;
	size_t lit = pt->literals;
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/') &&
	    strncasecmp(pat, "INBOX", 5) == 0) {
		/* INBOX is case-insensitive in patterns too */
		pat += 5;
		name += 5;
		lit -= 5;
	}
	size_t nlen = strlen(name), plen = strlen(pat);
	if (lit > nlen)
		return 0; /* more literal octets than the name has */
	unsigned char local[2 * 1100], *cur = local;
	if (plen + 1 > sizeof(local) / 2 && (cur = malloc(2 * (plen + 1))) == NULL)
		return 0;
	unsigned char *nxt = cur + plen + 1;
	memset(cur, 0, plen + 1);
	cur[0] = 1;
	int any = 1;
	for (size_t k = 0;; k++) {
		/* a wildcard may match nothing: its successor is reached too */
		for (size_t i = 0; i < plen; i++)
			if (cur[i] && (pat[i] == '*' || pat[i] == '%'))
				cur[i + 1] = 1;
		if (k == nlen || !any)
			break;
		char c = name[k];
		memset(nxt, 0, plen + 1);
		any = 0;
		for (size_t i = 0; i < plen; i++) {
			if (!cur[i])
				continue;
			if (pat[i] == '*' || (pat[i] == '%' && c != '/'))
				nxt[i] = any = 1;
			else if (pat[i] == c)
				nxt[i + 1] = any = 1;
		}
		unsigned char *t = cur;
		cur = nxt;
		nxt = t;
	}
	int r = any && cur[plen];
	if (cur != local && nxt != local)
		free(cur < nxt ? cur : nxt);
	return r;
}

struct list_item {
	char *name;
	int exists;
	int subscribed;
	enum store_special_use special;
	struct store_mailbox_status *st; /* existing mailboxes: LIST-STATUS */
	/* LIST-EXTENDED (imap_cmd_list) */
	int matched, meets;
};

struct list_ctx {
	struct list_item *items;
	size_t n, cap;
};

static void add_item(struct list_ctx *lc, const char *name, int exists, int subscribed,
		     enum store_special_use special, const struct store_mailbox_status *st)
{
	for (size_t i = 0; i < lc->n; i++) {
		if (strcmp(lc->items[i].name, name) == 0) {
			lc->items[i].exists |= exists;
			lc->items[i].subscribed |= subscribed;
			if (exists)
				lc->items[i].special = special;
			if (st != NULL && lc->items[i].st == NULL &&
			    (lc->items[i].st = malloc(sizeof(*st))) != NULL)
				*lc->items[i].st = *st;
			return;
		}
	}
	if (lc->n == lc->cap) {
		size_t cap = lc->cap ? lc->cap * 2 : 16;
		struct list_item *n = realloc(lc->items, cap * sizeof(*n));
		if (n == NULL)
			return;
		lc->items = n;
		lc->cap = cap;
	}
	struct store_mailbox_status *copy = st != NULL ? malloc(sizeof(*st)) : NULL;
	if (copy != NULL)
		*copy = *st;
	lc->items[lc->n++] = (struct list_item){ strdup(name), exists, subscribed, special, copy,
						 0, 0 };
}

static void list_ctx_free(struct list_ctx *lc)
{
	for (size_t i = 0; i < lc->n; i++) {
		free(lc->items[i].name);
		free(lc->items[i].st);
	}
	free(lc->items);
}

static void list_cb(void *ctx, const struct store_mailbox_status *st)
{
	struct list_ctx *lc = ctx;
	add_item(lc, st->name, st->id != 0, st->subscribed, st->special_use,
		 st->id != 0 ? st : NULL);
	/* parents of a/b/c exist in the hierarchy even if not as mailboxes */
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", st->name);
	for (char *p = strrchr(buf, '/'); p != NULL && p > buf; p = strrchr(buf, '/')) {
		*p = '\0';
		add_item(lc, buf, 0, 0, STORE_SPECIAL_NONE, NULL);
	}
}

static const char *special_name(enum store_special_use u)
{
	switch (u) {
	case STORE_SPECIAL_SENT:
		return " \\Sent";
	case STORE_SPECIAL_DRAFTS:
		return " \\Drafts";
	case STORE_SPECIAL_TRASH:
		return " \\Trash";
	case STORE_SPECIAL_JUNK:
		return " \\Junk";
	default:
		return "";
	}
}

/* LSUB (RFC 3501 6.3.9) */
void imap_cmd_lsub(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *ref = cmd->n_args == 2 ? imap_arg_string(&cmd->args[0]) : NULL;
	const char *pat = cmd->n_args == 2 ? imap_arg_string(&cmd->args[1]) : NULL;
	if (ref == NULL || pat == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: LSUB reference pattern");
		return;
	}
	if (*pat == '\0') {
		imap_tagged(s, cmd->tag, "OK", "LSUB completed");
		return;
	}
	const char *why;
	char *uref = imap_mailbox_name_in(s, ref, &why);
	char *upat = uref != NULL ? imap_mailbox_name_in(s, pat, &why) : NULL;
	if (upat == NULL) {
		free(uref);
		imap_reply_bad_name(s, cmd->tag, why);
		return;
	}
	struct pattern full;
	int made = pattern_make(&full, uref, upat);
	free(uref);
	free(upat);
	if (made < 0) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	int pct = strchr(full.p, '%') != NULL;
	struct list_ctx lc = { 0 };
	const char *err;
	if (store_mailbox_list_status(s->srv->store, s->user_id, 1, list_cb, &lc, &err) < 0) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		list_ctx_free(&lc);
		free(full.p);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot list mailboxes");
		return;
	}
	for (size_t i = 0; i < lc.n; i++) {
		struct list_item *it = &lc.items[i];
		if (match(&full, it->name) && it->subscribed) {
			imap_printf(s, "* LSUB (%s) \"/\" ", it->exists ? "" : "\\Noselect");
			imap_write_mailbox(s, it->name);
			imap_write(s, "\r\n", 2);
		} else if (pct && !it->subscribed) {
			/* RFC 3501 6.3.9: a '%' match of an unsubscribed parent with
			 * subscribed children is listed \Noselect */
			int sub_kid = 0;
			size_t n = strlen(it->name);
			for (size_t k = 0; k < lc.n; k++)
				if (lc.items[k].subscribed &&
				    strncmp(lc.items[k].name, it->name, n) == 0 &&
				    lc.items[k].name[n] == '/')
					sub_kid = 1;
			if (sub_kid && match(&full, it->name)) {
				imap_printf(s, "* LSUB (\\Noselect) \"/\" ");
				imap_write_mailbox(s, it->name);
				imap_write(s, "\r\n", 2);
			}
		}
	}
	list_ctx_free(&lc);
	free(full.p);
	imap_tagged(s, cmd->tag, "OK", "LSUB completed");
}

/* ------------------------------------------------------- LIST-EXTENDED */

#define LSEL_SUBSCRIBED  0x01
#define LSEL_REMOTE      0x02
#define LSEL_RECURSIVE   0x04
#define LSEL_SPECIAL     0x08
#define LRET_SUBSCRIBED  0x01
#define LRET_CHILDREN    0x02
#define LRET_SPECIAL     0x04
#define LRET_STATUS      0x08

static int valid_status_items(const struct imap_session *s, const struct imap_arg *items);
static void write_status(struct imap_session *s, const struct store_mailbox_status *st,
			 const struct imap_arg *items);

static int list_option(const char *o, const char *const *names, const unsigned *bits, size_t n,
		       unsigned *out)
{
	for (size_t i = 0; o != NULL && i < n; i++) {
		if (strcasecmp(o, names[i]) == 0) {
			*out |= bits[i];
			return 0;
		}
	}
	return -1;
}

/* Has a descendant that exists (CHILDREN, RFC 5258 4) / that meets the
 * selection criteria and whose name matches no pattern (3.3 2B). */
static int has_existing_child(const struct list_ctx *lc, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < lc->n; i++)
		if (lc->items[i].exists && strncmp(lc->items[i].name, name, n) == 0 &&
		    lc->items[i].name[n] == '/')
			return 1;
	return 0;
}

static int has_meeting_child(const struct list_ctx *lc, const char *name, int unmatched_only)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < lc->n; i++)
		if (lc->items[i].meets && (!unmatched_only || !lc->items[i].matched) &&
		    strncmp(lc->items[i].name, name, n) == 0 && lc->items[i].name[n] == '/')
			return 1;
	return 0;
}

/* The LIST response IMAP4rev2 sends in SELECT/EXAMINE: the mailbox's
 * attributes, accurate (children, special use). */
static void write_select_list(struct imap_session *s, const char *name)
{
	struct list_ctx lc = { 0 };
	const char *err;
	int kids = 0;
	enum store_special_use special = STORE_SPECIAL_NONE;
	if (store_mailbox_list_status(s->srv->store, s->user_id, 0, list_cb, &lc, &err) < 0) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
	} else {
		kids = has_existing_child(&lc, name);
		for (size_t i = 0; i < lc.n; i++)
			if (strcmp(lc.items[i].name, name) == 0)
				special = lc.items[i].special;
	}
	list_ctx_free(&lc);
	imap_printf(s, "* LIST (%s%s) \"/\" ", kids ? "\\HasChildren" : "\\HasNoChildren",
		    special_name(special));
	imap_write_mailbox(s, name);
	imap_write(s, "\r\n", 2);
}

/* LIST [(selection-options)] reference (pattern | (patterns))
 *      [RETURN (return-options)]          (RFC 3501 6.3.8, RFC 5258,
 * RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE options) */
void imap_cmd_list(struct imap_session *s, struct imap_cmd *cmd)
{
	static const char *const sel_names[] = { "SUBSCRIBED", "REMOTE", "RECURSIVEMATCH",
						 "SPECIAL-USE" };
	static const unsigned sel_bits[] = { LSEL_SUBSCRIBED, LSEL_REMOTE, LSEL_RECURSIVE,
					     LSEL_SPECIAL };
	static const char *const ret_names[] = { "SUBSCRIBED", "CHILDREN", "SPECIAL-USE" };
	static const unsigned ret_bits[] = { LRET_SUBSCRIBED, LRET_CHILDREN, LRET_SPECIAL };
	const struct imap_arg *a = cmd->args;
	size_t n = cmd->n_args, i = 0;
	unsigned sel = 0, ret = 0;
	int extended = 0;
	const struct imap_arg *status_items = NULL;
	const char *syntax = "Syntax: LIST [(options)] reference pattern [RETURN (options)]";
	if (i < n && a[i].type == IMAP_ARG_LIST) {
		extended = 1;
		for (size_t k = 0; k < a[i].list_count; k++) {
			if (list_option(imap_arg_atom(&a[i].list[k]), sel_names, sel_bits, 4, &sel) < 0) {
				imap_tagged(s, cmd->tag, "BAD", "Unknown LIST selection option");
				return;
			}
		}
		/* RFC 5258 3.1: RECURSIVEMATCH needs a base option */
		if ((sel & LSEL_RECURSIVE) && !(sel & LSEL_SUBSCRIBED)) {
			imap_tagged(s, cmd->tag, "BAD", "RECURSIVEMATCH needs SUBSCRIBED");
			return;
		}
		i++;
	}
	const char *ref = i < n ? imap_arg_string(&a[i]) : NULL;
	i++;
	const struct imap_arg *pats = i < n ? &a[i] : NULL;
	size_t n_pats = 1;
	i++;
	if (pats != NULL && pats->type == IMAP_ARG_LIST) {
		extended = 1;
		n_pats = pats->list_count;
		for (size_t k = 0; k < n_pats; k++)
			if (imap_arg_string(&pats->list[k]) == NULL)
				pats = NULL;
		if (n_pats == 0)
			pats = NULL;
	} else if (pats != NULL && imap_arg_string(pats) == NULL) {
		pats = NULL;
	}
	if (ref == NULL || pats == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "%s", syntax);
		return;
	}
	if (i < n) {
		const char *kw = imap_arg_atom(&a[i]);
		if (kw == NULL || strcasecmp(kw, "RETURN") != 0 || i + 2 != n ||
		    a[i + 1].type != IMAP_ARG_LIST) {
			imap_tagged(s, cmd->tag, "BAD", "%s", syntax);
			return;
		}
		extended = 1;
		const struct imap_arg *r = &a[i + 1];
		for (size_t k = 0; k < r->list_count; k++) {
			const char *o = imap_arg_atom(&r->list[k]);
			if (o != NULL && strcasecmp(o, "STATUS") == 0 && k + 1 < r->list_count &&
			    valid_status_items(s, &r->list[k + 1])) {
				/* RFC 5819 2 */
				ret |= LRET_STATUS;
				status_items = &r->list[++k];
			} else if (list_option(o, ret_names, ret_bits, 3, &ret) < 0) {
				imap_tagged(s, cmd->tag, "BAD", "Unknown LIST return option");
				return;
			}
		}
		i += 2;
	}
	if (i != n) {
		imap_tagged(s, cmd->tag, "BAD", "%s", syntax);
		return;
	}
	const char *first = pats->type == IMAP_ARG_LIST ? imap_arg_string(&pats->list[0])
							: imap_arg_string(pats);
	int nonexistent = extended || s->rev2; /* RFC 9051 7.3.1: \NonExistent */
	if (!extended && *first == '\0') {
		/* RFC 3501 6.3.8: the hierarchy delimiter and root; an extended
		 * LIST ignores an empty pattern instead (RFC 5258 3) */
		imap_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imap_tagged(s, cmd->tag, "OK", "LIST completed");
		return;
	}
	/* the reference and the patterns in the store's UTF-8 */
	const char *why;
	char *uref = imap_mailbox_name_in(s, ref, &why);
	char **upats = uref != NULL ? calloc(n_pats, sizeof(*upats)) : NULL;
	int decoded = upats != NULL;
	for (size_t p = 0; decoded && p < n_pats; p++) {
		upats[p] = imap_mailbox_name_in(s, pats->type == IMAP_ARG_LIST
							   ? imap_arg_string(&pats->list[p])
							   : imap_arg_string(pats),
						&why);
		decoded = upats[p] != NULL;
	}
	if (!decoded) {
		if (upats == NULL && uref != NULL)
			why = "Out of memory";
		for (size_t p = 0; upats != NULL && p < n_pats; p++)
			free(upats[p]);
		free(upats);
		free(uref);
		imap_reply_bad_name(s, cmd->tag, why);
		return;
	}
	if (sel & LSEL_SPECIAL)
		ret |= LRET_SPECIAL; /* RFC 6154 3: implied */
	struct list_ctx lc = { 0 };
	const char *err;
	if (store_mailbox_list_status(s->srv->store, s->user_id, (sel & LSEL_SUBSCRIBED) != 0,
				      list_cb, &lc, &err) < 0) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		list_ctx_free(&lc);
		for (size_t p = 0; p < n_pats; p++)
			free(upats[p]);
		free(upats);
		free(uref);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot list mailboxes");
		return;
	}
	int criteria = (sel & (LSEL_SUBSCRIBED | LSEL_SPECIAL)) != 0;
	struct pattern *compiled = calloc(n_pats, sizeof(*compiled));
	size_t n_compiled = 0;
	for (size_t p = 0; compiled != NULL && p < n_pats; p++)
		if (*upats[p] != '\0' && pattern_make(&compiled[n_compiled], uref, upats[p]) == 0)
			n_compiled++;
	for (size_t p = 0; p < n_pats; p++)
		free(upats[p]);
	free(upats);
	free(uref);
	for (size_t k = 0; k < lc.n; k++) {
		struct list_item *it = &lc.items[k];
		for (size_t p = 0; p < n_compiled && !it->matched; p++)
			it->matched = match(&compiled[p], it->name);
		if (!criteria)
			it->meets = 1; /* existing ones, and the parents of existing ones */
		else
			it->meets = (!(sel & LSEL_SUBSCRIBED) || it->subscribed) &&
				    (!(sel & LSEL_SPECIAL) ||
				     (it->exists && it->special != STORE_SPECIAL_NONE));
	}
	if (status_items != NULL)
		for (size_t k = 0; k < status_items->list_count; k++)
			if (strcasecmp(imap_arg_atom(&status_items->list[k]), "HIGHESTMODSEQ") == 0)
				imap_condstore_enable(s);
	for (size_t k = 0; k < lc.n; k++) {
		struct list_item *it = &lc.items[k];
		if (!it->matched)
			continue;
		/* RFC 5258 3.3 rule 2; CHILDINFO 3.5 */
		int childinfo = (sel & LSEL_RECURSIVE) && has_meeting_child(&lc, it->name, !it->meets);
		if (!it->meets && !childinfo)
			continue;
		int kids = has_existing_child(&lc, it->name);
		char attrs[160];
		size_t o = 0;
		attrs[0] = '\0';
#define ATTR(str) o += (size_t)snprintf(attrs + o, sizeof(attrs) - o, "%s%s", o ? " " : "", str)
		if (!it->exists)
			ATTR(nonexistent ? "\\NonExistent" : "\\Noselect");
		if (it->subscribed && (sel & LSEL_SUBSCRIBED || ret & LRET_SUBSCRIBED))
			ATTR("\\Subscribed");
		ATTR(kids ? "\\HasChildren" : "\\HasNoChildren");
		if (it->exists && it->special != STORE_SPECIAL_NONE)
			ATTR(special_name(it->special) + 1);
#undef ATTR
		imap_printf(s, "* LIST (%s) \"/\" ", attrs);
		imap_write_mailbox(s, it->name);
		if (childinfo)
			imap_write(s, " (\"CHILDINFO\" (\"SUBSCRIBED\"))", 29);
		imap_write(s, "\r\n", 2);
		/* RFC 5819 2: STATUS after the LIST of each selectable mailbox
		 * that meets the selection criteria */
		if (status_items != NULL && it->exists && it->meets && it->st != NULL)
			write_status(s, it->st, status_items);
	}
	list_ctx_free(&lc);
	for (size_t p = 0; p < n_compiled; p++)
		free(compiled[p].p);
	free(compiled);
	if (s->sel != NULL && status_items != NULL)
		imap_mailbox_sync(s, 1);
	imap_tagged(s, cmd->tag, "OK", "LIST completed");
}


void imap_cmd_namespace(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "NAMESPACE takes no arguments");
		return;
	}
	imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_tagged(s, cmd->tag, "OK", "NAMESPACE completed");
}

/* ------------------------------------------------------------------ STATUS */

static const char *const status_known[] = { "MESSAGES",	  "RECENT", "UIDNEXT", "UIDVALIDITY",
					    "UNSEEN",	  "SIZE",   "DELETED", "HIGHESTMODSEQ" };

/* A non-empty list of known status-att (RFC 3501 6.3.10, RFC 8438 SIZE,
 * RFC 9051 DELETED, RFC 7162 3.1.7 HIGHESTMODSEQ). RECENT is IMAP4rev1
 * only: RFC 9051 9 has no "RECENT" status-att, nor a status-att-val an
 * IMAP4rev2 client could parse (Appendix E item 12). */
static int valid_status_items(const struct imap_session *s, const struct imap_arg *items)
{
	if (items->type != IMAP_ARG_LIST || items->list_count == 0)
		return 0;
	for (size_t i = 0; i < items->list_count; i++) {
		const char *it = imap_arg_atom(&items->list[i]);
		int ok = 0;
		for (size_t k = 0; it != NULL && k < sizeof(status_known) / sizeof(status_known[0]); k++)
			if (strcasecmp(it, status_known[k]) == 0)
				ok = 1;
		if (ok && s->rev2 && strcasecmp(it, "RECENT") == 0)
			ok = 0;
		if (!ok)
			return 0;
	}
	return 1;
}

static void count_cb(void *ctx, const struct store_msg *m)
{
	(void)m;
	(*(unsigned long long *)ctx)++;
}

/* RFC 3501 6.3.10: messages with \Recent, i.e. not yet seen by a session */
static unsigned long long recent_count(struct imap_session *s,
				       const struct store_mailbox_status *st)
{
	uint32_t first = imap_recent_first_unclaimed(st->id);
	unsigned long long n = 0;
	const char *err;
	if (first < st->uidnext &&
	    store_msg_scan(s->srv->store, st->id, first, count_cb, &n, &err) < 0)
		return 0;
	return n;
}

/* "* STATUS name (item value ...)" */
static void write_status(struct imap_session *s, const struct store_mailbox_status *st,
			 const struct imap_arg *items)
{
	imap_printf(s, "* STATUS ");
	imap_write_mailbox(s, st->name);
	imap_write(s, " (", 2);
	for (size_t i = 0; i < items->list_count; i++) {
		const char *it = imap_arg_atom(&items->list[i]);
		unsigned long long v = 0;
		if (strcasecmp(it, "MESSAGES") == 0)
			v = st->messages;
		else if (strcasecmp(it, "RECENT") == 0)
			v = recent_count(s, st);
		else if (strcasecmp(it, "UIDNEXT") == 0)
			v = st->uidnext;
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			v = st->uidvalidity;
		else if (strcasecmp(it, "UNSEEN") == 0)
			v = st->unseen;
		else if (strcasecmp(it, "SIZE") == 0)
			v = st->size; /* RFC 8438 */
		else if (strcasecmp(it, "DELETED") == 0)
			v = st->deleted;
		else if (strcasecmp(it, "HIGHESTMODSEQ") == 0)
			v = st->highestmodseq; /* RFC 7162 3.1.7 */
		char up[16];
		size_t k = 0;
		for (; it[k] != '\0' && k < sizeof(up) - 1; k++)
			up[k] = (char)(it[k] >= 'a' && it[k] <= 'z' ? it[k] - 32 : it[k]);
		up[k] = '\0';
		imap_printf(s, "%s%s %llu", i ? " " : "", up, v);
	}
	imap_write(s, ")\r\n", 3);
}

void imap_cmd_status(struct imap_session *s, struct imap_cmd *cmd)
{
	char name[NAME_BUF];
	if (cmd->n_args != 2 || !has_name_arg(cmd, 0) ||
	    cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].list_count == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: STATUS mailbox (items)");
		return;
	}
	const struct imap_arg *items = &cmd->args[1];
	if (!valid_status_items(s, items)) {
		imap_tagged(s, cmd->tag, "BAD", "Unknown STATUS item");
		return;
	}
	if (mailbox_arg(s, cmd, 0, name, sizeof(name)) < 0)
		return;
	struct store_mailbox_status st;
	const char *err;
	int r = store_mailbox_status(s->srv->store, s->user_id, name, &st, &err);
	if (r <= 0) {
		imap_tagged(s, cmd->tag, "NO", r == 0 ? "[NONEXISTENT] No such mailbox"
						      : "[SERVERBUG] Cannot read mailbox");
		return;
	}
	for (size_t i = 0; i < items->list_count; i++)
		if (strcasecmp(imap_arg_atom(&items->list[i]), "HIGHESTMODSEQ") == 0)
			imap_condstore_enable(s); /* RFC 7162 3.1 */
	write_status(s, &st, items);
	if (s->sel != NULL)
		imap_mailbox_sync(s, 1);
	imap_tagged(s, cmd->tag, "OK", "STATUS completed");
}
