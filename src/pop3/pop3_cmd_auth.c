/* USER / PASS (RFC 1939 7), APOP (RFC 1939 7), AUTH PLAIN / LOGIN /
 * SCRAM-SHA-256 (RFC 5034, RFC 4616, RFC 5802, RFC 7677) with initial
 * response. Passwords are checked on the auth pool;
 * failures are answered after a delay that grows with each failure, and
 * never say whether the user exists (RFC 3206 [AUTH]). */
#include "pop3/pop3_session.h"

#include "auth/auth.h"
#include "core/base64.h"
#include "auth/sasl.h"
#include "core/log.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --------------------------------------------------------- common endings */

static void fail_reply(void *arg)
{
	struct pop3_session *s = arg;
	pop3_fail(s, "[AUTH] Authentication failed");
	if (s->auth_failures >= POP3_AUTH_FAILURES_MAX) {
		log_info("pop3", s->id, "event=too-many-auth-failures");
		pop3_session_close(s); /* s may be gone after this */
		return;
	}
	pop3_done(s);
}

/* A failed login: the reply comes after the delay (the session is busy
 * until then, so pipelined commands wait). */
static void login_failed(struct pop3_session *s, const char *how)
{
	s->auth_failures++;
	log_info("pop3", s->id, "event=login-failed method=%s failures=%u", how,
		 s->auth_failures);
	if (!s->busy)
		pop3_async(s);
	net_conn_after(s->conn, POP3_FAIL_DELAY_MS * s->auth_failures, fail_reply, s);
}

struct login_job {
	struct auth_result res;
	char how[8];
};

static void login_result(void *session, void *arg)
{
	struct pop3_session *s = session;
	struct login_job *job = arg;
	if (s == NULL) {
		free(job);
		return;
	}
	if (job->res.ok) {
		pop3_login(s, job->res.user_id, job->res.address);
		pop3_done(s);
	} else if (job->res.tempfail) {
		pop3_fail(s, "[SYS/TEMP] Temporary failure, try again later");
		pop3_done(s);
	} else {
		login_failed(s, job->how);
	}
	explicit_bzero(job, sizeof(*job));
	free(job);
}

struct verify_ctx {
	net_handle_t *h;
	char how[8];
};

/* On a pool thread: hand the result to the session's worker. */
static void auth_done(void *ctx, const struct auth_result *res)
{
	struct verify_ctx *vc = ctx;
	struct login_job *job = malloc(sizeof(*job));
	if (job == NULL)
		abort();
	job->res = *res;
	memcpy(job->how, vc->how, sizeof(job->how));
	net_handle_post(vc->h, login_result, job);
	free(vc);
}

static void start_check(struct pop3_session *s, const char *how, const char *user,
			const char *pass)
{
	struct verify_ctx *vc = malloc(sizeof(*vc));
	if (vc == NULL) {
		pop3_fail(s, "[SYS/TEMP] Out of memory");
		return;
	}
	vc->h = net_handle_ref(s->handle);
	snprintf(vc->how, sizeof(vc->how), "%s", how);
	pop3_async(s);
	auth_verify(s->srv->auth, user, pass, auth_done, vc);
}

static int check_plaintext(struct pop3_session *s)
{
	if (pop3_plaintext_ok(s))
		return 1;
	pop3_err(s, "[AUTH] Plaintext authentication is not allowed without TLS; use STLS first");
	return 0;
}

/* -------------------------------------------------------------- USER/PASS */

void pop3_cmd_user(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	if (!check_plaintext(s))
		return;
	if (strlen(a->args[0]) > POP3_USER_MAX) {
		pop3_err(s, "User name too long");
		return;
	}
	/* Always +OK: whether the user exists shows nowhere (RFC 1939 7 allows
	 * -ERR here; that would tell). */
	snprintf(s->user, sizeof(s->user), "%s", a->args[0]);
	pop3_ok(s, "Send PASS");
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	if (s->user[0] == '\0') {
		pop3_err(s, "Send USER first");
		return;
	}
	if (!check_plaintext(s))
		return;
	char user[sizeof(s->user)];
	memcpy(user, s->user, sizeof(user));
	s->user[0] = '\0'; /* a new USER is needed after this PASS, whatever its outcome */
	/* RFC 1939 7: the argument is the rest of the line, spaces included */
	start_check(s, "pass", user, a->rest);
}

/* ------------------------------------------------------------------- APOP */

void pop3_cmd_apop(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	const char *name = a->args[0], *digest = a->args[1];
	if (strlen(digest) != 32 || strspn(digest, "0123456789abcdefABCDEF") != 32) {
		pop3_err(s, "Syntax: APOP name digest (32 hex digits)");
		return;
	}
	s->user[0] = '\0';
	int64_t user_id = 0;
	char *secret = NULL;
	const char *err;
	int r = strlen(name) > POP3_USER_MAX
			? 0
			: store_user_apop_secret(s->srv->store, name, &user_id, &secret, &err);
	if (r < 0) {
		log_error("pop3", s->id, "event=store-error error=\"%s\"", err);
		pop3_fail(s, "[SYS/TEMP] Temporary failure, try again later");
		return;
	}
	/* The same work whether or not there is a secret to check against. */
	int ok = pop3_apop_check(s->timestamp, secret != NULL ? secret : "-", digest);
	ok = ok && r == 1 && secret != NULL;
	if (secret != NULL) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	if (!ok) {
		login_failed(s, "apop");
		return;
	}
	char address[POP3_USER_MAX + 1];
	/* the canonical form (lower-case domain), as auth_verify gives it */
	snprintf(address, sizeof(address), "%s", name);
	char *at = strrchr(address, '@');
	for (char *p = at; p != NULL && *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	pop3_login(s, user_id, address);
}

/* ------------------------------------------------------------------- AUTH */

static void sasl_end(struct pop3_session *s)
{
	s->sasl_step = 0;
	sasl_free(s->scram);
	s->scram = NULL;
	explicit_bzero(s->sasl_user, sizeof(s->sasl_user));
	pop3_parser_set_max(&s->parser, POP3_LINE_MAX);
}

/* base64 into a malloc'd NUL-terminated buffer, or NULL after replying. */
static char *decode(struct pop3_session *s, const char *in, size_t len, size_t *n_r)
{
	char *out = malloc(len / 4 * 3 + 1);
	if (out == NULL) {
		sasl_end(s);
		pop3_fail(s, "[SYS/TEMP] Out of memory");
		return NULL;
	}
	if (base64_decode(in, len, out, n_r) < 0) {
		free(out);
		sasl_end(s);
		pop3_err(s, "Invalid base64");
		return NULL;
	}
	return out;
}

/* PLAIN: authzid NUL authcid NUL passwd (RFC 4616 2) */
static void sasl_plain(struct pop3_session *s, const char *resp, size_t len)
{
	size_t n;
	char *dec = decode(s, resp, len, &n);
	if (dec == NULL)
		return;
	const char *authz = dec;
	const char *nul1 = memchr(dec, '\0', n);
	const char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - dec)) : NULL;
	sasl_end(s);
	if (nul1 == NULL || nul2 == NULL || memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - dec))) {
		pop3_err(s, "Malformed PLAIN response");
	} else if (*authz != '\0' && strcasecmp(authz, nul1 + 1) != 0) {
		pop3_fail(s, "[AUTH] Proxy authorization is not supported");
	} else if (strlen(nul1 + 1) > POP3_USER_MAX) {
		login_failed(s, "plain");
	} else {
		start_check(s, "plain", nul1 + 1, nul2 + 1);
	}
	explicit_bzero(dec, n);
	free(dec);
}

/* SCRAM-SHA-256 (RFC 5802): the server-final message goes in a "+ "
 * continuation, answered by an empty line, then +OK (RFC 5034 4). */
static void sasl_scram(struct pop3_session *s, const char *resp)
{
	if (s->sasl_step == 2) {
		if (*resp != '\0') {
			sasl_end(s);
			pop3_err(s, "Expected an empty response");
			return;
		}
		char address[POP3_USER_MAX + 1];
		int64_t user_id = sasl_user_id(s->scram);
		snprintf(address, sizeof(address), "%s", sasl_authid(s->scram));
		sasl_end(s);
		log_info("pop3", s->id, "event=auth method=scram-sha-256");
		pop3_login(s, user_id, address);
		return;
	}
	char *out;
	int done;
	int r = sasl_scram_step(s->scram, resp, &out, &done);
	if (r == -2) {
		sasl_end(s);
		pop3_fail(s, "[SYS/TEMP] Temporary failure, try again later");
	} else if (r < 0) {
		/* wrong password, unknown user, malformed message: all alike */
		sasl_end(s);
		login_failed(s, "scram");
	} else {
		s->sasl_step = done ? 2 : 1;
		pop3_write(s, "+ ", 2);
		pop3_write(s, out, strlen(out));
		pop3_write(s, "\r\n", 2);
		free(out);
	}
}

void pop3_sasl_input(struct pop3_session *s, const char *line, size_t len)
{
	if (line == NULL) {
		sasl_end(s);
		pop3_err(s, "Invalid SASL response");
		return;
	}
	if (len == 1 && line[0] == '*') {
		sasl_end(s);
		pop3_fail(s, "Authentication cancelled");
		return;
	}
	if (s->scram != NULL) {
		sasl_scram(s, line);
		return;
	}
	if (!s->sasl_login) {
		sasl_plain(s, line, len);
		return;
	}
	size_t n;
	char *dec = decode(s, line, len, &n);
	if (dec == NULL)
		return;
	if (s->sasl_step == 1) {
		if (n > POP3_USER_MAX || memchr(dec, '\0', n) != NULL) {
			free(dec);
			sasl_end(s);
			pop3_err(s, "Invalid user name");
			return;
		}
		memcpy(s->sasl_user, dec, n + 1);
		free(dec);
		s->sasl_step = 2;
		pop3_write(s, "+ UGFzc3dvcmQ6\r\n", 16); /* "Password:" */
		return;
	}
	char user[sizeof(s->sasl_user)];
	memcpy(user, s->sasl_user, sizeof(user));
	sasl_end(s);
	start_check(s, "login", user, dec);
	explicit_bzero(user, sizeof(user));
	explicit_bzero(dec, n);
	free(dec);
}

static void write_mechanisms(struct pop3_session *s)
{
	if (pop3_plaintext_ok(s))
		pop3_write(s, "PLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n", 29);
}

void pop3_cmd_auth(struct pop3_session *s, const struct pop3_cmd_args *a)
{
	if (a->n_args == 0) {
		/* not in RFC 5034, but clients ask so (the RFC 1734 habit) */
		pop3_ok(s, "Mechanisms follow");
		write_mechanisms(s);
		pop3_write(s, ".\r\n", 3);
		return;
	}
	const char *mech = a->args[0];
	const char *ir = a->n_args == 2 ? a->args[1] : NULL;
	int plain = strcasecmp(mech, "PLAIN") == 0;
	int scram = strcasecmp(mech, "SCRAM-SHA-256") == 0;
	if (!plain && !scram && strcasecmp(mech, "LOGIN") != 0) {
		pop3_err(s, "Unsupported authentication mechanism");
		return;
	}
	/* SCRAM sends no password, but follows the same rule as the others */
	if (!check_plaintext(s))
		return;
	s->user[0] = '\0';
	s->sasl_login = !plain;
	/* RFC 5034 4: "=" is an empty initial response */
	if (ir != NULL && strcmp(ir, "=") == 0)
		ir = "";
	if (scram) {
		sasl_free(s->scram);
		if ((s->scram = sasl_scram_start(s->srv->store)) == NULL) {
			pop3_fail(s, "[SYS/TEMP] Temporary failure, try again later");
			return;
		}
		s->sasl_step = 1;
		pop3_parser_set_max(&s->parser, POP3_SASL_LINE_MAX);
		if (ir != NULL) {
			sasl_scram(s, ir);
			return;
		}
		pop3_write(s, "+ \r\n", 4);
		return;
	}
	if (plain) {
		if (ir != NULL) {
			sasl_plain(s, ir, strlen(ir));
			return;
		}
		s->sasl_step = 1;
		pop3_parser_set_max(&s->parser, POP3_SASL_LINE_MAX);
		pop3_write(s, "+ \r\n", 4);
		return;
	}
	s->sasl_step = 1;
	pop3_parser_set_max(&s->parser, POP3_SASL_LINE_MAX);
	if (ir != NULL) {
		pop3_sasl_input(s, ir, strlen(ir)); /* the user name */
		return;
	}
	pop3_write(s, "+ VXNlcm5hbWU6\r\n", 16); /* "Username:" */
}
