/* MAIL FROM (RFC 5321 4.1.1.2) with SIZE (RFC 1870), BODY (RFC 6152) and
 * SMTPUTF8 (RFC 6531) parameters. */
#include "smtp/smtp_session.h"

#include "core/config.h"
#include "core/log.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

void smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	if (s->state != SMTP_READY) {
		smtp_reply_error(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (strncasecmp(args, "FROM:", 5) != 0) {
		smtp_reply_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	struct smtp_path path;
	const char *params, *why;
	if (smtp_parse_path(args + 5, 1, &path, &params, &why) < 0 || path.postmaster_only) {
		smtp_reply_error(s, "501 5.1.7 Bad sender address syntax (%s)",
				 path.postmaster_only ? "address needs a domain" : why);
		return;
	}
	int utf8 = 0, body8 = 0;
	char key[32], value[256];
	int r;
	while ((r = smtp_next_param(&params, key, sizeof(key), value, sizeof(value))) > 0) {
		if (!s->esmtp) {
			smtp_reply_error(s, "555 5.5.4 Parameters need EHLO");
			return;
		}
		if (strcasecmp(key, "SIZE") == 0) {
			char *end;
			if (!isdigit((unsigned char)value[0])) {
				smtp_reply_error(s, "501 5.5.4 Bad SIZE value");
				return;
			}
			unsigned long long size = strtoull(value, &end, 10);
			if (*end != '\0') {
				smtp_reply_error(s, "501 5.5.4 Bad SIZE value");
				return;
			}
			if (size > s->srv->config->limits.max_message_size) {
				/* RFC 1870 6.1 */
				smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
				return;
			}
		} else if (strcasecmp(key, "BODY") == 0) {
			if (strcasecmp(value, "8BITMIME") == 0)
				body8 = 1;
			else if (strcasecmp(value, "7BIT") != 0) {
				smtp_reply_error(s, "501 5.5.4 BODY must be 7BIT or 8BITMIME");
				return;
			}
		} else if (strcasecmp(key, "SMTPUTF8") == 0) {
			if (value[0] != '\0') {
				smtp_reply_error(s, "501 5.5.4 SMTPUTF8 takes no value");
				return;
			}
			utf8 = 1;
		} else {
			smtp_reply_error(s, "555 5.5.4 Unsupported MAIL parameter %s", key);
			return;
		}
	}
	if (r < 0) {
		smtp_reply_error(s, "501 5.5.4 Bad MAIL parameters");
		return;
	}
	if (path.utf8 && !utf8) {
		/* RFC 6531 3.4: non-ASCII addresses need the SMTPUTF8 parameter */
		smtp_reply_error(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	s->from = path;
	s->smtputf8 = utf8;
	s->body_8bit = body8;
	smtp_set_state(s, SMTP_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}
