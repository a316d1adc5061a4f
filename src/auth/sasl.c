/* SCRAM-SHA-256 server side on GNU SASL: see sasl.h. */
#include "auth/sasl.h"

#include "auth/scram.h"
#include "core/log.h"
#include "store/store.h"

#include <gsasl.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDRESS_MAX 320

struct sasl_server {
	Gsasl_session *session;
	store_t *store;
	int loaded;   /* secrets looked up (real or made up) */
	int real;     /* the user exists and has secrets */
	int tempfail; /* the store failed */
	int done;
	int64_t user_id;
	struct scram_secrets secrets;
	char iter[12];
	/* GNU SASL 2.2's server reads StoredKey and ServerKey as base64, not
	 * hex as gsasl.h says (lib/scram/server.c, extract_serverkey) */
	char stored_b64[48], server_b64[48];
	char authid[ADDRESS_MAX + 1];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static Gsasl *gsasl_ctx; /* one per process, kept until exit */
static char fake_key[65]; /* hex; made-up secrets for unknown users */

static int callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop);

static void hex32(const unsigned char in[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[64] = '\0';
}

static void init(void)
{
	Gsasl *ctx;
	unsigned char key[32];
	if (gsasl_random((char *)key, sizeof(key)) != GSASL_OK) {
		log_error("sasl", 0, "event=init-failed error=\"no random bytes\"");
		return;
	}
	hex32(key, fake_key);
	explicit_bzero(key, sizeof(key));
	int rc = gsasl_init(&ctx);
	if (rc != GSASL_OK) {
		log_error("sasl", 0, "event=init-failed error=\"%s\"", gsasl_strerror(rc));
		return;
	}
	if (!gsasl_server_support_p(ctx, "SCRAM-SHA-256")) {
		log_error("sasl", 0, "event=init-failed error=\"no SCRAM-SHA-256 in GNU SASL\"");
		gsasl_done(ctx);
		return;
	}
	gsasl_callback_set(ctx, callback);
	gsasl_ctx = ctx;
}

/* Secrets that look real and stay the same for the same name, so that
 * asking twice shows nothing either: PBKDF2 with one round is one
 * HMAC-SHA-256 keyed with the per-process random key, over the name. */
static void make_fake(struct sasl_server *s, const char *authid)
{
	char salted[GSASL_HASH_MAX_SIZE], client_key[GSASL_HASH_MAX_SIZE];
	char server_key[GSASL_HASH_MAX_SIZE], stored_key[GSASL_HASH_MAX_SIZE];
	char *salt64 = NULL;
	size_t n;
	s->secrets.iter = SCRAM_ITERATIONS;
	if (*authid == '\0')
		authid = "-";
	if (gsasl_scram_secrets_from_password(GSASL_HASH_SHA256, fake_key, 1, authid,
					      strnlen(authid, ADDRESS_MAX), salted, client_key,
					      server_key, stored_key) != GSASL_OK) {
		memset(client_key, 0, sizeof(client_key));
		memset(server_key, 1, sizeof(server_key));
		memset(stored_key, 2, sizeof(stored_key));
	}
	if (gsasl_base64_to(client_key, SCRAM_SALT_LEN, &salt64, &n) == GSASL_OK &&
	    n < sizeof(s->secrets.salt))
		memcpy(s->secrets.salt, salt64, n + 1);
	else
		snprintf(s->secrets.salt, sizeof(s->secrets.salt), "AAAAAAAAAAAAAAAAAAAAAA==");
	gsasl_free(salt64);
	hex32((const unsigned char *)stored_key, s->secrets.stored_key);
	hex32((const unsigned char *)server_key, s->secrets.server_key);
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(server_key, sizeof(server_key));
	explicit_bzero(stored_key, sizeof(stored_key));
}

static int hex_to_b64(const char *hex, char *out, size_t size)
{
	char *bin = NULL, *b64 = NULL;
	size_t bin_len = 0, b64_len;
	int ret = -1;
	if (gsasl_hex_from(hex, &bin, &bin_len) == GSASL_OK &&
	    gsasl_base64_to(bin, bin_len, &b64, &b64_len) == GSASL_OK && b64_len < size) {
		memcpy(out, b64, b64_len + 1);
		ret = 0;
	}
	if (bin != NULL)
		explicit_bzero(bin, bin_len);
	gsasl_free(bin);
	gsasl_free(b64);
	return ret;
}

static void load(struct sasl_server *s, const char *authid)
{
	char *scram = NULL;
	const char *err;
	int64_t uid = 0;
	s->loaded = 1;
	if (authid == NULL)
		authid = "";
	int r = strlen(authid) > ADDRESS_MAX ? 0
					      : store_user_scram(s->store, authid, &uid, &scram, &err);
	if (r < 0) {
		log_error("sasl", 0, "event=store-error error=\"%s\"", err);
		s->tempfail = 1;
	}
	if (r == 1 && scram_parse(scram, &s->secrets) == 0) {
		s->real = 1;
		s->user_id = uid;
		snprintf(s->authid, sizeof(s->authid), "%s", authid);
	} else {
		if (r == 1)
			log_error("sasl", 0, "event=bad-scram-secrets");
		make_fake(s, authid);
	}
	snprintf(s->iter, sizeof(s->iter), "%u", s->secrets.iter);
	if (hex_to_b64(s->secrets.stored_key, s->stored_b64, sizeof(s->stored_b64)) < 0 ||
	    hex_to_b64(s->secrets.server_key, s->server_b64, sizeof(s->server_b64)) < 0) {
		s->tempfail = 1; /* out of memory */
		s->real = 0;
	}
	if (scram != NULL) {
		explicit_bzero(scram, strlen(scram));
		free(scram);
	}
}

static int callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
	(void)ctx;
	struct sasl_server *s = sctx != NULL ? gsasl_session_hook_get(sctx) : NULL;
	if (s == NULL)
		return GSASL_NO_CALLBACK;
	const char *value;
	switch (prop) {
	case GSASL_SCRAM_ITER:
	case GSASL_SCRAM_SALT:
	case GSASL_SCRAM_STOREDKEY:
	case GSASL_SCRAM_SERVERKEY:
		if (!s->loaded)
			load(s, gsasl_property_fast(sctx, GSASL_AUTHID));
		value = prop == GSASL_SCRAM_ITER   ? s->iter
			: prop == GSASL_SCRAM_SALT ? s->secrets.salt
			: prop == GSASL_SCRAM_STOREDKEY ? s->stored_b64
							: s->server_b64;
		return gsasl_property_set(sctx, prop, value);
	default:
		/* never a password: without secrets the exchange must fail */
		return GSASL_NO_CALLBACK;
	}
}

sasl_server_t *sasl_scram_start(store_t *store)
{
	pthread_once(&init_once, init);
	if (gsasl_ctx == NULL)
		return NULL;
	struct sasl_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->store = store;
	if (gsasl_server_start(gsasl_ctx, "SCRAM-SHA-256", &s->session) != GSASL_OK) {
		free(s);
		return NULL;
	}
	gsasl_session_hook_set(s->session, s);
	return s;
}

int sasl_scram_step(sasl_server_t *s, const char *in_b64, char **out_b64_r, int *done_r)
{
	char *out = NULL;
	*out_b64_r = NULL;
	*done_r = 0;
	if (s->done)
		return -1;
	int rc = gsasl_step64(s->session, in_b64, &out);
	if (s->tempfail) {
		gsasl_free(out);
		return -2;
	}
	if (rc == GSASL_OK && s->real) {
		/* no proxy authorization: an authzid must name the user itself */
		const char *authzid = gsasl_property_fast(s->session, GSASL_AUTHZID);
		if (authzid != NULL && *authzid != '\0' && strcmp(authzid, s->authid) != 0)
			rc = GSASL_AUTHENTICATION_ERROR;
	} else if (rc == GSASL_OK) {
		rc = GSASL_AUTHENTICATION_ERROR; /* cannot happen: made-up keys */
	}
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		gsasl_free(out);
		return -1;
	}
	/* gsasl's buffers go with gsasl_free; hand out a plain malloc'd copy */
	*out_b64_r = strdup(out != NULL ? out : "");
	gsasl_free(out);
	if (*out_b64_r == NULL)
		return -2;
	if (rc == GSASL_OK) {
		s->done = 1;
		*done_r = 1;
		char *at = strrchr(s->authid, '@');
		for (char *p = at; p != NULL && *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + ('a' - 'A'));
	}
	return 0;
}

int64_t sasl_user_id(const sasl_server_t *s)
{
	return s->done ? s->user_id : 0;
}

const char *sasl_authid(const sasl_server_t *s)
{
	return s->done ? s->authid : NULL;
}

void sasl_free(sasl_server_t *s)
{
	if (s == NULL)
		return;
	gsasl_finish(s->session);
	explicit_bzero(s, sizeof(*s));
	free(s);
}
