#include "mime/mime.h"

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

void mime_init(void)
{
	g_mime_init();
}

void mime_head_init(struct mime_head *h)
{
	memset(h, 0, sizeof(*h));
	h->state = 1;
}

void mime_head_feed(struct mime_head *h, const char *data, size_t len)
{
	if (h->complete || len == 0)
		return;
	/* Find the end of the header: an empty line. state 1: at a line start
	 * (after LF), 2: at a line start after CR, 0: inside a line. */
	size_t take = len;
	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (c == '\n') {
			if (h->state != 0) {
				h->complete = 1;
				take = i + 1;
				break;
			}
			h->state = 1;
		} else if (c == '\r' && h->state == 1) {
			h->state = 2;
		} else if (c != '\r') {
			h->state = 0;
		}
	}
	if (h->len + take > MIME_HEAD_MAX) {
		take = MIME_HEAD_MAX - h->len;
		h->complete = 1;
	}
	if (h->len + take > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;
		while (cap < h->len + take)
			cap *= 2;
		char *n = realloc(h->buf, cap);
		if (n == NULL) {
			h->complete = 1;
			return;
		}
		h->buf = n;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, data, take);
	h->len += take;
}

char *mime_head_subject(struct mime_head *h)
{
	if (h->len == 0)
		return strdup("");
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(h->buf, h->len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	char *subject = NULL;
	if (msg != NULL) {
		const char *s = g_mime_message_get_subject(msg);
		if (s != NULL)
			subject = strdup(s);
		g_object_unref(msg);
	}
	g_object_unref(parser);
	g_object_unref(stream);
	return subject != NULL ? subject : strdup("");
}

void mime_head_free(struct mime_head *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}
