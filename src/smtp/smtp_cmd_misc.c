/* RSET, NOOP, QUIT, HELP, VRFY, EXPN, STARTTLS. */
#include "smtp/smtp_session.h"

#include "core/config.h"
#include "core/log.h"

void smtp_cmd_rset(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reset_transaction(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

void smtp_cmd_noop(struct smtp_session *s, const char *args)
{
	(void)args; /* 4.1.1.9: a parameter is allowed and ignored */
	smtp_reply(s, "250 2.0.0 Ok");
}

void smtp_cmd_quit(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "221 2.0.0 %s Bye", s->srv->config->hostname);
	smtp_set_state(s, SMTP_CLOSING);
	net_conn_close(s->conn);
}

void smtp_cmd_help(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, "214-2.0.0 Commands:");
	smtp_reply(s, "214-2.0.0   EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY%s",
		   net_conn_tls_available(s->conn) ? " STARTTLS" : "");
	smtp_reply(s, "214 2.0.0 End of HELP");
}

void smtp_cmd_vrfy(struct smtp_session *s, const char *args)
{
	if (*args == '\0') {
		smtp_reply_error(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* Never confirm or deny that a user exists (RFC 5321 3.5.3, 7.3). */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

void smtp_cmd_expn(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply_error(s, "502 5.5.1 EXPN not available");
}

void smtp_cmd_starttls(struct smtp_session *s, const char *args)
{
	(void)args;
	if (!net_conn_tls_available(s->conn)) {
		smtp_reply_error(s, net_conn_is_tls(s->conn) ? "503 5.5.1 TLS already active"
							     : "502 5.5.1 STARTTLS not available");
		return;
	}
	if (s->state != SMTP_READY && s->state != SMTP_INIT) {
		smtp_reply_error(s, "503 5.5.1 STARTTLS not allowed during a transaction");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learned before TLS, including the
	 * EHLO, and (in net_conn_starttls) any pipelined plaintext. */
	smtp_reset_transaction(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	smtp_set_state(s, SMTP_INIT);
	log_info("smtp", s->id, "event=starttls");
	net_conn_starttls(s->conn);
}
