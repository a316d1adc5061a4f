/* CAPA (RFC 2449 5), STLS (RFC 2595 4), NOOP (RFC 1939 5). */
#include "pop3/pop3_session.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>

void pop3_cmd_capa(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	(void)a;
	char buf[512];
	int authz = s->state == POP3_AUTHORIZATION;
	int plain = authz && pop3_plaintext_ok(s);
	int stls = authz && net_conn_tls_available(s->conn);
	/* RFC 2449 6: USER and SASL only where they may be used; STLS only
	 * before TLS; LOGIN-DELAY and EXPIRE say what Petrel enforces (no
	 * delay, nothing expires). */
	int n = snprintf(buf, sizeof(buf),
			 "TOP\r\n"
			 "UIDL\r\n"
			 "%s"
			 "%s"
			 "RESP-CODES\r\n"
			 "AUTH-RESP-CODE\r\n"
			 "PIPELINING\r\n"
			 "EXPIRE NEVER\r\n"
			 "LOGIN-DELAY 0\r\n"
			 "IMPLEMENTATION Petrel\r\n"
			 "%s"
			 ".\r\n",
			 plain ? "USER\r\n" : "", plain ? "SASL PLAIN LOGIN SCRAM-SHA-256\r\n" : "",
			 stls ? "STLS\r\n" : "");
	pop3_ok(s, "Capability list follows");
	pop3_write(s, buf, (size_t)n);
}

void pop3_cmd_stls(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	(void)a;
	if (net_conn_is_tls(s->conn)) {
		pop3_err(s, "Already using TLS");
		return;
	}
	if (!net_conn_tls_available(s->conn)) {
		pop3_err(s, "TLS is not available");
		return;
	}
	pop3_ok(s, "Begin TLS negotiation");
	if (net_conn_starttls(s->conn) < 0) {
		log_error("pop3", s->id, "event=starttls-failed");
		pop3_session_close(s);
		return;
	}
	/* CVE-2011-0411 class: nothing sent before the handshake counts, not
	 * a partial line and not an earlier USER (RFC 2595 4). */
	pop3_parser_reset(&s->parser);
	s->user[0] = '\0';
	log_info("pop3", s->id, "event=starttls");
}

void pop3_cmd_noop(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	(void)a;
	pop3_ok(s, "%s", "");
}
