/* LOGIN and AUTHENTICATE PLAIN / LOGIN / SCRAM-SHA-256 (RFC 3501 6.2,
 * RFC 4616, RFC 5802, RFC 7677, SASL-IR RFC 4959). Password checks run on
 * the auth pool; SCRAM runs on the session's thread (no PBKDF2 at login
 * time). Failures are delayed. */
#include "imap/imap_session.h"

#include "auth/auth.h"
#include "auth/sasl.h"
#include "core/base64.h"
#include "core/config.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAIL_DELAY_MS 1500 /* grows with each failure of the session */

struct login_job {
	struct auth_result res;
};

static void fail_reply(void *arg)
{
	struct imap_session *s = arg;
	imap_tagged(s, s->cur.tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
	if (s->auth_failures >= 3)
		imap_session_close(s, "Too many authentication failures");
	imap_cmd_done(s);
}

static void login_ok(struct imap_session *s, int64_t user_id, const char *address,
		     const char *event)
{
	s->state = IMAP_AUTH;
	s->user_id = user_id;
	snprintf(s->user, sizeof(s->user), "%s", address);
	s->auth_failures = 0;
	log_info("imap", s->id, "event=%s user=%s", event, s->user);
	imap_printf(s, "%s OK [CAPABILITY ", s->cur.tag);
	imap_write_capabilities(s);
	imap_printf(s, "] Logged in\r\n");
}

static void login_result(void *session, void *arg)
{
	struct imap_session *s = session;
	struct login_job *job = arg;
	if (s == NULL) {
		free(job);
		return;
	}
	if (job->res.ok) {
		login_ok(s, job->res.user_id, job->res.address, "login");
		imap_cmd_done(s);
	} else if (job->res.tempfail) {
		imap_tagged(s, s->cur.tag, "NO", "[UNAVAILABLE] Temporary failure, try again");
		imap_cmd_done(s);
	} else {
		s->auth_failures++;
		log_info("imap", s->id, "event=login-failed failures=%u", s->auth_failures);
		net_conn_after(s->conn, FAIL_DELAY_MS * s->auth_failures, fail_reply, s);
	}
	free(job);
}

static void auth_done(void *ctx, const struct auth_result *res)
{
	struct login_job *job = malloc(sizeof(*job));
	job->res = *res;
	net_handle_post(ctx, login_result, job);
}

static int plaintext_ok(struct imap_session *s)
{
	return net_conn_is_tls(s->conn) || net_conn_is_loopback(s->conn);
}

static void start_check(struct imap_session *s, struct imap_cmd *cmd, const char *user,
			const char *pass)
{
	imap_cmd_async(s, cmd);
	auth_verify(s->srv->auth, user, pass, auth_done, net_handle_ref(s->handle));
}

void imap_cmd_login(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *user = cmd->n_args == 2 ? imap_arg_string(&cmd->args[0]) : NULL;
	const char *pass = cmd->n_args == 2 ? imap_arg_string(&cmd->args[1]) : NULL;
	if (user == NULL || pass == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: LOGIN user password");
		return;
	}
	if (!plaintext_ok(s)) {
		imap_tagged(s, cmd->tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
		return;
	}
	start_check(s, cmd, user, pass);
}

/* ---- SASL ---- */

/* Strict base64 decode into a malloc'd, NUL-terminated buffer. */
static int b64_decode(const char *in, size_t len, char **out_r, size_t *n_r)
{
	char *out = malloc(len / 4 * 3 + 1);
	if (out == NULL || base64_decode(in, len, out, n_r) < 0) {
		free(out);
		return -1;
	}
	*out_r = out;
	return 0;
}

static void sasl_fail(struct imap_session *s, const char *status, const char *msg)
{
	s->sasl_step = 0;
	explicit_bzero(s->sasl_user, sizeof(s->sasl_user));
	sasl_free(s->scram);
	s->scram = NULL;
	imap_tagged(s, s->cur.tag, status, "%s", msg);
}

/* PLAIN: authzid NUL authcid NUL passwd (RFC 4616) */
static void sasl_plain(struct imap_session *s, const char *resp, size_t len)
{
	char *dec;
	size_t n;
	if (b64_decode(resp, len, &dec, &n) < 0) {
		sasl_fail(s, "BAD", "Invalid base64");
		return;
	}
	const char *authz = dec;
	const char *nul1 = memchr(dec, '\0', n);
	const char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - dec)) : NULL;
	if (nul1 == NULL || nul2 == NULL) {
		free(dec);
		sasl_fail(s, "BAD", "Malformed PLAIN response");
		return;
	}
	const char *authc = nul1 + 1, *pass = nul2 + 1;
	if (*authz != '\0' && strcasecmp(authz, authc) != 0) {
		explicit_bzero(dec, n);
		free(dec);
		sasl_fail(s, "NO", "[AUTHORIZATIONFAILED] Proxy authorization not allowed");
		return;
	}
	s->sasl_step = 0;
	struct imap_cmd cmd = s->cur;
	start_check(s, &cmd, authc, pass);
	explicit_bzero(dec, n);
	free(dec);
}

/* SCRAM-SHA-256: step 1 a client message (client-first, client-final);
 * step 2 the empty response to the server-final message (RFC 4422 5). */
static void sasl_scram(struct imap_session *s, const char *resp)
{
	if (s->sasl_step == 2) {
		if (*resp != '\0') {
			sasl_fail(s, "BAD", "Expected an empty response");
			return;
		}
		char address[sizeof(s->user)];
		int64_t user_id = sasl_user_id(s->scram);
		snprintf(address, sizeof(address), "%s", sasl_authid(s->scram));
		s->sasl_step = 0;
		sasl_free(s->scram);
		s->scram = NULL;
		login_ok(s, user_id, address, "login method=scram-sha-256");
		return;
	}
	char *out;
	int done;
	int r = sasl_scram_step(s->scram, resp, &out, &done);
	if (r == -2) {
		sasl_fail(s, "NO", "[UNAVAILABLE] Temporary failure, try again");
		return;
	}
	if (r < 0) {
		/* wrong password, unknown user, malformed message: all alike */
		s->sasl_step = 0;
		sasl_free(s->scram);
		s->scram = NULL;
		struct imap_cmd cmd = s->cur;
		imap_cmd_async(s, &cmd);
		s->auth_failures++;
		log_info("imap", s->id, "event=login-failed method=scram-sha-256 failures=%u",
			 s->auth_failures);
		net_conn_after(s->conn, FAIL_DELAY_MS * s->auth_failures, fail_reply, s);
		return;
	}
	s->sasl_step = done ? 2 : 1;
	imap_printf(s, "+ %s\r\n", out);
	free(out);
}

void imap_sasl_input(struct imap_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		sasl_fail(s, "BAD", "Authentication cancelled");
		return;
	}
	if (strcmp(s->sasl_mech, "SCRAM-SHA-256") == 0) {
		sasl_scram(s, line);
		return;
	}
	if (strcmp(s->sasl_mech, "PLAIN") == 0) {
		sasl_plain(s, line, len);
		return;
	}
	/* LOGIN: step 1 user name, step 2 password */
	char *dec;
	size_t n;
	if (b64_decode(line, len, &dec, &n) < 0) {
		sasl_fail(s, "BAD", "Invalid base64");
		return;
	}
	if (s->sasl_step == 1) {
		snprintf(s->sasl_user, sizeof(s->sasl_user), "%s", dec);
		free(dec);
		s->sasl_step = 2;
		imap_printf(s, "+ UGFzc3dvcmQ6\r\n"); /* "Password:" */
		return;
	}
	s->sasl_step = 0;
	struct imap_cmd cmd = s->cur;
	start_check(s, &cmd, s->sasl_user, dec);
	explicit_bzero(dec, n);
	free(dec);
	explicit_bzero(s->sasl_user, sizeof(s->sasl_user));
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_cmd *cmd)
{
	const char *mech = cmd->n_args >= 1 ? imap_arg_atom(&cmd->args[0]) : NULL;
	const char *ir = cmd->n_args == 2 ? imap_arg_string(&cmd->args[1]) : NULL;
	if (mech == NULL || cmd->n_args > 2 || (cmd->n_args == 2 && ir == NULL)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	int scram = strcasecmp(mech, "SCRAM-SHA-256") == 0;
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0 && !scram) {
		imap_tagged(s, cmd->tag, "NO", "Unsupported authentication mechanism");
		return;
	}
	/* SCRAM sends no password, but follows the same rule (the session
	 * itself is worth protecting) */
	if (!plaintext_ok(s)) {
		imap_tagged(s, cmd->tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
		return;
	}
	s->cur = *cmd;
	s->cur.args = NULL;
	s->cur.n_args = 0;
	if (scram) {
		sasl_free(s->scram);
		if ((s->scram = sasl_scram_start(s->srv->store)) == NULL) {
			imap_tagged(s, cmd->tag, "NO", "[UNAVAILABLE] Temporary failure, try again");
			return;
		}
		snprintf(s->sasl_mech, sizeof(s->sasl_mech), "SCRAM-SHA-256");
		s->sasl_step = 1;
		if (ir != NULL) {
			/* SASL-IR: "=" is an empty initial response */
			sasl_scram(s, strcmp(ir, "=") == 0 ? "" : ir);
			return;
		}
		imap_printf(s, "+ \r\n");
		return;
	}
	snprintf(s->sasl_mech, sizeof(s->sasl_mech), "%s",
		 strcasecmp(mech, "PLAIN") == 0 ? "PLAIN" : "LOGIN");
	if (strcmp(s->sasl_mech, "PLAIN") == 0) {
		if (ir != NULL) {
			/* SASL-IR: "=" is an empty initial response */
			sasl_plain(s, strcmp(ir, "=") == 0 ? "" : ir, strcmp(ir, "=") == 0 ? 0 : strlen(ir));
			return;
		}
		s->sasl_step = 1;
		imap_printf(s, "+ \r\n");
		return;
	}
	if (ir != NULL) {
		char *dec;
		size_t n;
		if (b64_decode(ir, strlen(ir), &dec, &n) < 0) {
			sasl_fail(s, "BAD", "Invalid base64");
			return;
		}
		snprintf(s->sasl_user, sizeof(s->sasl_user), "%s", dec);
		free(dec);
		s->sasl_step = 2;
		imap_printf(s, "+ UGFzc3dvcmQ6\r\n");
		return;
	}
	s->sasl_step = 1;
	imap_printf(s, "+ VXNlcm5hbWU6\r\n"); /* "Username:" */
}
