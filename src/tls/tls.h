/*
 * tls.h - TLS with OpenSSL 3, as a kind of connection (the rest of Petrel
 * never sees OpenSSL types).
 *
 * The server context allows TLS 1.2 and later. tls_server_reload() re-reads
 * certificate and key (SIGHUP): connections already up keep the old context,
 * new ones get the new; a failed reload keeps the old context.
 */
#ifndef PETREL_TLS_H
#define PETREL_TLS_H

#include <stddef.h>

struct bufferevent;
struct event_base;

typedef struct tls_server tls_server_t;

int tls_server_new(const char *cert, const char *key, tls_server_t **tls_r, const char **error_r);
int tls_server_reload(tls_server_t *tls, const char **error_r);
void tls_server_free(tls_server_t *tls);

/* A server-side TLS bufferevent over fd (accepting). Closing the bufferevent
 * closes fd. NULL on failure. */
struct bufferevent *tls_bufferevent_accept(tls_server_t *tls, struct event_base *base, int fd);

/* "TLSv1.3:TLS_AES_256_GCM_SHA384" for the Received header; "" if none. */
void tls_describe(struct bufferevent *bev, char *buf, size_t bufsz);

/* The OpenSSL error queue as one line (drains it). */
const char *tls_last_error(char *buf, size_t bufsz);

#endif
