/*
 * smtp.h - the SMTP server (RFC 5321 with ESMTP extensions), MX role.
 */
#ifndef PETREL_SMTP_H
#define PETREL_SMTP_H

#include "net/net.h"

struct config;
typedef struct store store_t;

struct smtp_server {
	const struct config *config;
	store_t *store;
};

extern const struct net_proto_ops smtp_proto_ops;

#endif
