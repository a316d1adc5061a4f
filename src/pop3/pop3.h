/*
 * pop3.h - the POP3 server (RFC 1939 with CAPA RFC 2449, RESP-CODES and
 * AUTH-RESP-CODE RFC 3206, STLS RFC 2595, SASL AUTH RFC 5034) serving each
 * user's INBOX, the same INBOX IMAP serves.
 */
#ifndef PETREL_POP3_H
#define PETREL_POP3_H

#include "net/net.h"

struct config;
typedef struct store store_t;
typedef struct auth_pool auth_pool_t;

struct pop3_server {
	const struct config *config;
	store_t *store;
	auth_pool_t *auth;
};

extern const struct net_proto_ops pop3_proto_ops;

#endif
