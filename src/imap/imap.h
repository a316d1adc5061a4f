/*
 * imap.h - the IMAP4rev1 / IMAP4rev2 server (RFC 3501, RFC 9051).
 */
#ifndef PETREL_IMAP_H
#define PETREL_IMAP_H

#include "net/net.h"

struct config;
typedef struct store store_t;
typedef struct auth_pool auth_pool_t;

struct imap_server {
	const struct config *config;
	store_t *store;
	auth_pool_t *auth;
};

extern const struct net_proto_ops imap_proto_ops;

#endif
