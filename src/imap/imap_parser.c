/*
 * imap_parser.c - resumable IMAP command parser; the contract is in
 * imap_parser.h.
 *
 * One state per syntactic position, one octet per step, so that a command
 * split anywhere parses the same as the whole. Literal bodies are copied in
 * bulk. Errors leave the parser "discarding": a small scanner eats the rest of
 * the offending line, following only what it must to find the next command
 * (the "{n}" / "{n+}" announcements at the ends of lines).
 */
#include "imap/imap_parser.h"

#include <stdlib.h>
#include <string.h>

#define NUMBER64_MAX ((uint64_t)INT64_MAX) /* RFC 9051 number64 */
#define SECT_MAX_DEPTH 64                   /* nesting of ( [ inside an atom's section */
#define TOK_KEEP 1024                       /* token buffer kept between commands */

enum state {
	S_TAG_START,       /* at the start of a line */
	S_TAG,
	S_CMD_START,       /* after "tag SP" */
	S_CMD,
	S_ARG_START,       /* after SP, or after "(" when after_open */
	S_TILDE,           /* "~": literal8 or an atom */
	S_ATOM,            /* also its [section] while sect_depth > 0 */
	S_SECT_QUOTED,     /* a quoted string inside a section, kept raw */
	S_SECT_QUOTED_ESC,
	S_QUOTED,
	S_QUOTED_ESC,
	S_LIT_DIGITS,      /* after "{" */
	S_LIT_PLUS,        /* after "{n+" */
	S_LIT_CR,          /* after "}" */
	S_LIT_LF,          /* after "}" CR */
	S_LIT_WAIT,        /* LITERAL returned: accept / stream / reject */
	S_LIT_BODY,        /* accepted: copying n octets */
	S_LIT_STREAMING,   /* the caller is consuming the n octets */
	S_ARG_END,         /* after a complete argument */
	S_LF,              /* after the CR that ends the line */
	S_DONE,
	S_ERROR
};

/* The discarding scanner, run before parsing when an error left part of a
 * line behind. */
enum skip {
	SK_NONE,
	SK_LINE,       /* to LF; "{" may start a literal announcement */
	SK_LIT_DIGITS,
	SK_LIT_PLUS,
	SK_LIT_CR,
	SK_LIT_LF,
	SK_BODY        /* octets of a {n+} literal, then SK_LINE */
};

enum step {
	STEP_OK,       /* octet consumed */
	STEP_AGAIN,    /* state changed, look at the same octet again */
	STEP_ERR,      /* error; the octet is left for the discarding scanner */
	STEP_ERR_EAT,  /* error; the octet was consumed */
	STEP_DONE,     /* the LF ending the command was consumed */
	STEP_LITERAL   /* the LF ending a literal announcement was consumed */
};

struct frame {
	struct imap_arg *args;
	size_t count, alloc;
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum state state;
	size_t line_len;          /* non-literal octets of this command so far */

	char *tok;                /* the token being read (tag, name, atom, quoted) */
	size_t tok_len, tok_alloc;
	char *tag, *cmd;

	struct frame *frames;     /* frames[0]: top level; frames[i]: i-th open list */
	unsigned frames_alloc, depth;
	size_t nargs;             /* all arguments so far, lists included */
	int after_open;

	uint64_t sect;            /* section stack, bit i set: level i is "[" (else "(") */
	unsigned sect_depth;
	int spanned;              /* the section held SP, parentheses or quotes */

	uint64_t lit_size;
	unsigned lit_ndig;
	int lit_ovf, lit_nonsync, lit8;
	int lit_in_sect;           /* the literal is a header-fld-name in a [section] */
	char *lit_buf;
	uint64_t lit_got;
	uint64_t lit_total;       /* buffered literal octets in this command */

	const char *error;
	char errbuf[160];
	int fatal;
	int error_pending;        /* set by a literal refusal: the next feed reports it */

	enum skip sk;
	uint64_t sk_num, sk_rem;
	unsigned sk_ndig;
	int sk_ovf, sk_nonsync;
};

/* ---------------------------------------------------------------- chars */

/* ATOM-CHAR: CHAR except atom-specials ( ) { SP CTL % * " \ ] */
static int is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR / "]" */
static int is_tag_char(unsigned char c)
{
	return c != '+' && (is_atom_char(c) || c == ']');
}

/* Atoms as arguments: ATOM-CHAR plus "\" (flags), "*" "%" (wildcards), "]". */
static int is_arg_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return c != '(' && c != ')' && c != '{' && c != '"';
}

/* ---------------------------------------------------------------- memory */

static void free_args(struct imap_arg *args, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free((void *)args[i].str);
		if (args[i].type == IMAP_ARG_LIST)
			free_args(args[i].list, args[i].list_count);
	}
	free(args);
}

static void free_command(struct imap_parser *p)
{
	/* open lists first (their arrays are not yet in the tree), then the top */
	for (unsigned d = 0; d < p->frames_alloc; d++) {
		free_args(p->frames[d].args, p->frames[d].count);
		p->frames[d].args = NULL;
		p->frames[d].count = p->frames[d].alloc = 0;
	}
	p->depth = 0;
	p->nargs = 0;
	free(p->tag);
	free(p->cmd);
	p->tag = p->cmd = NULL;
	free(p->lit_buf);
	p->lit_buf = NULL;
	p->lit_total = 0;
	p->tok_len = 0;
	if (p->tok_alloc > TOK_KEEP) {
		free(p->tok);
		p->tok = NULL;
		p->tok_alloc = 0;
	}
}

/* ---------------------------------------------------------------- errors */

/* Start discarding from the current position of an unfinished line. */
static void skip_from_state(struct imap_parser *p)
{
	p->sk = SK_LINE;
	p->sk_num = p->lit_size;
	p->sk_ndig = p->lit_ndig;
	p->sk_ovf = p->lit_ovf;
	p->sk_nonsync = p->lit_nonsync;
	switch (p->state) {
	case S_LIT_DIGITS:
		p->sk = SK_LIT_DIGITS;
		break;
	case S_LIT_PLUS:
		p->sk = SK_LIT_PLUS;
		break;
	case S_LIT_CR:
		p->sk = SK_LIT_CR;
		break;
	case S_LIT_LF:
		p->sk = SK_LIT_LF;
		break;
	case S_LIT_BODY:
		/* an accepted literal: its remaining octets come regardless */
		p->sk_rem = p->lit_size - p->lit_got;
		p->sk = p->sk_rem > 0 ? SK_BODY : SK_LINE;
		break;
	case S_DONE:
	case S_ERROR:
		p->sk = SK_NONE;
		break;
	default:
		break;
	}
}

static enum step fail(struct imap_parser *p, const char *msg)
{
	p->error = msg;
	skip_from_state(p);
	p->state = S_ERROR;
	return STEP_ERR;
}

static enum step fail_fatal(struct imap_parser *p, const char *msg)
{
	p->error = msg;
	p->fatal = 1;
	p->sk = SK_NONE;
	p->state = S_ERROR;
	return STEP_ERR;
}

/* A literal announcement (its CRLF consumed) that will not be read: a
 * synchronizing one ends the line, as the client waits for a "+" that never
 * comes; a {n+} literal's octets come anyway and are skipped (RFC 7888 4). */
static void literal_refuse(struct imap_parser *p, const char *msg)
{
	p->error = msg;
	p->state = S_ERROR;
	p->error_pending = 1;
	if (!p->lit_nonsync) {
		p->sk = SK_NONE;
	} else if (p->lit_ovf) {
		p->fatal = 1;
		p->sk = SK_NONE;
	} else {
		p->sk_rem = p->lit_size;
		p->sk = p->sk_rem > 0 ? SK_BODY : SK_LINE;
	}
}

/* ---------------------------------------------------------------- building */

static int tok_add(struct imap_parser *p, char c)
{
	if (p->tok_len + 1 >= p->tok_alloc) {
		size_t n = p->tok_alloc < 64 ? 64 : p->tok_alloc * 2;
		char *t = realloc(p->tok, n);
		if (t == NULL)
			return -1;
		p->tok = t;
		p->tok_alloc = n;
	}
	p->tok[p->tok_len++] = c;
	return 0;
}

static char *tok_take(struct imap_parser *p)
{
	char *s = malloc(p->tok_len + 1);
	if (s != NULL) {
		if (p->tok_len > 0)
			memcpy(s, p->tok, p->tok_len);
		s[p->tok_len] = '\0';
	}
	return s;
}

static int frame_push(struct frame *f, const struct imap_arg *a)
{
	if (f->count == f->alloc) {
		size_t n = f->alloc < 4 ? 4 : f->alloc * 2;
		struct imap_arg *v = realloc(f->args, n * sizeof(*v));
		if (v == NULL)
			return -1;
		f->args = v;
		f->alloc = n;
	}
	f->args[f->count++] = *a;
	return 0;
}

static int ensure_frames(struct imap_parser *p, unsigned n)
{
	if (n <= p->frames_alloc)
		return 0;
	struct frame *f = realloc(p->frames, n * sizeof(*f));
	if (f == NULL)
		return -1;
	memset(f + p->frames_alloc, 0, (n - p->frames_alloc) * sizeof(*f));
	p->frames = f;
	p->frames_alloc = n;
	return 0;
}

/* Append an argument (str, if any, now owned by the tree). */
static enum step add_arg(struct imap_parser *p, enum imap_arg_type type, char *str, size_t len,
			 int literal8)
{
	if (p->nargs >= p->lim.max_args) {
		free(str);
		return fail(p, "Too many arguments");
	}
	struct imap_arg a = { .type = type, .str = str, .len = len, .literal8 = literal8 };
	if (ensure_frames(p, p->depth + 1) < 0 || frame_push(&p->frames[p->depth], &a) < 0) {
		free(str);
		return fail_fatal(p, "Out of memory");
	}
	p->nargs++;
	return STEP_OK;
}

static enum step end_atom(struct imap_parser *p)
{
	char *s = tok_take(p);
	if (s == NULL)
		return fail_fatal(p, "Out of memory");
	enum imap_arg_type t = IMAP_ARG_ATOM;
	if (p->tok_len == 3 && (s[0] | 0x20) == 'n' && (s[1] | 0x20) == 'i' && (s[2] | 0x20) == 'l')
		t = IMAP_ARG_NIL;
	return add_arg(p, t, s, p->tok_len, 0);
}

static enum step open_list(struct imap_parser *p)
{
	if (p->depth >= p->lim.max_depth)
		return fail(p, "Lists nested too deeply");
	if (p->nargs >= p->lim.max_args)
		return fail(p, "Too many arguments");
	if (ensure_frames(p, p->depth + 2) < 0)
		return fail_fatal(p, "Out of memory");
	p->nargs++; /* the list itself, counted when opened */
	p->depth++;
	struct frame *f = &p->frames[p->depth];
	f->args = NULL;
	f->count = f->alloc = 0;
	return STEP_OK;
}

static enum step close_list(struct imap_parser *p)
{
	struct frame *f = &p->frames[p->depth];
	if (f->count == 0) {
		free(f->args);
		f->args = NULL;
	} else if (f->count < f->alloc) {
		/* many small lists must not cost 4 slots each */
		struct imap_arg *v = realloc(f->args, f->count * sizeof(*v));
		if (v != NULL)
			f->args = v;
	}
	struct imap_arg a = { .type = IMAP_ARG_LIST, .list = f->args, .list_count = f->count };
	f->args = NULL;
	f->count = f->alloc = 0;
	p->depth--;
	if (frame_push(&p->frames[p->depth], &a) < 0) {
		free_args(a.list, a.list_count);
		return fail_fatal(p, "Out of memory");
	}
	return STEP_OK;
}

static enum step end_line(struct imap_parser *p)
{
	if (p->depth > 0)
		return fail(p, "Unterminated list");
	p->state = S_DONE;
	return STEP_DONE;
}

static void literal_begin(struct imap_parser *p, int lit8)
{
	p->lit8 = lit8;
	p->lit_in_sect = 0;
	p->lit_size = 0;
	p->lit_ndig = 0;
	p->lit_ovf = 0;
	p->lit_nonsync = 0;
	p->state = S_LIT_DIGITS;
}

/* The LF after "{n}" was consumed. */
static enum step literal_announced(struct imap_parser *p)
{
	const char *refuse = NULL;
	if (p->lit_ovf)
		refuse = "[TOOBIG] Literal too large";
	else if (p->nargs >= p->lim.max_args)
		refuse = "Too many arguments";
	if (refuse != NULL) {
		literal_refuse(p, refuse);
		p->error_pending = 0; /* feed reports it now */
		return STEP_ERR_EAT;
	}
	p->state = S_LIT_WAIT;
	return STEP_LITERAL;
}

/* A header-fld-name sent as a literal inside BODY[HEADER.FIELDS (...)]
 * (it is an astring, RFC 9051 9): it joins the section atom as a quoted
 * string, which is how the FETCH item parser reads it. */
static enum step literal_in_section(struct imap_parser *p, char *buf, size_t len)
{
	p->lit_in_sect = 0;
	enum step r = STEP_OK;
	if (tok_add(p, '"') < 0)
		r = fail_fatal(p, "Out of memory");
	for (size_t i = 0; i < len && r == STEP_OK; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\r' || c == '\n' || c >= 0x80)
			r = fail(p, "Invalid header field name");
		else if ((c == '"' || c == '\\') && tok_add(p, '\\') < 0)
			r = fail_fatal(p, "Out of memory");
		else if (tok_add(p, (char)c) < 0)
			r = fail_fatal(p, "Out of memory");
	}
	if (r == STEP_OK && tok_add(p, '"') < 0)
		r = fail_fatal(p, "Out of memory");
	free(buf);
	if (r == STEP_OK)
		p->state = S_ATOM;
	return r;
}

static enum step literal_complete(struct imap_parser *p)
{
	char *buf = p->lit_buf;
	p->lit_buf = NULL;
	buf[p->lit_size] = '\0';
	if (p->lit_in_sect)
		return literal_in_section(p, buf, (size_t)p->lit_size);
	enum step r = add_arg(p, IMAP_ARG_LITERAL, buf, (size_t)p->lit_size, p->lit8);
	if (r == STEP_OK)
		p->state = S_ARG_END;
	return r;
}

/* ---------------------------------------------------------------- the steps */

static enum step step_atom(struct imap_parser *p, unsigned char c)
{
	if (p->sect_depth == 0) {
		if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
			enum step r = end_atom(p);
			if (r != STEP_OK)
				return r;
			if (c == ' ') {
				p->state = S_ARG_START;
				p->after_open = 0;
				return STEP_OK;
			}
			p->state = S_ARG_END;
			return STEP_AGAIN;
		}
		if (!is_arg_atom_char(c))
			return fail(p, "Invalid character in atom");
		if (c == '[') {
			p->sect = 1;
			p->sect_depth = 1;
			p->spanned = 0;
		}
		return tok_add(p, (char)c) < 0 ? fail_fatal(p, "Out of memory") : STEP_OK;
	}

	/* Inside a [section]: FETCH's BODY[HEADER.FIELDS (A B)]<0.10> is one atom. */
	int top_is_bracket = (int)((p->sect >> (p->sect_depth - 1)) & 1);
	if (c == '\r' || c == '\n' || (c == ')' && top_is_bracket)) {
		/* the line or an enclosing list ends inside the section */
		if (p->spanned)
			return fail(p, "Unterminated [ in atom");
		/* "foo[bar" was a plain atom after all */
		p->sect_depth = 0;
		return step_atom(p, c);
	}
	switch (c) {
	case '[':
	case '(':
		if (p->sect_depth >= p->lim.max_depth || p->sect_depth >= SECT_MAX_DEPTH)
			return fail(p, "Section nested too deeply");
		if (c == '[')
			p->sect |= (uint64_t)1 << p->sect_depth;
		else
			p->sect &= ~((uint64_t)1 << p->sect_depth);
		p->sect_depth++;
		if (c == '(')
			p->spanned = 1;
		break;
	case ']':
		if (!top_is_bracket)
			return fail(p, "Unbalanced brackets in section");
		p->sect_depth--;
		break;
	case ')':
		p->sect_depth--;
		break;
	case ' ':
		p->spanned = 1;
		break;
	case '"':
		p->spanned = 1;
		p->state = S_SECT_QUOTED;
		break;
	case '{':
		/* a literal header-fld-name, right after "(" or " " in a list */
		if (top_is_bracket || p->tok_len == 0 ||
		    (p->tok[p->tok_len - 1] != '(' && p->tok[p->tok_len - 1] != ' '))
			return fail(p, "Invalid character in atom");
		p->spanned = 1;
		literal_begin(p, 0);
		p->lit_in_sect = 1;
		return STEP_OK;
	default:
		if (!is_arg_atom_char(c))
			return fail(p, "Invalid character in atom");
		break;
	}
	return tok_add(p, (char)c) < 0 ? fail_fatal(p, "Out of memory") : STEP_OK;
}

static enum step step(struct imap_parser *p, unsigned char c)
{
	switch (p->state) {
	case S_TAG_START:
		if (c == '\r' || c == '\n')
			return fail(p, "Empty command line");
		if (!is_tag_char(c))
			return fail(p, "Invalid tag");
		p->state = S_TAG;
		return STEP_AGAIN;

	case S_TAG:
		if (is_tag_char(c))
			break;
		if (c == ' ' || c == '\r' || c == '\n') {
			p->tag = tok_take(p);
			if (p->tag == NULL)
				return fail_fatal(p, "Out of memory");
			p->tok_len = 0;
			if (c != ' ')
				return fail(p, "Missing command");
			p->state = S_CMD_START;
			return STEP_OK;
		}
		return fail(p, "Invalid character in tag");

	case S_CMD_START:
		if (!is_atom_char(c))
			return fail(p, c == ' ' || c == '\r' || c == '\n' ? "Missing command"
									   : "Invalid command name");
		p->state = S_CMD;
		return STEP_AGAIN;

	case S_CMD:
		if (is_atom_char(c)) {
			if (c >= 'a' && c <= 'z')
				c = (unsigned char)(c - 'a' + 'A');
			break;
		}
		if (c == ' ' || c == '\r' || c == '\n') {
			p->cmd = tok_take(p);
			if (p->cmd == NULL)
				return fail_fatal(p, "Out of memory");
			p->tok_len = 0;
			if (c == '\n')
				return end_line(p);
			p->state = c == ' ' ? S_ARG_START : S_LF;
			p->after_open = 0;
			return STEP_OK;
		}
		return fail(p, "Invalid character in command name");

	case S_ARG_START:
		p->tok_len = 0;
		switch (c) {
		case '"':
			p->state = S_QUOTED;
			return STEP_OK;
		case '{':
			literal_begin(p, 0);
			return STEP_OK;
		case '~':
			p->state = S_TILDE;
			break;
		case '(':
			if (open_list(p) != STEP_OK)
				return STEP_ERR;
			p->after_open = 1;
			return STEP_OK;
		case ')':
			if (!p->after_open || p->depth == 0)
				return fail(p, "Unexpected ')'");
			if (close_list(p) != STEP_OK)
				return STEP_ERR;
			p->state = S_ARG_END;
			return STEP_OK;
		case ' ':
			return fail(p, "Unexpected space");
		case '\r':
		case '\n':
			return fail(p, p->after_open ? "Unterminated list"
						     : "Missing argument after space");
		default:
			if (!is_arg_atom_char(c))
				return fail(p, "Invalid character in argument");
			p->sect_depth = 0;
			p->state = S_ATOM;
			return STEP_AGAIN;
		}
		break;

	case S_TILDE:
		if (c == '{') {
			literal_begin(p, 1);
			return STEP_OK;
		}
		/* "~" starts an ordinary atom; it is in the token already */
		p->sect_depth = 0;
		p->state = S_ATOM;
		return STEP_AGAIN;

	case S_ATOM:
		return step_atom(p, c);

	case S_SECT_QUOTED:
		if (c == '\r' || c == '\n' || c == '\0')
			return fail(p, "Unterminated quoted string");
		if (c == '\\')
			p->state = S_SECT_QUOTED_ESC;
		else if (c == '"')
			p->state = S_ATOM;
		break;

	case S_SECT_QUOTED_ESC:
		if (c != '\\' && c != '"')
			return fail(p, "Invalid escape in quoted string");
		p->state = S_SECT_QUOTED;
		break;

	case S_QUOTED:
		if (c == '"') {
			char *s = tok_take(p);
			if (s == NULL)
				return fail_fatal(p, "Out of memory");
			enum step r = add_arg(p, IMAP_ARG_QUOTED, s, p->tok_len, 0);
			if (r == STEP_OK)
				p->state = S_ARG_END;
			return r;
		}
		if (c == '\\') {
			p->state = S_QUOTED_ESC;
			return STEP_OK;
		}
		if (c == '\r' || c == '\n')
			return fail(p, "Unterminated quoted string");
		if (c == '\0')
			return fail(p, "NUL in quoted string");
		break;

	case S_QUOTED_ESC:
		if (c != '\\' && c != '"')
			return fail(p, "Invalid escape in quoted string");
		p->state = S_QUOTED;
		break;

	case S_LIT_DIGITS:
		if (c >= '0' && c <= '9') {
			uint64_t d = (uint64_t)(c - '0');
			if (p->lit_ovf || p->lit_size > (NUMBER64_MAX - d) / 10)
				p->lit_ovf = 1;
			else
				p->lit_size = p->lit_size * 10 + d;
			p->lit_ndig++;
			return STEP_OK;
		}
		if (p->lit_ndig == 0 || (c != '+' && c != '}'))
			return fail(p, "Invalid literal");
		if (c == '+') {
			p->lit_nonsync = 1;
			p->state = S_LIT_PLUS;
		} else {
			p->state = S_LIT_CR;
		}
		return STEP_OK;

	case S_LIT_PLUS:
		if (c != '}')
			return fail(p, "Invalid literal");
		p->state = S_LIT_CR;
		return STEP_OK;

	case S_LIT_CR:
		if (c == '\n')
			return literal_announced(p);
		if (c != '\r')
			return fail(p, "Literal must end the line");
		p->state = S_LIT_LF;
		return STEP_OK;

	case S_LIT_LF:
		if (c != '\n')
			return fail(p, "CR not followed by LF");
		return literal_announced(p);

	case S_ARG_END:
		switch (c) {
		case ' ':
			p->state = S_ARG_START;
			p->after_open = 0;
			return STEP_OK;
		case ')':
			if (p->depth == 0)
				return fail(p, "Unexpected ')'");
			return close_list(p);
		case '\r':
			p->state = S_LF;
			return STEP_OK;
		case '\n':
			return end_line(p);
		default:
			return fail(p, "Missing space between arguments");
		}

	case S_LF:
		if (c != '\n')
			return fail(p, "CR not followed by LF");
		return end_line(p);

	case S_LIT_WAIT:
	case S_LIT_BODY:
	case S_LIT_STREAMING:
	case S_DONE:
	case S_ERROR:
		/* not reached: feed() handles these */
		return fail_fatal(p, "Internal parser error");
	}
	/* the octet belongs to the token being read */
	return tok_add(p, (char)c) < 0 ? fail_fatal(p, "Out of memory") : STEP_OK;
}

/* ---------------------------------------------------------------- discarding */

static void skip_literal_announced(struct imap_parser *p)
{
	if (!p->sk_nonsync) {
		p->sk = SK_NONE; /* {n}: the client waits for "+", the line ends here */
	} else if (p->sk_ovf) {
		p->error = "Literal too large to skip";
		p->fatal = 1;
		p->sk = SK_NONE;
	} else {
		p->sk_rem = p->sk_num;
		p->sk = p->sk_rem > 0 ? SK_BODY : SK_LINE;
	}
}

/* Discard the rest of a line; returns the octets used. p->sk is SK_NONE once
 * the line is over. */
static size_t skip_run(struct imap_parser *p, const char *data, size_t len)
{
	size_t i = 0;
	while (i < len && p->sk != SK_NONE && !p->fatal) {
		unsigned char c = (unsigned char)data[i];
		switch (p->sk) {
		case SK_BODY: {
			uint64_t n = len - i;
			if (n > p->sk_rem)
				n = p->sk_rem;
			i += (size_t)n;
			p->sk_rem -= n;
			if (p->sk_rem == 0)
				p->sk = SK_LINE;
			break;
		}
		case SK_LINE:
			i++;
			if (c == '\n') {
				p->sk = SK_NONE;
			} else if (c == '{') {
				p->sk = SK_LIT_DIGITS;
				p->sk_num = 0;
				p->sk_ndig = 0;
				p->sk_ovf = 0;
				p->sk_nonsync = 0;
			}
			break;
		case SK_LIT_DIGITS:
			if (c >= '0' && c <= '9') {
				uint64_t d = (uint64_t)(c - '0');
				if (p->sk_ovf || p->sk_num > (NUMBER64_MAX - d) / 10)
					p->sk_ovf = 1;
				else
					p->sk_num = p->sk_num * 10 + d;
				p->sk_ndig++;
				i++;
			} else if (p->sk_ndig > 0 && c == '+') {
				p->sk_nonsync = 1;
				p->sk = SK_LIT_PLUS;
				i++;
			} else if (p->sk_ndig > 0 && c == '}') {
				p->sk = SK_LIT_CR;
				i++;
			} else {
				p->sk = SK_LINE; /* not a literal; look at c again */
			}
			break;
		case SK_LIT_PLUS:
			if (c == '}') {
				p->sk = SK_LIT_CR;
				i++;
			} else {
				p->sk = SK_LINE;
			}
			break;
		case SK_LIT_CR:
		case SK_LIT_LF:
			if (c == '\n') {
				i++;
				skip_literal_announced(p);
			} else if (c == '\r' && p->sk == SK_LIT_CR) {
				p->sk = SK_LIT_LF;
				i++;
			} else {
				p->sk = SK_LINE;
			}
			break;
		case SK_NONE:
			break;
		}
	}
	return i;
}

/* ---------------------------------------------------------------- API */

static void apply_limits(struct imap_parser *p, const struct imap_parser_limits *lim)
{
	struct imap_parser_limits l = { 0 };
	if (lim != NULL)
		l = *lim;
	p->lim.max_line = l.max_line ? l.max_line : IMAP_PARSER_DEFAULT_MAX_LINE;
	p->lim.max_literal = l.max_literal ? l.max_literal : IMAP_PARSER_DEFAULT_MAX_LITERAL;
	p->lim.max_literal_total =
		l.max_literal_total ? l.max_literal_total : IMAP_PARSER_DEFAULT_MAX_LITERAL_TOTAL;
	p->lim.max_depth = l.max_depth ? l.max_depth : IMAP_PARSER_DEFAULT_MAX_DEPTH;
	p->lim.max_args = l.max_args ? l.max_args : IMAP_PARSER_DEFAULT_MAX_ARGS;
	/* a literal is buffered in one allocation of max_literal + 1 */
	if (p->lim.max_literal > SIZE_MAX / 2)
		p->lim.max_literal = SIZE_MAX / 2;
}

imap_parser_t *imap_parser_new(const struct imap_parser_limits *lim)
{
	struct imap_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	apply_limits(p, lim);
	p->state = S_TAG_START;
	return p;
}

void imap_parser_set_limits(imap_parser_t *p, const struct imap_parser_limits *lim)
{
	apply_limits(p, lim);
}

void imap_parser_free(imap_parser_t *p)
{
	if (p == NULL)
		return;
	free_command(p);
	free(p->frames);
	free(p->tok);
	free(p);
}

void imap_parser_reset(imap_parser_t *p)
{
	switch (p->state) {
	case S_DONE:
	case S_ERROR:
	case S_TAG_START:
		break; /* the line is over, or the discarding is already set up */
	case S_LIT_WAIT:
		literal_refuse(p, NULL);
		break;
	case S_LIT_STREAMING:
		p->sk = SK_LINE; /* the caller had the literal's octets */
		break;
	default:
		skip_from_state(p);
		break;
	}
	free_command(p);
	p->error_pending = 0;
	if (!p->fatal)
		p->error = NULL;
	p->line_len = 0;
	p->state = S_TAG_START;
}

enum imap_parse_result imap_parser_feed(imap_parser_t *p, const char *data, size_t len,
					size_t *consumed_r)
{
	size_t i = 0;
	*consumed_r = 0;
	if (p->fatal) {
		/* nothing more can be parsed on this connection */
		*consumed_r = len;
		p->state = S_ERROR;
		return IMAP_PARSE_ERROR;
	}
	if (p->state == S_LIT_WAIT || p->state == S_LIT_STREAMING) {
		fail_fatal(p, "Internal error: literal not handled");
		return IMAP_PARSE_ERROR;
	}
	if (p->error_pending) {
		/* a literal refused by accept() or reject(), not reset since */
		p->error_pending = 0;
		return IMAP_PARSE_ERROR;
	}
	if (p->state == S_DONE || p->state == S_ERROR)
		imap_parser_reset(p);

	if (p->sk != SK_NONE) {
		i = skip_run(p, data, len);
		if (p->fatal) {
			p->state = S_ERROR;
			*consumed_r = len;
			return IMAP_PARSE_ERROR;
		}
		if (p->sk != SK_NONE) {
			*consumed_r = len;
			return IMAP_PARSE_NEED_MORE;
		}
	}

	while (i < len) {
		if (p->state == S_LIT_BODY) {
			size_t n = len - i;
			if (n > p->lit_size - p->lit_got)
				n = (size_t)(p->lit_size - p->lit_got);
			const char *nul = p->lit8 ? NULL : memchr(data + i, '\0', n);
			if (nul != NULL) {
				/* keep the octets through the NUL; the rest is skipped */
				size_t k = (size_t)(nul - (data + i)) + 1;
				p->lit_got += k;
				*consumed_r = i + k;
				p->error = "NUL in literal (use literal8)";
				skip_from_state(p);
				p->state = S_ERROR;
				return IMAP_PARSE_ERROR;
			}
			memcpy(p->lit_buf + p->lit_got, data + i, n);
			p->lit_got += n;
			i += n;
			if (p->lit_got == p->lit_size && literal_complete(p) != STEP_OK) {
				*consumed_r = i;
				return IMAP_PARSE_ERROR;
			}
			continue;
		}
		if (p->line_len >= p->lim.max_line) {
			fail(p, "Command line too long");
			*consumed_r = i;
			return IMAP_PARSE_ERROR;
		}
		switch (step(p, (unsigned char)data[i])) {
		case STEP_OK:
			i++;
			p->line_len++;
			break;
		case STEP_AGAIN:
			break;
		case STEP_ERR:
			*consumed_r = i;
			return IMAP_PARSE_ERROR;
		case STEP_ERR_EAT:
			*consumed_r = i + 1;
			return IMAP_PARSE_ERROR;
		case STEP_DONE:
			*consumed_r = i + 1;
			return IMAP_PARSE_DONE;
		case STEP_LITERAL:
			p->line_len++;
			*consumed_r = i + 1;
			return IMAP_PARSE_LITERAL;
		}
	}
	*consumed_r = len;
	return IMAP_PARSE_NEED_MORE;
}

const char *imap_parser_tag(imap_parser_t *p)
{
	return p->tag != NULL ? p->tag : "";
}

const char *imap_parser_command(imap_parser_t *p)
{
	return p->cmd != NULL ? p->cmd : "";
}

const struct imap_arg *imap_parser_args(imap_parser_t *p, size_t *count_r)
{
	if (p->frames_alloc == 0 || p->frames[0].count == 0) {
		*count_r = 0;
		return NULL;
	}
	*count_r = p->frames[0].count;
	return p->frames[0].args;
}

const char *imap_parser_error(imap_parser_t *p)
{
	return p->error != NULL ? p->error : "Syntax error";
}

const char *imap_parser_error_tag(imap_parser_t *p)
{
	return p->tag != NULL ? p->tag : "*";
}

int imap_parser_error_fatal(imap_parser_t *p)
{
	return p->fatal;
}

uint64_t imap_parser_literal_size(imap_parser_t *p)
{
	return p->lit_size;
}

int imap_parser_literal_is_sync(imap_parser_t *p)
{
	return !p->lit_nonsync;
}

int imap_parser_literal_is_literal8(imap_parser_t *p)
{
	return p->lit8;
}

int imap_parser_literal_accept(imap_parser_t *p)
{
	if (p->state != S_LIT_WAIT) {
		if (p->state != S_ERROR)
			fail_fatal(p, "Internal error: no literal to accept");
		return -1;
	}
	/* checked before anything is allocated, and before the caller sends "+" */
	if (p->lit_size > p->lim.max_literal || p->lit_total > p->lim.max_literal_total ||
	    p->lit_size > p->lim.max_literal_total - p->lit_total) {
		literal_refuse(p, "[TOOBIG] Literal too large");
		return -1;
	}
	p->lit_buf = malloc((size_t)p->lit_size + 1);
	if (p->lit_buf == NULL) {
		fail_fatal(p, "Out of memory");
		return -1;
	}
	p->lit_total += p->lit_size;
	p->lit_got = 0;
	p->state = S_LIT_BODY;
	if (p->lit_size == 0 && literal_complete(p) != STEP_OK)
		return -1;
	return 0;
}

void imap_parser_literal_stream(imap_parser_t *p)
{
	if (p->state != S_LIT_WAIT) {
		if (p->state != S_ERROR)
			fail_fatal(p, "Internal error: no literal to stream");
		return;
	}
	p->state = S_LIT_STREAMING;
}

void imap_parser_literal_streamed(imap_parser_t *p)
{
	if (p->state != S_LIT_STREAMING) {
		if (p->state != S_ERROR)
			fail_fatal(p, "Internal error: no literal being streamed");
		return;
	}
	/* the argument slot was checked when the literal was announced */
	if (add_arg(p, IMAP_ARG_STREAMED, NULL, (size_t)p->lit_size, p->lit8) == STEP_OK)
		p->state = S_ARG_END;
}

void imap_parser_literal_reject(imap_parser_t *p, const char *reason)
{
	if (p->state != S_LIT_WAIT) {
		if (p->state != S_ERROR)
			fail_fatal(p, "Internal error: no literal to reject");
		return;
	}
	size_t n = 0;
	if (reason == NULL)
		reason = "Literal refused";
	for (; reason[n] != '\0' && n < sizeof(p->errbuf) - 1; n++)
		p->errbuf[n] = reason[n] == '\r' || reason[n] == '\n' ? ' ' : reason[n];
	p->errbuf[n] = '\0';
	literal_refuse(p, p->errbuf);
}
