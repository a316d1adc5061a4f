/*
 * mime_store.h - parse once at delivery: parse a delivery's content and
 * attach the results to it, so they are stored with the message in the same
 * transaction (ENVELOPE, BODYSTRUCTURE, part table, decoded header fields,
 * Subject for listings).
 */
#ifndef PETREL_MIME_STORE_H
#define PETREL_MIME_STORE_H

#include "store/store_mail.h"

/* 0 ok, -1 when the content could not be read or parsed (the message is
 * still deliverable; readers then treat it as one text/plain part). */
int mime_store_attach(store_delivery_t *d, const char **error_r);

#endif
