/*
 * smtp_data.h - the DATA body decoder (RFC 5321 4.1.1.4, 4.5.2): finds the
 * end of data and removes dot-stuffing, resumably, over arbitrary chunks.
 *
 * Only <CRLF>.<CRLF> ends the data. A bare LF or a bare CR anywhere is
 * noted (bare_lf / bare_cr) and never taken as a line end, so sequences
 * like <LF>.<LF>, <CR>.<CR> or <LF>.<CR><LF> cannot end the message early
 * (SMTP smuggling, CVE-2023-51764/5/6); the session rejects such messages.
 */
#ifndef PETREL_SMTP_DATA_H
#define PETREL_SMTP_DATA_H

#include <stddef.h>

struct smtp_data_parser {
	int state;
	int bare_lf;
	int bare_cr;
};

void smtp_data_init(struct smtp_data_parser *p);

/* Decode up to len octets of in into out, which must have room for len + 1
 * octets (a CR held back at ".<CR>" may be released by the next call). Returns the
 * number of input octets consumed; *out_len_r gets the octets written.
 * *done_r is set when the terminating <CRLF>.<CRLF> has been consumed; input
 * after it is left unconsumed (pipelined commands). */
size_t smtp_data_decode(struct smtp_data_parser *p, const char *in, size_t len, char *out,
			size_t *out_len_r, int *done_r);

/* Line-ending check for BDAT chunks, which are not dot-stuffed: notes bare
 * CR / LF across chunk boundaries. Call with final=1 after the last chunk. */
void smtp_lineend_check(struct smtp_data_parser *p, const char *in, size_t len, int final);

#endif
