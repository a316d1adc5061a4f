/*
 * mime_parse.c - the parse-once scanner: one pass over the message, line by
 * line, that finds every header block and body with exact octet offsets,
 * builds the part tree, and then renders ENVELOPE, BODY, BODYSTRUCTURE and
 * the part table (format in mime_parse.h).
 *
 * Structure rules (RFC 2046 5.1): a boundary line is "--" boundary ["--"]
 * followed only by blanks, as GMime matches it; the line end before it
 * belongs to the boundary, so a part ends before that CRLF. The boundaries of
 * every open multipart are active at once, innermost first, so a part whose
 * own closing boundary is missing ends at an outer one. Headers end at the
 * empty line, or at a boundary line, or at the end of the message.
 */
#include "mime/mime_parse_private.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)

enum node_kind { KIND_LEAF, KIND_MULTIPART, KIND_MESSAGE };

struct node {
	struct node *parent, *child, *last_child, *next;
	struct node *all_next; /* every node, for freeing */
	enum node_kind kind;
	unsigned depth;
	unsigned in_header : 1; /* header block not finished */
	unsigned pending : 1;   /* begun by a boundary line: hdr_off is the next line */
	unsigned is_message : 1; /* root or encapsulated message: RFC 5322 header */
	unsigned closed : 1;    /* multipart: close delimiter seen */
	unsigned is_text : 1;
	unsigned standin : 1;   /* described as text/plain (see mime_parse.h) */
	uint64_t hdr_off, hdr_len, body_off, body_len;
	uint64_t body_line0, lines;
	char *type, *subtype; /* lower-case */
	struct mime_params params, disp_params;
	char *id, *desc, *md5, *disp_type, *lang, *loc;
	char *enc_raw;   /* Content-Transfer-Encoding token as given, NULL: 7bit */
	const char *enc; /* normalised, static */
	char *boundary;
	size_t boundary_len;
	char *envelope;
};

struct scan_hooks {
	void (*header_end)(void *ctx, struct node *n);
	void (*body)(void *ctx, struct node *n, const char *data, size_t len);
	void (*close)(void *ctx, struct node *n);
};

struct scan {
	struct node *root, *top, *all;
	unsigned n_nodes;
	struct mime_buf hdr; /* header block of the top node while in_header */
	uint64_t nlines;          /* lines begun so far */
	uint64_t last_line_start; /* offset of the latest line begun */
	unsigned prev_eol_len;    /* 2 if the previous line ended in CRLF, else 1 */
	int prev_cr;              /* previous fragment ended in CR */
	int skip_line;            /* inside the rest of a boundary line */
	int oom;
	struct mime_summary *sum; /* NULL: no envelopes or summary wanted */
	const struct scan_hooks *hooks;
	void *hctx;
};

static void free_nodes(struct node *n)
{
	while (n != NULL) {
		struct node *next = n->all_next;
		free(n->type);
		free(n->subtype);
		mime_params_free(&n->params);
		mime_params_free(&n->disp_params);
		free(n->id);
		free(n->desc);
		free(n->md5);
		free(n->disp_type);
		free(n->lang);
		free(n->loc);
		free(n->enc_raw);
		free(n->boundary);
		free(n->envelope);
		free(n);
		n = next;
	}
}

static struct node *new_node(struct scan *s, struct node *parent)
{
	struct node *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		s->oom = 1;
		return NULL;
	}
	n->all_next = s->all;
	s->all = n;
	n->in_header = 1;
	n->enc = "7bit";
	s->n_nodes++;
	if (parent != NULL) {
		n->parent = parent;
		n->depth = parent->depth + 1;
		if (parent->last_child != NULL)
			parent->last_child->next = n;
		else
			parent->child = n;
		parent->last_child = n;
	}
	s->top = n;
	return n;
}

/* ---- header fields ---- */

enum {
	F_CTYPE, F_CTE, F_CID, F_CDESC, F_CDISP, F_CLANG, F_CLOC, F_CMD5,
	F_DATE, F_SUBJECT, F_FROM, F_SENDER, F_REPLY_TO, F_TO, F_CC, F_BCC,
	F_IN_REPLY_TO, F_MESSAGE_ID, F_REFERENCES, F_COUNT,
	F_FIRST_MESSAGE = F_DATE
};

static const char *const field_names[F_COUNT] = {
	"content-type", "content-transfer-encoding", "content-id", "content-description",
	"content-disposition", "content-language", "content-location", "content-md5",
	"date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
	"in-reply-to", "message-id", "references",
};

static const char *normalise_encoding(const char *tok)
{
	static const char *const known[] = { "7bit", "8bit", "binary", "base64",
					     "quoted-printable" };
	if (tok == NULL)
		return "7bit";
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (mime_ascii_casecmp(tok, known[i]) == 0)
			return known[i];
	return "unknown";
}

/* First word of a Content-Transfer-Encoding value; NULL when empty. */
static char *encoding_token(const char *v, int *oom_r)
{
	size_t n = 0;
	while (v[n] != '\0' && v[n] != ' ' && v[n] != '\t' && v[n] != '(' && v[n] != ';')
		n++;
	if (n == 0)
		return NULL;
	char *t = strndup(v, n);
	if (t == NULL)
		*oom_r = 1;
	return t;
}

static int is_digest_child(const struct node *n)
{
	return !n->is_message && n->parent != NULL && n->parent->kind == KIND_MULTIPART &&
	       n->parent->subtype != NULL && strcmp(n->parent->subtype, "digest") == 0;
}

static char *gstr(char *g)
{
	/* GMime returns g_malloc'd strings; the summary is free()d. */
	char *s = strdup(g != NULL ? g : "");
	g_free(g);
	return s;
}

static char *utf8_value(const char *raw)
{
	if (raw == NULL)
		return strdup("");
	if (g_utf8_validate(raw, -1, NULL))
		return strdup(raw);
	return gstr(g_mime_utils_decode_8bit(NULL, raw, strlen(raw)));
}

static char *decoded_text(const char *raw)
{
	if (raw == NULL)
		return strdup("");
	return gstr(g_mime_utils_header_decode_text(NULL, raw));
}

static char *decoded_addresses(const char *raw)
{
	if (raw == NULL)
		return strdup("");
	InternetAddressList *list = internet_address_list_parse(NULL, raw);
	if (list == NULL || internet_address_list_length(list) == 0) {
		if (list != NULL)
			g_object_unref(list);
		return decoded_text(raw);
	}
	char *s = gstr(internet_address_list_to_string(list, NULL, FALSE));
	g_object_unref(list);
	return s;
}

static int64_t parse_date(const char *raw)
{
	if (raw == NULL)
		return 0;
	GDateTime *dt = g_mime_utils_header_decode_date(raw);
	if (dt == NULL)
		return 0;
	int64_t t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

static void fill_summary(struct scan *s, char **v)
{
	struct mime_summary *m = s->sum;
	m->subject = decoded_text(v[F_SUBJECT]);
	m->from = decoded_addresses(v[F_FROM]);
	m->to = decoded_addresses(v[F_TO]);
	m->cc = decoded_addresses(v[F_CC]);
	m->bcc = decoded_addresses(v[F_BCC]);
	m->message_id = utf8_value(v[F_MESSAGE_ID]);
	m->in_reply_to = utf8_value(v[F_IN_REPLY_TO]);
	m->references = utf8_value(v[F_REFERENCES]);
	m->date_hdr = utf8_value(v[F_DATE]);
	m->sent_date = parse_date(v[F_DATE]);
	if (m->subject == NULL || m->from == NULL || m->to == NULL || m->cc == NULL ||
	    m->bcc == NULL || m->message_id == NULL || m->in_reply_to == NULL ||
	    m->references == NULL || m->date_hdr == NULL)
		s->oom = 1;
}

static void set_default_type(struct scan *s, struct node *n)
{
	int digest = is_digest_child(n);
	n->type = strdup(digest ? "message" : "text");
	n->subtype = strdup(digest ? "rfc822" : "plain");
	if (n->type == NULL || n->subtype == NULL) {
		s->oom = 1;
		return;
	}
	if (!digest) {
		n->params.v = malloc(sizeof(*n->params.v));
		if (n->params.v == NULL) {
			s->oom = 1;
			return;
		}
		n->params.v[0].name = strdup("charset");
		n->params.v[0].value = strdup("us-ascii");
		n->params.n = 1;
		if (n->params.v[0].name == NULL || n->params.v[0].value == NULL)
			s->oom = 1;
	}
}

static void parse_fields(struct scan *s, struct node *n, const char *hdr, size_t len)
{
	char *v[F_COUNT] = { 0 };
	size_t wanted = n->is_message ? F_COUNT : F_FIRST_MESSAGE;
	struct mime_hdr_iter it;
	struct mime_hdr_field f;
	int oom = 0;

	mime_hdr_iter_init(&it, hdr, len);
	while (mime_hdr_next(&it, &f) > 0 && !oom) {
		for (size_t i = 0; i < wanted; i++) {
			if (v[i] != NULL || f.name_len != strlen(field_names[i]) ||
			    mime_ascii_ncasecmp(f.name, field_names[i], f.name_len) != 0)
				continue;
			v[i] = mime_hdr_unfold(f.value, f.value_len);
			oom |= v[i] == NULL;
			break;
		}
	}

	if (v[F_CTYPE] == NULL ||
	    mime_parse_content_type(v[F_CTYPE], &n->type, &n->subtype, &n->params, &oom) < 0)
		set_default_type(s, n);
	if (v[F_CTE] != NULL)
		n->enc_raw = encoding_token(v[F_CTE], &oom);
	n->enc = normalise_encoding(n->enc_raw);
	if (v[F_CDISP] != NULL)
		(void)mime_parse_disposition(v[F_CDISP], &n->disp_type, &n->disp_params, &oom);
	n->id = v[F_CID];
	n->desc = v[F_CDESC];
	n->lang = v[F_CLANG];
	n->loc = v[F_CLOC];
	n->md5 = v[F_CMD5];
	v[F_CID] = v[F_CDESC] = v[F_CLANG] = v[F_CLOC] = v[F_CMD5] = NULL;

	if (n->is_message && s->sum != NULL && !oom) {
		struct mime_env_fields e = {
			v[F_DATE], v[F_SUBJECT], v[F_FROM], v[F_SENDER], v[F_REPLY_TO],
			v[F_TO], v[F_CC], v[F_BCC], v[F_IN_REPLY_TO], v[F_MESSAGE_ID],
			v[F_REFERENCES],
		};
		struct mime_buf b = { 0 };
		mime_buf_imap_envelope(&b, &e);
		n->envelope = mime_buf_steal(&b);
		oom |= n->envelope == NULL;
		if (n == s->root)
			fill_summary(s, v);
	}
	for (size_t i = 0; i < F_COUNT; i++)
		free(v[i]);
	if (oom)
		s->oom = 1;
}

/* ---- structure ---- */

static void end_header(struct scan *s, struct node *n, uint64_t hdr_end, uint64_t body_off)
{
	n->hdr_len = hdr_end - n->hdr_off;
	n->body_off = body_off;
	n->in_header = 0;
	n->body_line0 = s->nlines;
	parse_fields(s, n, s->hdr.s != NULL ? s->hdr.s : "", s->hdr.len);
	s->hdr.len = 0;
	if (s->oom)
		return;

	n->kind = KIND_LEAF;
	if (strcmp(n->type, "multipart") == 0) {
		const char *b = mime_params_get(&n->params, "boundary");
		size_t bl = b != NULL ? strlen(b) : 0;
		if (bl > 0 && bl <= MIME_PARSE_BOUNDARY_MAX && n->depth < MIME_PARSE_MAX_DEPTH) {
			n->boundary = strdup(b);
			n->boundary_len = bl;
			n->kind = KIND_MULTIPART;
			s->oom |= n->boundary == NULL;
		} else {
			n->standin = 1;
		}
	} else if (strcmp(n->type, "message") == 0 && strcmp(n->subtype, "rfc822") == 0) {
		/* A transfer-encoded message is not parseable as it stands. */
		int identity = strcmp(n->enc, "7bit") == 0 || strcmp(n->enc, "8bit") == 0 ||
			       strcmp(n->enc, "binary") == 0;
		if (identity && n->depth < MIME_PARSE_MAX_DEPTH &&
		    s->n_nodes < MIME_PARSE_MAX_PARTS)
			n->kind = KIND_MESSAGE;
		else
			n->standin = 1;
	} else {
		n->is_text = strcmp(n->type, "text") == 0;
	}
	if (s->hooks != NULL && s->hooks->header_end != NULL)
		s->hooks->header_end(s->hctx, n);
	if (n->kind == KIND_MESSAGE) {
		struct node *e = new_node(s, n);
		if (e != NULL) {
			e->is_message = 1;
			e->hdr_off = body_off;
		}
	}
}

/* Closes every node above target (NULL: all), ending them at cut. */
static void close_to(struct scan *s, struct node *target, uint64_t cut, int at_eof)
{
	while (s->top != target && !s->oom) {
		struct node *n = s->top;
		if (n->pending) {
			n->hdr_off = cut;
			n->pending = 0;
		}
		if (n->in_header) {
			uint64_t e = cut > n->hdr_off ? cut : n->hdr_off;
			end_header(s, n, e, e);
			continue; /* a message/rfc822 part got an (empty) child */
		}
		uint64_t e = cut > n->body_off ? cut : n->body_off;
		n->body_len = e - n->body_off;
		n->lines = s->nlines - n->body_line0;
		/* The last line begun may be only the line end the boundary takes. */
		if (!at_eof && n->lines > 0 && s->last_line_start >= e)
			n->lines--;
		if (s->hooks != NULL && s->hooks->close != NULL)
			s->hooks->close(s->hctx, n);
		s->top = n->parent;
	}
}

/* 0: not a delimiter of b, 1: "--b", 2: "--b--", blanks allowed after. */
static int match_boundary(const char *line, size_t len, const char *b, size_t bl)
{
	if (len < 2 + bl || memcmp(line + 2, b, bl) != 0)
		return 0;
	const char *p = line + 2 + bl;
	size_t rest = len - 2 - bl;
	int close = rest >= 2 && p[0] == '-' && p[1] == '-';
	for (size_t i = close ? 2 : 0; i < rest; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return close ? 2 : 1;
}

static struct node *find_boundary(struct scan *s, const char *line, size_t len, int *close_r)
{
	struct node *best = NULL;
	for (struct node *n = s->top; n != NULL; n = n->parent) {
		if (n->kind != KIND_MULTIPART || n->closed || n->in_header)
			continue;
		if (best != NULL && n->boundary_len <= best->boundary_len)
			continue; /* innermost wins a tie; a longer one may be "b--" */
		int m = match_boundary(line, len, n->boundary, n->boundary_len);
		if (m != 0) {
			best = n;
			*close_r = m == 2;
		}
	}
	return best;
}

static void on_boundary(struct scan *s, struct node *m, int close, uint64_t off)
{
	uint64_t cut = off - s->prev_eol_len; /* off > 0: m's header came first */
	close_to(s, m, cut, 0);
	if (s->oom)
		return;
	if (close) {
		m->closed = 1;
		return;
	}
	/* Past the part limit the rest stays opaque inside m's body. */
	if (s->n_nodes >= MIME_PARSE_MAX_PARTS)
		return;
	struct node *c = new_node(s, m);
	if (c != NULL)
		c->pending = 1;
}

static void header_add(struct scan *s, const char *data, size_t len)
{
	if (s->hdr.len >= MIME_PARSE_HEADER_MAX)
		return;
	if (len > MIME_PARSE_HEADER_MAX - s->hdr.len)
		len = MIME_PARSE_HEADER_MAX - s->hdr.len;
	mime_buf_add(&s->hdr, data, len);
	s->oom |= s->hdr.oom;
}

static void track_eol(struct scan *s, const char *data, size_t len, int bol, int eol)
{
	if (eol) {
		int cr = len >= 2 ? data[len - 2] == '\r' : !bol && s->prev_cr;
		s->prev_eol_len = cr ? 2 : 1;
	}
	s->prev_cr = len > 0 && data[len - 1] == '\r';
}

/* One line, or a fragment of a long one: bol = it begins a line, eol = it
 * ends with LF. A line-beginning fragment always holds min(line, 64 KiB). */
static void scan_segment(struct scan *s, uint64_t off, const char *data, size_t len,
			 int bol, int eol)
{
	if (bol) {
		s->skip_line = 0;
		struct node *top = s->top;
		if (top->pending) {
			top->hdr_off = off;
			top->pending = 0;
		}
		int close = 0;
		struct node *m;
		if (len >= 2 && data[0] == '-' && data[1] == '-' &&
		    (m = find_boundary(s, data, len, &close)) != NULL) {
			on_boundary(s, m, close, off);
			s->nlines++;
			s->last_line_start = off;
			s->skip_line = 1;
			track_eol(s, data, len, bol, eol);
			return;
		}
		s->nlines++;
		s->last_line_start = off;
		if (top->in_header && eol && (len == 1 || (len == 2 && data[0] == '\r'))) {
			end_header(s, top, off + len, off + len);
			track_eol(s, data, len, bol, eol);
			return;
		}
	} else if (s->skip_line) {
		track_eol(s, data, len, bol, eol);
		return;
	}
	struct node *top = s->top;
	if (top->in_header)
		header_add(s, data, len);
	else if (top->kind == KIND_LEAF && s->hooks != NULL && s->hooks->body != NULL)
		s->hooks->body(s->hctx, top, data, len);
	track_eol(s, data, len, bol, eol);
}

static void scan_init(struct scan *s, struct mime_summary *sum,
		      const struct scan_hooks *hooks, void *hctx)
{
	memset(s, 0, sizeof(*s));
	s->sum = sum;
	s->hooks = hooks;
	s->hctx = hctx;
	s->prev_eol_len = 1;
	s->root = new_node(s, NULL);
	if (s->root != NULL)
		s->root->is_message = 1;
}

static void scan_finish(struct scan *s, uint64_t total)
{
	if (!s->oom)
		close_to(s, NULL, total, 1);
	mime_buf_free(&s->hdr);
}

static void scan_mem(struct scan *s, const char *data, size_t len)
{
	size_t pos = 0;
	while (pos < len && !s->oom) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (data + pos)) + 1 : len - pos;
		scan_segment(s, pos, data + pos, n, 1, nl != NULL);
		pos += n;
	}
	scan_finish(s, len);
}

static int scan_fd(struct scan *s, int fd)
{
	char *buf = malloc(READ_CHUNK);
	size_t start = 0, end = 0;
	uint64_t base = 0, fpos = 0;
	int bol = 1, eof = 0, ret = 0, seekable = 1;

	if (buf == NULL) {
		s->oom = 1;
		return -1;
	}
	while (!s->oom) {
		if (start < end) {
			char *nl = memchr(buf + start, '\n', end - start);
			if (nl != NULL) {
				size_t n = (size_t)(nl - (buf + start)) + 1;
				scan_segment(s, base + start, buf + start, n, bol, 1);
				start += n;
				bol = 1;
				continue;
			}
			if (eof || (start == 0 && end == READ_CHUNK)) {
				scan_segment(s, base + start, buf + start, end - start, bol, 0);
				start = end;
				bol = 0;
				continue;
			}
		} else if (eof) {
			break;
		}
		if (start > 0) {
			memmove(buf, buf + start, end - start);
			base += start;
			end -= start;
			start = 0;
		}
		/* pread from 0: the store hands out a spool fd whose offset sits at
		 * the end of what it wrote. Pipes and sockets cannot seek. */
		ssize_t r = seekable ? pread(fd, buf + end, READ_CHUNK - end, (off_t)fpos)
				     : read(fd, buf + end, READ_CHUNK - end);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ESPIPE && seekable && fpos == 0) {
				seekable = 0;
				continue;
			}
			ret = -1;
			break;
		}
		if (r == 0) {
			eof = 1;
		} else {
			end += (size_t)r;
			fpos += (uint64_t)r;
		}
	}
	free(buf);
	if (ret == 0)
		scan_finish(s, base + end);
	else
		mime_buf_free(&s->hdr);
	return ret;
}

/* ---- rendering ---- */

static void render_ext_tail(struct mime_buf *b, const struct node *n)
{
	mime_buf_addc(b, ' ');
	if (n->disp_type != NULL) {
		mime_buf_addc(b, '(');
		mime_buf_imap_nstring(b, n->disp_type);
		mime_buf_addc(b, ' ');
		mime_buf_imap_params(b, &n->disp_params);
		mime_buf_addc(b, ')');
	} else {
		mime_buf_adds(b, "NIL");
	}
	mime_buf_addc(b, ' ');
	mime_buf_imap_language(b, n->lang);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, n->loc);
}

static void render_body(struct mime_buf *b, const struct node *n, int ext)
{
	mime_buf_addc(b, '(');
	if (n->kind == KIND_MULTIPART && n->child != NULL) {
		for (const struct node *c = n->child; c != NULL; c = c->next)
			render_body(b, c, ext);
		mime_buf_addc(b, ' ');
		mime_buf_imap_upper(b, n->subtype);
		if (ext) {
			mime_buf_addc(b, ' ');
			mime_buf_imap_params(b, &n->params);
			render_ext_tail(b, n);
		}
		mime_buf_addc(b, ')');
		return;
	}
	int standin = n->standin || n->kind == KIND_MULTIPART ||
		      (n->kind == KIND_MESSAGE && n->child == NULL);
	if (standin) {
		mime_buf_adds(b, "\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\")");
	} else {
		mime_buf_imap_upper(b, n->type);
		mime_buf_addc(b, ' ');
		mime_buf_imap_upper(b, n->subtype);
		mime_buf_addc(b, ' ');
		mime_buf_imap_params(b, &n->params);
	}
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, n->id);
	mime_buf_addc(b, ' ');
	mime_buf_imap_nstring(b, n->desc);
	mime_buf_addc(b, ' ');
	if (n->enc_raw != NULL)
		mime_buf_imap_upper(b, n->enc_raw);
	else
		mime_buf_adds(b, "\"7BIT\"");
	mime_buf_addc(b, ' ');
	mime_buf_addu64(b, n->body_len);
	if (!standin && n->kind == KIND_MESSAGE) {
		mime_buf_addc(b, ' ');
		mime_buf_adds(b, n->child->envelope != NULL ? n->child->envelope : "NIL");
		mime_buf_addc(b, ' ');
		render_body(b, n->child, ext);
	}
	if (standin || n->is_text || n->kind == KIND_MESSAGE) {
		mime_buf_addc(b, ' ');
		mime_buf_addu64(b, n->lines);
	}
	if (ext) {
		mime_buf_addc(b, ' ');
		mime_buf_imap_nstring(b, n->md5);
		render_ext_tail(b, n);
	}
	mime_buf_addc(b, ')');
}

static char part_kind(const struct node *n)
{
	if (n->kind == KIND_MULTIPART && n->child != NULL)
		return 'm';
	if (n->kind == KIND_MESSAGE && n->child != NULL)
		return 'r';
	return 'l';
}

static void part_line(struct mime_buf *b, const char *path, const struct node *n)
{
	char k = part_kind(n);
	mime_buf_adds(b, path);
	mime_buf_addc(b, ' ');
	mime_buf_addc(b, k);
	mime_buf_addc(b, ' ');
	mime_buf_addu64(b, n->hdr_off);
	mime_buf_addc(b, ' ');
	mime_buf_addu64(b, n->hdr_len);
	mime_buf_addc(b, ' ');
	mime_buf_addu64(b, n->body_off);
	mime_buf_addc(b, ' ');
	mime_buf_addu64(b, n->body_len);
	mime_buf_addc(b, ' ');
	mime_buf_adds(b, n->enc);
	mime_buf_addc(b, ' ');
	mime_buf_addu64(b, k == 'r' ? n->child->hdr_len : 0);
	mime_buf_addc(b, '\n');
}

#define PATH_MAX_LEN 512

static void parts_message(struct mime_buf *b, char *path, size_t plen, const struct node *m);

/* path[0..plen) is this part's number; the buffer has PATH_MAX_LEN bytes. */
static void parts_part(struct mime_buf *b, char *path, size_t plen, const struct node *n)
{
	path[plen] = '\0';
	part_line(b, path, n);
	if (part_kind(n) == 'm') {
		unsigned i = 1;
		for (const struct node *c = n->child; c != NULL; c = c->next, i++) {
			int w = snprintf(path + plen, PATH_MAX_LEN - plen, ".%u", i);
			if (w < 0 || (size_t)w >= PATH_MAX_LEN - plen) {
				b->oom = 1; /* cannot happen within the depth limit */
				return;
			}
			parts_part(b, path, plen + (size_t)w, c);
		}
	} else if (part_kind(n) == 'r') {
		parts_message(b, path, plen, n->child);
	}
}

/* Numbers the parts of message m below the prefix path[0..plen). */
static void parts_message(struct mime_buf *b, char *path, size_t plen, const struct node *m)
{
	const char *fmt = plen == 0 ? "%u" : ".%u";
	if (part_kind(m) == 'm') {
		unsigned i = 1;
		for (const struct node *c = m->child; c != NULL; c = c->next, i++) {
			int w = snprintf(path + plen, PATH_MAX_LEN - plen, fmt, i);
			if (w < 0 || (size_t)w >= PATH_MAX_LEN - plen) {
				b->oom = 1;
				return;
			}
			parts_part(b, path, plen + (size_t)w, c);
		}
		return;
	}
	int w = snprintf(path + plen, PATH_MAX_LEN - plen, fmt, 1u);
	if (w < 0 || (size_t)w >= PATH_MAX_LEN - plen) {
		b->oom = 1;
		return;
	}
	parts_part(b, path, plen + (size_t)w, m);
}

static char *render_parts(const struct node *root)
{
	struct mime_buf b = { 0 };
	char path[PATH_MAX_LEN];
	mime_buf_adds(&b, "P1\n");
	part_line(&b, "-", root);
	parts_message(&b, path, 0, root);
	return mime_buf_steal(&b);
}

/* ---- public ---- */

void mime_summary_free(struct mime_summary *m)
{
	if (m == NULL)
		return;
	char **all[] = { &m->envelope, &m->bodystructure, &m->body, &m->parts,
			 &m->subject, &m->from, &m->to, &m->cc, &m->bcc,
			 &m->message_id, &m->in_reply_to, &m->references, &m->date_hdr };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(*all[i]);
	memset(m, 0, sizeof(*m));
}

static int finish_summary(struct scan *s, struct mime_summary *out, const char **error_r)
{
	if (!s->oom) {
		struct node *root = s->root;
		struct mime_buf b = { 0 };
		render_body(&b, root, 1);
		out->bodystructure = mime_buf_steal(&b);
		render_body(&b, root, 0);
		out->body = mime_buf_steal(&b);
		out->parts = render_parts(root);
		out->envelope = root->envelope;
		root->envelope = NULL;
		out->lines = root->lines > UINT32_MAX ? UINT32_MAX : (uint32_t)root->lines;
		if (out->bodystructure == NULL || out->body == NULL || out->parts == NULL ||
		    out->envelope == NULL || out->subject == NULL)
			s->oom = 1;
	}
	free_nodes(s->all);
	if (s->oom) {
		mime_summary_free(out);
		*error_r = "out of memory";
		return -1;
	}
	return 0;
}

int mime_parse_mem(const char *data, size_t len, struct mime_summary *out,
		   const char **error_r)
{
	struct scan s;
	memset(out, 0, sizeof(*out));
	scan_init(&s, out, NULL, NULL);
	if (!s.oom)
		scan_mem(&s, data, len);
	return finish_summary(&s, out, error_r);
}

int mime_parse_fd(int fd, struct mime_summary *out, const char **error_r)
{
	struct scan s;
	memset(out, 0, sizeof(*out));
	scan_init(&s, out, NULL, NULL);
	if (!s.oom && scan_fd(&s, fd) < 0 && !s.oom) {
		int err = errno;
		free_nodes(s.all);
		mime_summary_free(out);
		*error_r = "read error";
		errno = err;
		return -1;
	}
	return finish_summary(&s, out, error_r);
}

/* ---- SEARCH text ---- */

struct search {
	void (*cb)(void *ctx, const char *utf8, size_t n);
	void *ctx;
	GMimeFilter *dec, *cs;
	struct node *active;
	int any;
	char *scratch;
	size_t scratch_cap;
	int oom;
};

static void search_emit(struct search *t, char *in, size_t n, int complete)
{
	char *out = in;
	size_t outlen = n, pre = 0;
	if (t->dec != NULL) {
		if (complete)
			g_mime_filter_complete(t->dec, in, n, 0, &out, &outlen, &pre);
		else
			g_mime_filter_filter(t->dec, in, n, 0, &out, &outlen, &pre);
	}
	char *o2;
	size_t l2, p2;
	if (complete)
		g_mime_filter_complete(t->cs, out, outlen, pre, &o2, &l2, &p2);
	else
		g_mime_filter_filter(t->cs, out, outlen, pre, &o2, &l2, &p2);
	if (l2 > 0) {
		t->cb(t->ctx, o2, l2);
		t->any = 1;
	}
}

static void search_header_end(void *ctx, struct node *n)
{
	struct search *t = ctx;
	/* A multipart we could not split is shown as text/plain: search it. */
	int text = n->is_text || (n->standin && strcmp(n->type, "multipart") == 0);
	if (n->kind != KIND_LEAF || !text)
		return;
	const char *cs = mime_params_get(&n->params, "charset");
	if (cs == NULL || mime_ascii_casecmp(cs, "us-ascii") == 0 ||
	    mime_ascii_casecmp(cs, "ascii") == 0)
		cs = "UTF-8";
	t->cs = g_mime_filter_charset_new(cs, "UTF-8");
	if (t->cs == NULL)
		t->cs = g_mime_filter_charset_new("UTF-8", "UTF-8");
	if (strcmp(n->enc, "base64") == 0)
		t->dec = g_mime_filter_basic_new(GMIME_CONTENT_ENCODING_BASE64, FALSE);
	else if (strcmp(n->enc, "quoted-printable") == 0)
		t->dec = g_mime_filter_basic_new(GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE, FALSE);
	if (t->cs == NULL) {
		t->oom = 1;
		return;
	}
	if (t->any)
		t->cb(t->ctx, "\n", 1);
	t->active = n;
}

static void search_body(void *ctx, struct node *n, const char *data, size_t len)
{
	struct search *t = ctx;
	if (t->active != n || t->oom || len == 0)
		return;
	if (len > t->scratch_cap) {
		char *p = realloc(t->scratch, len);
		if (p == NULL) {
			t->oom = 1;
			return;
		}
		t->scratch = p;
		t->scratch_cap = len;
	}
	/* GMime filters take a writable buffer. */
	memcpy(t->scratch, data, len);
	search_emit(t, t->scratch, len, 0);
}

static void search_close(void *ctx, struct node *n)
{
	struct search *t = ctx;
	if (t->active != n)
		return;
	if (!t->oom) {
		char empty[1] = { 0 };
		search_emit(t, empty, 0, 1);
	}
	if (t->dec != NULL)
		g_object_unref(t->dec);
	if (t->cs != NULL)
		g_object_unref(t->cs);
	t->dec = t->cs = NULL;
	t->active = NULL;
}

static const struct scan_hooks search_hooks = { search_header_end, search_body, search_close };

static int search_done(struct scan *s, struct search *t, int ret)
{
	if (t->dec != NULL)
		g_object_unref(t->dec);
	if (t->cs != NULL)
		g_object_unref(t->cs);
	free(t->scratch);
	free_nodes(s->all);
	return ret < 0 || s->oom || t->oom ? -1 : 0;
}

int mime_search_text_mem(const char *data, size_t len,
			 void (*cb)(void *ctx, const char *utf8, size_t n), void *ctx)
{
	struct search t = { .cb = cb, .ctx = ctx };
	struct scan s;
	scan_init(&s, NULL, &search_hooks, &t);
	if (!s.oom)
		scan_mem(&s, data, len);
	return search_done(&s, &t, 0);
}

int mime_search_text_fd(int fd, void (*cb)(void *ctx, const char *utf8, size_t n), void *ctx)
{
	struct search t = { .cb = cb, .ctx = ctx };
	struct scan s;
	scan_init(&s, NULL, &search_hooks, &t);
	int ret = s.oom ? -1 : scan_fd(&s, fd);
	return search_done(&s, &t, ret);
}
