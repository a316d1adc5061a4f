/* EHLO, HELO (RFC 5321 4.1.1.1) and the ESMTP keywords. */
#include "smtp/smtp_session.h"

#include "core/config.h"
#include "core/log.h"

#include <string.h>

static int helo_arg_ok(const char *args)
{
	/* A domain or an address literal; be liberal (many clients send odd
	 * names) but refuse empty arguments, spaces and control characters. */
	if (*args == '\0' || strlen(args) > 255)
		return 0;
	for (const unsigned char *p = (const unsigned char *)args; *p != '\0'; p++)
		if (*p <= ' ' || *p == 127)
			return 0;
	return 1;
}

static void helo_common(struct smtp_session *s, const char *args, int esmtp)
{
	if (!helo_arg_ok(args)) {
		smtp_reply_error(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	smtp_reset_transaction(s);
	snprintf(s->helo, sizeof(s->helo), "%s", args);
	s->esmtp = esmtp;
	smtp_set_state(s, SMTP_READY);
}

void smtp_cmd_ehlo(struct smtp_session *s, const char *args)
{
	helo_common(s, args, 1);
	if (s->state != SMTP_READY)
		return;
	const struct config *cfg = s->srv->config;
	smtp_reply(s, "250-%s Hello %s [%s]", cfg->hostname, s->helo, net_conn_peer_ip(s->conn));
	smtp_reply(s, "250-SIZE %llu", (unsigned long long)cfg->limits.max_message_size);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-CHUNKING");
	if (net_conn_tls_available(s->conn))
		smtp_reply(s, "250-STARTTLS");
	smtp_reply(s, "250 ENHANCEDSTATUSCODES");
}

void smtp_cmd_helo(struct smtp_session *s, const char *args)
{
	helo_common(s, args, 0);
	if (s->state == SMTP_READY)
		smtp_reply(s, "250 %s", s->srv->config->hostname);
}
