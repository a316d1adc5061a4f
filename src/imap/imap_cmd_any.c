/* CAPABILITY, NOOP, CHECK, LOGOUT, ID, ENABLE, STARTTLS, COMPRESS, IDLE. */
#include "imap/imap_session.h"

#include "core/config.h"
#include "core/log.h"

#include <string.h>
#include <strings.h>

/* Advertised only for what is complete (the tests check each). */
void imap_write_capabilities(struct imap_session *s)
{
	/* RFC 7888 5: LITERAL+ or LITERAL-, never both */
	imap_printf(s, "IMAP4rev1 IMAP4rev2 %s SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE "
		       "CHILDREN SPECIAL-USE BINARY CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED "
		       "LIST-STATUS STATUS=SIZE UTF8=ACCEPT MULTIAPPEND SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES "
		       "APPENDLIMIT=%llu",
		    s->srv->config->imap_literal_plus ? "LITERAL+" : "LITERAL-",
		    (unsigned long long)s->srv->config->limits.max_message_size);
	/* RFC 4978: offered in every state (clients look before LOGIN) but
	 * accepted only once authenticated */
	if (!net_conn_is_compressed(s->conn))
		imap_printf(s, " COMPRESS=DEFLATE");
	if (s->state == IMAP_NOTAUTH) {
		if (net_conn_tls_available(s->conn))
			imap_printf(s, " STARTTLS");
		/* RFC 3501 6.2.3 / RFC 8314: no cleartext passwords except on loopback */
		if (net_conn_is_tls(s->conn) || net_conn_is_loopback(s->conn))
			imap_printf(s, " AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256");
		else
			imap_printf(s, " LOGINDISABLED");
	}
}

void imap_cmd_capability(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "CAPABILITY takes no arguments");
		return;
	}
	imap_printf(s, "* CAPABILITY ");
	imap_write_capabilities(s);
	imap_write(s, "\r\n", 2);
	imap_tagged(s, cmd->tag, "OK", "CAPABILITY completed");
}

void imap_cmd_noop(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "%s takes no arguments", cmd->name);
		return;
	}
	imap_mailbox_sync(s, 1);
	imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->name);
}

void imap_cmd_check(struct imap_session *s, struct imap_cmd *cmd)
{
	/* Every change is durable when acknowledged: CHECK is a NOOP. */
	imap_cmd_noop(s, cmd);
}

void imap_cmd_logout(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "LOGOUT takes no arguments");
		return;
	}
	imap_untagged(s, "BYE Petrel logging out");
	imap_tagged(s, cmd->tag, "OK", "LOGOUT completed");
	imap_session_close(s, NULL);
}

void imap_cmd_id(struct imap_session *s, struct imap_cmd *cmd)
{
	/* RFC 2971: ("key" value ...) or NIL */
	if (cmd->n_args != 1 ||
	    (cmd->args[0].type != IMAP_ARG_NIL && cmd->args[0].type != IMAP_ARG_LIST) ||
	    (cmd->args[0].type == IMAP_ARG_LIST && (cmd->args[0].list_count % 2 != 0 ||
						    cmd->args[0].list_count > 60))) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: ID (\"key\" \"value\" ...) or ID NIL");
		return;
	}
	imap_untagged(s, "ID (\"name\" \"Petrel\" \"vendor\" \"Petrel\")");
	imap_tagged(s, cmd->tag, "OK", "ID completed");
}

void imap_cmd_enable(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: ENABLE capability ...");
		return;
	}
	/* RFC 5161 3.1: unknown capabilities are ignored; ENABLED lists what
	 * this command enabled (not what was on before). */
	char enabled[128] = "";
	for (size_t i = 0; i < cmd->n_args; i++) {
		const char *cap = imap_arg_atom(&cmd->args[i]);
		if (cap == NULL) {
			imap_tagged(s, cmd->tag, "BAD", "Syntax: ENABLE capability ...");
			return;
		}
	}
	int had_condstore = s->condstore, had_qresync = s->qresync;
	int listed_condstore = 0, listed_qresync = 0;
	for (size_t i = 0; i < cmd->n_args; i++) {
		const char *cap = imap_arg_atom(&cmd->args[i]);
		if (strcasecmp(cap, "CONDSTORE") == 0 && !had_condstore && !listed_condstore) {
			/* RFC 7162 3.1: a CONDSTORE enabling command */
			imap_condstore_enable(s);
			strcat(enabled, " CONDSTORE");
			listed_condstore = 1;
		} else if (strcasecmp(cap, "QRESYNC") == 0 && !had_qresync && !listed_qresync) {
			/* RFC 7162 3.2.3: implies CONDSTORE; VANISHED from now on */
			imap_condstore_enable(s);
			s->qresync = 1;
			strcat(enabled, " QRESYNC");
			listed_qresync = 1;
		} else if (strcasecmp(cap, "UTF8=ACCEPT") == 0 && !s->utf8_accept &&
			   s->state == IMAP_AUTH) {
			/* RFC 6855 3: only in the authenticated state; UTF-8 in
			 * quoted strings from now on */
			s->utf8_accept = 1;
			strcat(enabled, " UTF8=ACCEPT");
		} else if (strcasecmp(cap, "IMAP4rev2") == 0 && !s->rev2 && s->state == IMAP_AUTH) {
			/* RFC 9051 6.3.1: IMAP4rev2 responses from now on (no
			 * \Recent, ESEARCH, LIST in SELECT, UTF-8 strings) */
			s->rev2 = 1;
			strcat(enabled, " IMAP4rev2");
		}
	}
	imap_untagged(s, "ENABLED%s", enabled);
	imap_tagged(s, cmd->tag, "OK", "ENABLE completed");
}

void imap_cmd_starttls(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "STARTTLS takes no arguments");
		return;
	}
	if (!net_conn_tls_available(s->conn)) {
		imap_tagged(s, cmd->tag, "BAD", "TLS is %s",
			    net_conn_is_tls(s->conn) ? "already active" : "not available");
		return;
	}
	imap_tagged(s, cmd->tag, "OK", "Begin TLS negotiation now");
	/* the buffered plaintext after STARTTLS is dropped (CVE-2011-0411) */
	imap_parser_reset(s->parser);
	net_conn_starttls(s->conn);
	log_info("imap", s->id, "event=starttls");
}

/* ---- COMPRESS (RFC 4978) ---- */

void imap_cmd_compress(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *mech = cmd->n_args == 1 ? imap_arg_atom(&cmd->args[0]) : NULL;
	if (mech == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: COMPRESS DEFLATE");
		return;
	}
	if (strcasecmp(mech, "DEFLATE") != 0) {
		imap_tagged(s, cmd->tag, "BAD", "Unknown compression mechanism");
		return;
	}
	/* RFC 4978 3: the same mechanism already active answers NO with
	 * COMPRESSIONACTIVE (the layer here is this very one) */
	if (net_conn_is_compressed(s->conn)) {
		imap_tagged(s, cmd->tag, "NO", "[COMPRESSIONACTIVE] DEFLATE is already active");
		return;
	}
	/* The tagged OK goes out uncompressed and compression starts right
	 * after its CRLF, both ways (RFC 4978 3). The parser took nothing past
	 * this command's line: what the client pipelined after it is still in
	 * the connection's input and is inflated from there. */
	imap_tagged(s, cmd->tag, "OK", "DEFLATE active");
	if (net_conn_compress(s->conn) < 0) {
		/* too late for NO: the OK is written; without memory for a
		 * compressor the session cannot go on */
		log_error("imap", s->id, "event=compress-failed");
		imap_session_close(s, NULL);
		return;
	}
	log_info("imap", s->id, "event=compress mech=deflate");
}

/* ---- IDLE (RFC 2177) ---- */

void imap_cmd_idle(struct imap_session *s, struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_tagged(s, cmd->tag, "BAD", "IDLE takes no arguments");
		return;
	}
	snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", cmd->tag);
	s->idling = 1;
	imap_printf(s, "+ idling\r\n");
	imap_mailbox_sync(s, 1);
}

void imap_idle_input(struct imap_session *s, const char *line, size_t len)
{
	s->idling = 0;
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0) {
		imap_mailbox_sync(s, 1);
		imap_tagged(s, s->idle_tag, "OK", "IDLE terminated");
	} else {
		imap_tagged(s, s->idle_tag, "BAD", "Expected DONE");
	}
}
