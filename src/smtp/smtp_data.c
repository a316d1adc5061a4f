#include "smtp/smtp_data.h"

#include <string.h>

enum {
	S_BOL,     /* at the start of a line (after CRLF) */
	S_DOT,     /* "." at the start of a line */
	S_DOT_CR,  /* ".<CR>" at the start of a line */
	S_MID,     /* inside a line */
	S_CR,      /* after a CR inside a line */
};

void smtp_data_init(struct smtp_data_parser *p)
{
	p->state = S_BOL;
	p->bare_lf = 0;
	p->bare_cr = 0;
}

size_t smtp_data_decode(struct smtp_data_parser *p, const char *in, size_t len, char *out,
			size_t *out_len_r, int *done_r)
{
	size_t i = 0, o = 0;
	*done_r = 0;
	while (i < len) {
		char c = in[i];
		switch (p->state) {
		case S_MID: {
			/* Fast path: copy up to the next CR or LF. */
			const char *start = in + i;
			size_t n = len - i, k = 0;
			while (k < n && start[k] != '\r' && start[k] != '\n')
				k++;
			memcpy(out + o, start, k);
			o += k;
			i += k;
			if (i == len)
				break;
			c = in[i++];
			out[o++] = c;
			if (c == '\r') {
				p->state = S_CR;
			} else {
				p->bare_lf = 1; /* LF without CR: content, not a line end */
			}
			break;
		}
		case S_BOL:
			i++;
			if (c == '.') {
				p->state = S_DOT; /* held back: stuffing or the end */
			} else {
				out[o++] = c;
				if (c == '\r')
					p->state = S_CR;
				else {
					if (c == '\n')
						p->bare_lf = 1;
					p->state = S_MID;
				}
			}
			break;
		case S_DOT:
			i++;
			if (c == '\r') {
				p->state = S_DOT_CR;
			} else {
				/* 4.5.2: a leading period is deleted when the line has
				 * more characters. */
				out[o++] = c;
				if (c == '\n')
					p->bare_lf = 1;
				p->state = S_MID;
			}
			break;
		case S_DOT_CR:
			if (c == '\n') {
				i++;
				p->state = S_BOL;
				*done_r = 1;
				*out_len_r = o;
				return i;
			}
			/* ".<CR>x": the CR was bare; the dot was stuffing */
			p->bare_cr = 1;
			out[o++] = '\r';
			p->state = S_MID;
			break; /* re-examine c in S_MID */
		case S_CR:
			if (c == '\n') {
				i++;
				out[o++] = c;
				p->state = S_BOL;
			} else {
				p->bare_cr = 1;
				p->state = S_MID; /* re-examine c */
			}
			break;
		}
	}
	*out_len_r = o;
	return i;
}

void smtp_lineend_check(struct smtp_data_parser *p, const char *in, size_t len, int final)
{
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (p->state == S_CR) {
			if (c != '\n')
				p->bare_cr = 1;
			p->state = S_MID;
			if (c == '\n')
				continue;
		}
		if (c == '\r')
			p->state = S_CR;
		else if (c == '\n')
			p->bare_lf = 1;
	}
	if (final && p->state == S_CR)
		p->bare_cr = 1;
}
