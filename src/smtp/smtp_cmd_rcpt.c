/* RCPT TO (RFC 5321 4.1.1.3): local users only, never an open relay. */
#include "smtp/smtp_session.h"

#include "core/config.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 1 accepted (user id set), 0 rejected (reply sent), -1 temporary error. */
static int resolve(struct smtp_session *s, const struct smtp_path *p, int64_t *user_r)
{
	store_t *store = s->srv->store;
	const char *err;
	char addr[SMTP_ADDRESS_MAX];

	if (!p->postmaster_only) {
		if (p->domain_literal) {
			smtp_reply(s, "550 5.7.1 Relaying denied");
			return 0;
		}
		int local = store_domain_exists(store, p->domain, &err);
		if (local < 0)
			goto tempfail;
		if (local == 0) {
			smtp_reply(s, "550 5.7.1 Relaying denied");
			return 0;
		}
		smtp_path_address(p, addr, sizeof(addr));
		int found = store_user_lookup(store, addr, user_r, &err);
		if (found < 0)
			goto tempfail;
		if (found)
			return 1;
	}
	/* RFC 5321 4.5.1: postmaster@ every local domain, and <Postmaster>. */
	if (strcasecmp(p->local, "postmaster") == 0) {
		int found = store_user_lookup(store, s->srv->config->postmaster, user_r, &err);
		if (found < 0)
			goto tempfail;
		if (found)
			return 1;
		log_error("smtp", s->id, "event=postmaster-missing address=%s",
			  s->srv->config->postmaster);
		smtp_reply(s, "451 4.3.0 Postmaster mailbox not configured, try again later");
		return -1;
	}
	smtp_reply(s, "550 5.1.1 User unknown");
	return 0;
tempfail:
	log_error("smtp", s->id, "event=store-error error=\"%s\"", err);
	smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
	return -1;
}

void smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	if (s->state != SMTP_MAIL && s->state != SMTP_RCPT) {
		smtp_reply_error(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	if (s->bdat_started) {
		/* RFC 3030 2: BDAT chunks follow the recipients */
		smtp_reply_error(s, "503 5.5.1 RCPT not allowed after BDAT");
		return;
	}
	if (strncasecmp(args, "TO:", 3) != 0) {
		smtp_reply_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	struct smtp_path path;
	const char *params, *why;
	if (smtp_parse_path(args + 3, 0, &path, &params, &why) < 0) {
		smtp_reply_error(s, "501 5.1.3 Bad recipient address syntax (%s)", why);
		return;
	}
	if (*params != '\0') {
		smtp_reply_error(s, "555 5.5.4 Unsupported RCPT parameters");
		return;
	}
	if (path.utf8 && !s->smtputf8) {
		smtp_reply_error(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	if (s->n_rcpts >= s->srv->config->limits.max_recipients) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	int64_t uid;
	char addr[SMTP_ADDRESS_MAX];
	smtp_path_address(&path, addr, sizeof(addr));
	char safe[128];
	if (resolve(s, &path, &uid) != 1) {
		log_info("smtp", s->id, "event=rcpt-rejected to=%s",
			 log_safe(addr, strlen(addr), safe, sizeof(safe)));
		return;
	}
	if (s->n_rcpts == s->rcpt_cap) {
		unsigned cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
		int64_t *n = realloc(s->rcpt_ids, cap * sizeof(*n));
		if (n == NULL) {
			smtp_reply(s, "452 4.3.1 Out of memory");
			return;
		}
		s->rcpt_ids = n;
		s->rcpt_cap = cap;
	}
	s->rcpt_ids[s->n_rcpts++] = uid;
	if (s->n_rcpts == 1)
		snprintf(s->first_rcpt, sizeof(s->first_rcpt), "%s", addr);
	smtp_set_state(s, SMTP_RCPT);
	smtp_reply(s, "250 2.1.5 Ok");
}
