#include "tls/tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_server {
	pthread_mutex_t lock;
	SSL_CTX *ctx;
	char *cert, *key;
};

const char *tls_last_error(char *buf, size_t bufsz)
{
	unsigned long e = ERR_get_error();
	if (e == 0) {
		snprintf(buf, bufsz, "unknown TLS error");
		return buf;
	}
	ERR_error_string_n(e, buf, bufsz);
	ERR_clear_error();
	return buf;
}

static SSL_CTX *make_ctx(const char *cert, const char *key, const char **error_r)
{
	static _Thread_local char err[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_last_error(err, sizeof(err));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION);
	/* Readers stream large messages: let SSL_write take partial buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, sizeof(err), "cannot load certificate %s", cert);
		ERR_clear_error();
		*error_r = err;
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, sizeof(err), "cannot load private key %s (or it does not match %s)",
			 key, cert);
		ERR_clear_error();
		*error_r = err;
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tls_server_new(const char *cert, const char *key, tls_server_t **tls_r, const char **error_r)
{
	SSL_CTX *ctx = make_ctx(cert, key, error_r);
	if (ctx == NULL)
		return -1;
	tls_server_t *t = calloc(1, sizeof(*t));
	t->ctx = ctx;
	t->cert = strdup(cert);
	t->key = strdup(key);
	pthread_mutex_init(&t->lock, NULL);
	*tls_r = t;
	return 0;
}

int tls_server_reload(tls_server_t *t, const char **error_r)
{
	SSL_CTX *ctx = make_ctx(t->cert, t->key, error_r);
	if (ctx == NULL)
		return -1;
	pthread_mutex_lock(&t->lock);
	SSL_CTX *old = t->ctx;
	t->ctx = ctx;
	pthread_mutex_unlock(&t->lock);
	SSL_CTX_free(old); /* SSL objects hold their own references */
	return 0;
}

void tls_server_free(tls_server_t *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t->cert);
	free(t->key);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct bufferevent *tls_bufferevent_accept(tls_server_t *t, struct event_base *base, int fd)
{
	pthread_mutex_lock(&t->lock);
	SSL *ssl = SSL_new(t->ctx);
	pthread_mutex_unlock(&t->lock);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* Close without waiting for the peer's close_notify. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

void tls_describe(struct bufferevent *bev, char *buf, size_t bufsz)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	if (ssl == NULL) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, bufsz, "%s:%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
