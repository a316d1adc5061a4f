/* SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
 * LSUB, NAMESPACE, STATUS (RFC 3501 6.3; CHILDREN RFC 3348; SPECIAL-USE
 * RFC 6154). */
#include "imap/imap_session.h"

#include "core/config.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "inbox" -> "INBOX"; strips one trailing "/" (RFC 3501 6.3.3). */
static void normalize(const char *in, char *out, size_t outsz)
{
	if (strcasecmp(in, "INBOX") == 0) {
		snprintf(out, outsz, "INBOX");
		return;
	}
	snprintf(out, outsz, "%s", in);
	size_t n = strlen(out);
	if (n > 1 && out[n - 1] == '/')
		out[n - 1] = '\0';
}

static const char *mailbox_arg(struct imap_cmd *cmd, size_t i, char *buf, size_t bufsz)
{
	const char *a = i < cmd->n_args ? imap_arg_string(&cmd->args[i]) : NULL;
	if (a == NULL)
		return NULL;
	normalize(a, buf, bufsz);
	return buf;
}

/* ---------------------------------------------------------- SELECT/EXAMINE */

static void select_common(struct imap_session *s, struct imap_cmd *cmd, int readonly)
{
	char name[512];
	if (cmd->n_args < 1 || mailbox_arg(cmd, 0, name, sizeof(name)) == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s mailbox", cmd->name);
		return;
	}
	if (cmd->n_args > 1) {
		/* (CONDSTORE) / (QRESYNC ...) select parameters: not offered */
		imap_tagged(s, cmd->tag, "BAD", "Unsupported %s parameters", cmd->name);
		return;
	}
	int was_selected = s->sel != NULL;
	struct store_mailbox_status st;
	int r = imap_mailbox_open(s, name, readonly, &st);
	if (was_selected && s->rev2)
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	if (r <= 0) {
		s->state = IMAP_AUTH;
		if (r == 0)
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
			if (mb->uids[i] >= mb->first_recent_uid)
				recent++;
		imap_untagged(s, "%u RECENT", recent);
		if (st.unseen != 0)
			imap_untagged(s, "OK [UNSEEN %u] First unseen", st.unseen);
	}
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", mb->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", mb->uidnext);
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

static void op_done(struct imap_session *s, void *arg)
{
	struct store_op_result *res = arg; /* a copy: code and status only */
	if (s != NULL) {
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
	imap_post(ctx, op_done, copy);
}

static int valid_new_name(const char *name)
{
	if (*name == '\0' || *name == '/' || strstr(name, "//") != NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '*' || *p == '%')
			return 0;
	return 1;
}

void imap_cmd_create(struct imap_session *s, struct imap_cmd *cmd)
{
	char name[512];
	if (cmd->n_args != 1 || mailbox_arg(cmd, 0, name, sizeof(name)) == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: CREATE mailbox");
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, cmd->tag, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (!valid_new_name(name)) {
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_mailbox_create(op, s->user_id, name, STORE_SPECIAL_NONE);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, imap_handle_ref(s));
}

void imap_cmd_delete(struct imap_session *s, struct imap_cmd *cmd)
{
	char name[512];
	if (cmd->n_args != 1 || mailbox_arg(cmd, 0, name, sizeof(name)) == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: DELETE mailbox");
		return;
	}
	if (s->sel != NULL && strcmp(s->sel->name, name) == 0) {
		/* deleting the selected mailbox: leave it first */
		imap_mailbox_close(s);
		s->state = IMAP_AUTH;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_mailbox_delete(op, s->user_id, name);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, imap_handle_ref(s));
}

void imap_cmd_rename(struct imap_session *s, struct imap_cmd *cmd)
{
	char from[512], to[512];
	if (cmd->n_args != 2 || mailbox_arg(cmd, 0, from, sizeof(from)) == NULL ||
	    mailbox_arg(cmd, 1, to, sizeof(to)) == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: RENAME from to");
		return;
	}
	if (!valid_new_name(to) || strcmp(to, "INBOX") == 0) {
		imap_tagged(s, cmd->tag, "NO", strcmp(to, "INBOX") == 0
						       ? "[ALREADYEXISTS] INBOX always exists"
						       : "[CANNOT] Invalid mailbox name");
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_mailbox_rename(op, s->user_id, from, to);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, imap_handle_ref(s));
}

static void subscribe_common(struct imap_session *s, struct imap_cmd *cmd, int on)
{
	char name[512];
	if (cmd->n_args != 1 || mailbox_arg(cmd, 0, name, sizeof(name)) == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s mailbox", cmd->name);
		return;
	}
	store_op_t *op = store_op_new(s->srv->store);
	store_op_subscribe(op, s->user_id, name, on);
	imap_cmd_async(s, cmd);
	store_op_commit(op, op_cb, imap_handle_ref(s));
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

/* '*' matches anything, '%' anything but the separator (RFC 3501 6.3.8). */
static int match(const char *pat, const char *name)
{
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/') &&
	    strncasecmp(pat, "INBOX", 5) == 0) {
		/* INBOX is case-insensitive in patterns too */
		pat += 5;
		name += 5;
	}
	for (; *pat != '\0'; pat++, name++) {
		if (*pat == '*' || *pat == '%') {
			for (const char *n = name;; n++) {
				if (match(pat + 1, n))
					return 1;
				if (*n == '\0' || (*pat == '%' && *n == '/'))
					return 0;
			}
		}
		if (*pat != *name)
			return 0;
	}
	return *name == '\0';
}

struct list_item {
	char *name;
	int exists;
	int subscribed;
	enum store_special_use special;
};

struct list_ctx {
	struct list_item *items;
	size_t n, cap;
};

static void add_item(struct list_ctx *lc, const char *name, int exists, int subscribed,
		     enum store_special_use special)
{
	for (size_t i = 0; i < lc->n; i++) {
		if (strcmp(lc->items[i].name, name) == 0) {
			lc->items[i].exists |= exists;
			lc->items[i].subscribed |= subscribed;
			if (exists)
				lc->items[i].special = special;
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
	lc->items[lc->n++] = (struct list_item){ strdup(name), exists, subscribed, special };
}

static void list_cb(void *ctx, const struct store_mailbox_status *st)
{
	struct list_ctx *lc = ctx;
	add_item(lc, st->name, st->id != 0, st->subscribed, st->special_use);
	/* parents of a/b/c exist in the hierarchy even if not as mailboxes */
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", st->name);
	for (char *p = strrchr(buf, '/'); p != NULL && p > buf; p = strrchr(buf, '/')) {
		*p = '\0';
		add_item(lc, buf, 0, 0, STORE_SPECIAL_NONE);
	}
}

static int has_children(const struct list_ctx *lc, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < lc->n; i++)
		if (strncmp(lc->items[i].name, name, n) == 0 && lc->items[i].name[n] == '/' &&
		    lc->items[i].exists)
			return 1;
	for (size_t i = 0; i < lc->n; i++)
		if (strncmp(lc->items[i].name, name, n) == 0 && lc->items[i].name[n] == '/')
			return 1;
	return 0;
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

static void list_common(struct imap_session *s, struct imap_cmd *cmd, int lsub)
{
	const char *ref = cmd->n_args == 2 ? imap_arg_string(&cmd->args[0]) : NULL;
	const char *pat = cmd->n_args == 2 ? imap_arg_string(&cmd->args[1]) : NULL;
	if (ref == NULL || pat == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s reference pattern", cmd->name);
		return;
	}
	if (*pat == '\0') {
		/* RFC 3501 6.3.8: the hierarchy delimiter and root */
		if (!lsub)
			imap_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->name);
		return;
	}
	char full[1024];
	snprintf(full, sizeof(full), "%s%s", ref, pat);
	struct list_ctx lc = { 0 };
	const char *err;
	if (store_mailbox_list_status(s->srv->store, s->user_id, lsub, list_cb, &lc, &err) < 0) {
		log_error("imap", s->id, "event=store-error error=\"%s\"", err);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot list mailboxes");
		return;
	}
	for (size_t i = 0; i < lc.n; i++) {
		struct list_item *it = &lc.items[i];
		if (match(full, it->name) && (!lsub || it->subscribed)) {
			int kids = has_children(&lc, it->name);
			if (lsub)
				imap_printf(s, "* LSUB (%s) \"/\" ", it->exists ? "" : "\\Noselect");
			else
				imap_printf(s, "* LIST (%s%s%s) \"/\" ",
					    it->exists ? "" : "\\Noselect ",
					    kids ? "\\HasChildren" : "\\HasNoChildren",
					    special_name(it->special));
			imap_write_mailbox(s, it->name);
			imap_write(s, "\r\n", 2);
		} else if (lsub && strchr(full, '%') != NULL && !it->subscribed) {
			/* RFC 3501 6.3.9: a '%' match of an unsubscribed parent with
			 * subscribed children is listed \Noselect */
			int sub_kid = 0;
			size_t n = strlen(it->name);
			for (size_t k = 0; k < lc.n; k++)
				if (lc.items[k].subscribed &&
				    strncmp(lc.items[k].name, it->name, n) == 0 &&
				    lc.items[k].name[n] == '/')
					sub_kid = 1;
			if (sub_kid && match(full, it->name)) {
				imap_printf(s, "* LSUB (\\Noselect) \"/\" ");
				imap_write_mailbox(s, it->name);
				imap_write(s, "\r\n", 2);
			}
		}
	}
	for (size_t i = 0; i < lc.n; i++)
		free(lc.items[i].name);
	free(lc.items);
	imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->name);
}

void imap_cmd_list(struct imap_session *s, struct imap_cmd *cmd)
{
	list_common(s, cmd, 0);
}

void imap_cmd_lsub(struct imap_session *s, struct imap_cmd *cmd)
{
	list_common(s, cmd, 1);
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

void imap_cmd_status(struct imap_session *s, struct imap_cmd *cmd)
{
	char name[512];
	if (cmd->n_args != 2 || mailbox_arg(cmd, 0, name, sizeof(name)) == NULL ||
	    cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].list_count == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: STATUS mailbox (items)");
		return;
	}
	const struct imap_arg *items = &cmd->args[1];
	static const char *const known[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY",
					     "UNSEEN", "SIZE", "DELETED" };
	for (size_t i = 0; i < items->list_count; i++) {
		const char *it = imap_arg_atom(&items->list[i]);
		int ok = 0;
		for (size_t k = 0; it != NULL && k < sizeof(known) / sizeof(known[0]); k++)
			if (strcasecmp(it, known[k]) == 0)
				ok = 1;
		if (!ok) {
			imap_tagged(s, cmd->tag, "BAD", "Unknown STATUS item");
			return;
		}
	}
	struct store_mailbox_status st;
	const char *err;
	int r = store_mailbox_status(s->srv->store, s->user_id, name, &st, &err);
	if (r <= 0) {
		imap_tagged(s, cmd->tag, "NO", r == 0 ? "[NONEXISTENT] No such mailbox"
						      : "[SERVERBUG] Cannot read mailbox");
		return;
	}
	imap_printf(s, "* STATUS ");
	imap_write_mailbox(s, st.name);
	imap_write(s, " (", 2);
	for (size_t i = 0; i < items->list_count; i++) {
		const char *it = imap_arg_atom(&items->list[i]);
		unsigned long long v = 0;
		if (strcasecmp(it, "MESSAGES") == 0)
			v = st.messages;
		else if (strcasecmp(it, "RECENT") == 0)
			v = 0; /* \Recent belongs to the session that selects */
		else if (strcasecmp(it, "UIDNEXT") == 0)
			v = st.uidnext;
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			v = st.uidvalidity;
		else if (strcasecmp(it, "UNSEEN") == 0)
			v = st.unseen;
		else if (strcasecmp(it, "SIZE") == 0)
			v = st.size;
		else if (strcasecmp(it, "DELETED") == 0)
			v = st.deleted;
		char up[16];
		size_t k = 0;
		for (; it[k] != '\0' && k < sizeof(up) - 1; k++)
			up[k] = (char)(it[k] >= 'a' && it[k] <= 'z' ? it[k] - 32 : it[k]);
		up[k] = '\0';
		imap_printf(s, "%s%s %llu", i ? " " : "", up, v);
	}
	imap_write(s, ")\r\n", 3);
	if (s->sel != NULL)
		imap_mailbox_sync(s, 1);
	imap_tagged(s, cmd->tag, "OK", "STATUS completed");
}
