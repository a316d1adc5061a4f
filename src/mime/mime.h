/*
 * mime.h - message parsing with GMime, once, at delivery.
 *
 * A mime_head collects the header block of a message while it streams past
 * (bounded: at most MIME_HEAD_MAX octets are kept) and then yields what the
 * store keeps with the message, so that listings never re-read content.
 */
#ifndef PETREL_MIME_H
#define PETREL_MIME_H

#include <stddef.h>

#define MIME_HEAD_MAX (64 * 1024)

/* Call once at start-up, before any thread uses mime_*. */
void mime_init(void);

struct mime_head {
	char *buf;
	size_t len, cap;
	int complete; /* the empty line ending the header was seen */
	int state;
};

void mime_head_init(struct mime_head *h);
void mime_head_feed(struct mime_head *h, const char *data, size_t len);
/* Decoded (RFC 2047) UTF-8 Subject, malloc'd; "" when there is none. */
char *mime_head_subject(struct mime_head *h);
void mime_head_free(struct mime_head *h);

#endif
