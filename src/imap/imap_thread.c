/* Base subjects, addresses, message IDs and threading (RFC 5256).
 *
 * Trees are arrays of nodes linked by index (parent, first/last child,
 * previous/next sibling), and every walk over them is iterative: a chain
 * of replies is as deep as the mailbox is large, too deep for recursion on
 * a worker's stack. */
#include "imap/imap_thread.h"

#include "mime/mime_collate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ base subject */

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int prefix_ci(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(p[i]) != word[i])
			return 0;
	return 1;
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP: its length at p, or 0. */
static size_t match_blob(const char *p, const char *end)
{
	if (p >= end || *p != '[')
		return 0;
	const char *q = p + 1;
	while (q < end && *q != '[' && *q != ']')
		q++;
	if (q >= end || *q != ']')
		return 0;
	q++;
	while (q < end && is_wsp(*q))
		q++;
	return (size_t)(q - p);
}

/* subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":": length, or 0. */
static size_t match_refwd(const char *p, const char *end)
{
	const char *q;
	if (prefix_ci(p, end, "re"))
		q = p + 2;
	else if (prefix_ci(p, end, "fwd"))
		q = p + 3;
	else if (prefix_ci(p, end, "fw"))
		q = p + 2;
	else
		return 0;
	while (q < end && is_wsp(*q))
		q++;
	q += match_blob(q, end);
	if (q >= end || *q != ':')
		return 0;
	return (size_t)(q + 1 - p);
}

/* subj-leader = (*subj-blob subj-refwd) / WSP: length, or 0; *refwd_r
 * when it was a subj-refwd. */
static size_t match_leader(const char *p, const char *end, int *refwd_r)
{
	if (p < end && is_wsp(*p))
		return 1;
	const char *q = p;
	size_t b;
	while ((b = match_blob(q, end)) > 0)
		q += b;
	size_t r = match_refwd(q, end);
	if (r == 0)
		return 0;
	*refwd_r = 1;
	return (size_t)(q - p) + r;
}

char *imap_base_subject(const char *subject, int *reply_r)
{
	if (subject == NULL)
		subject = "";
	size_t len = strlen(subject);
	char *buf = malloc(len + 1);
	if (buf == NULL)
		return NULL;
	/* (1) white space: tabs and line ends to spaces, runs to one space */
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = subject[i];
		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		if (c == ' ' && n > 0 && buf[n - 1] == ' ')
			continue;
		buf[n++] = c;
	}
	const char *p = buf, *end = buf + n;
	int reply = 0;
	for (;;) {
		/* (2) trailers: "(fwd)" and WSP, repeatedly */
		for (;;) {
			if (end > p && is_wsp(end[-1])) {
				end--;
			} else if (end - p >= 5 && prefix_ci(end - 5, end, "(fwd)")) {
				end -= 5;
				reply = 1;
			} else {
				break;
			}
		}
		/* (3)-(5) leaders, and a blob before a non-empty rest */
		for (;;) {
			size_t l = match_leader(p, end, &reply);
			if (l > 0) {
				p += l;
				continue;
			}
			size_t b = match_blob(p, end);
			if (b > 0 && p + b < end) {
				p += b;
				continue;
			}
			break;
		}
		/* (6) "[fwd:" ... "]": strip both and start again from (2) */
		if (end - p >= 6 && prefix_ci(p, end, "[fwd:") && end[-1] == ']') {
			p += 5;
			end--;
			reply = 1;
			continue;
		}
		break;
	}
	size_t out = (size_t)(end - p);
	memmove(buf, p, out);
	buf[out] = '\0';
	if (reply_r != NULL)
		*reply_r = reply;
	return buf;
}

/* ---------------------------------------------------------------- address */

char *imap_first_mailbox(const char *list)
{
	const char *p = list != NULL ? list : "";
	for (;;) {
		/* one address: up to a ',' or ';' outside quotes and angles */
		while (*p == ' ' || *p == ',' || *p == ';')
			p++;
		if (*p == '\0')
			return strdup("");
		const char *start = p, *angle = NULL, *angle_end = NULL;
		int quoted = 0;
		for (; *p != '\0'; p++) {
			if (quoted) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '"')
					quoted = 0;
			} else if (*p == '"') {
				quoted = 1;
			} else if (*p == '<' && angle == NULL) {
				angle = p + 1;
			} else if (*p == '>' && angle != NULL && angle_end == NULL) {
				angle_end = p;
			} else if (*p == ':' && angle == NULL) {
				start = p + 1; /* a group: its name is not an address */
				while (*start == ' ')
					start++;
			} else if ((*p == ',' || *p == ';') && (angle == NULL || angle_end != NULL)) {
				break;
			}
		}
		const char *a = start, *e = p;
		if (angle != NULL) {
			a = angle;
			e = angle_end != NULL ? angle_end : p;
		}
		while (a < e && *a == ' ')
			a++;
		while (e > a && e[-1] == ' ')
			e--;
		if (a == e)
			continue; /* an empty group, or nothing: the next address */
		/* the local part: before the last '@' outside quotes, unquoted */
		const char *at = NULL;
		quoted = 0;
		for (const char *q = a; q < e; q++) {
			if (*q == '"')
				quoted = !quoted;
			else if (*q == '\\' && quoted && q + 1 < e)
				q++;
			else if (*q == '@' && !quoted)
				at = q;
		}
		if (at != NULL)
			e = at;
		char *out = malloc((size_t)(e - a) + 1);
		if (out == NULL)
			return NULL;
		size_t n = 0;
		for (const char *q = a; q < e; q++) {
			if (*q == '"')
				continue;
			if (*q == '\\' && q + 1 < e)
				q++;
			out[n++] = *q;
		}
		out[n] = '\0';
		return out;
	}
}

/* ------------------------------------------------------------- message id */

char *imap_next_message_id(const char **pp, int *oom_r)
{
	const char *p = *pp;
	for (;;) {
		p = p != NULL ? strchr(p, '<') : NULL;
		if (p == NULL) {
			*pp = NULL;
			return NULL;
		}
		const char *q = ++p;
		size_t n = 0, at = 0, n_at = 0;
		int quoted = 0, ok = 0;
		/* first pass: find the end and check the shape */
		for (; *q != '\0'; q++) {
			if (quoted) {
				if (*q == '\\' && q[1] != '\0')
					q++;
				else if (*q == '"') {
					quoted = 0;
					continue;
				}
				n++;
			} else if (*q == '"') {
				quoted = 1;
			} else if (*q == '>') {
				ok = 1;
				break;
			} else if (*q == '<') {
				break; /* unterminated: start again here */
			} else if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
				if (*q == '@') {
					at = n;
					n_at++;
				}
				n++;
			}
		}
		if (!ok) {
			if (*q == '\0') {
				*pp = NULL;
				return NULL;
			}
			p = q;
			continue;
		}
		/* valid: id-left "@" id-right, both non-empty */
		if (n_at == 0 || at == 0 || at == n - 1) {
			p = q + 1;
			continue;
		}
		char *id = malloc(n + 1);
		if (id == NULL) {
			*oom_r = 1;
			*pp = NULL;
			return NULL;
		}
		size_t k = 0;
		quoted = 0;
		for (const char *c = p; c < q; c++) {
			if (quoted) {
				if (*c == '\\' && c + 1 < q)
					c++;
				else if (*c == '"') {
					quoted = 0;
					continue;
				}
				id[k++] = *c;
			} else if (*c == '"') {
				quoted = 1;
			} else if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n') {
				id[k++] = *c;
			}
		}
		id[k] = '\0';
		*pp = q + 1;
		return id;
	}
}

/* ------------------------------------------------------------------- trees */

#define NONE (-1)

struct node {
	int msg;          /* index into msgs, NONE for a dummy */
	int parent, first, last, prev, next;
	char *id;         /* message ID (hashed), or NULL */
};

struct tree {
	const struct imap_thread_msg *msgs;
	size_t n_msgs;
	struct node *v;
	size_t n, cap;
	int *hash;        /* open addressing over v[].id */
	size_t hash_cap;  /* a power of two */
	size_t hash_n;
	char **subj;      /* collation key of each message's base subject */
	int *reply;
	int oom;
};

static int node_new(struct tree *t, int msg)
{
	if (t->n == t->cap) {
		size_t c = t->cap ? t->cap * 2 : 64;
		struct node *nv = realloc(t->v, c * sizeof(*nv));
		if (nv == NULL) {
			t->oom = 1;
			return NONE;
		}
		t->v = nv;
		t->cap = c;
	}
	struct node *x = &t->v[t->n];
	x->msg = msg;
	x->parent = x->first = x->last = x->prev = x->next = NONE;
	x->id = NULL;
	return (int)t->n++;
}

static int is_dummy(const struct tree *t, int x)
{
	return t->v[x].msg == NONE;
}

static void unlink_node(struct tree *t, int x)
{
	struct node *nx = &t->v[x];
	if (nx->parent == NONE)
		return;
	struct node *p = &t->v[nx->parent];
	if (nx->prev != NONE)
		t->v[nx->prev].next = nx->next;
	else
		p->first = nx->next;
	if (nx->next != NONE)
		t->v[nx->next].prev = nx->prev;
	else
		p->last = nx->prev;
	nx->parent = nx->prev = nx->next = NONE;
}

static void append_child(struct tree *t, int parent, int x)
{
	struct node *p = &t->v[parent], *nx = &t->v[x];
	nx->parent = parent;
	nx->next = NONE;
	nx->prev = p->last;
	if (p->last != NONE)
		t->v[p->last].next = x;
	else
		p->first = x;
	p->last = x;
}

/* x in place of old (same parent and position); old is unlinked. */
static void replace_node(struct tree *t, int old, int x)
{
	struct node *o = &t->v[old], *nx = &t->v[x];
	nx->parent = o->parent;
	nx->prev = o->prev;
	nx->next = o->next;
	if (o->prev != NONE)
		t->v[o->prev].next = x;
	else
		t->v[o->parent].first = x;
	if (o->next != NONE)
		t->v[o->next].prev = x;
	else
		t->v[o->parent].last = x;
	o->parent = o->prev = o->next = NONE;
}

/* Whether a is b or below b. */
static int is_within(const struct tree *t, int a, int b)
{
	if (t->v[b].first == NONE)
		return a == b; /* nothing below b: keeps long chains linear */
	for (int x = a; x != NONE; x = t->v[x].parent)
		if (x == b)
			return 1;
	return 0;
}

static size_t hash_str(const char *s)
{
	size_t h = 5381;
	for (; *s != '\0'; s++)
		h = h * 33 ^ (unsigned char)*s;
	return h;
}

static int hash_grow(struct tree *t)
{
	size_t cap = t->hash_cap ? t->hash_cap * 2 : 256;
	int *h = malloc(cap * sizeof(*h));
	if (h == NULL) {
		t->oom = 1;
		return -1;
	}
	for (size_t i = 0; i < cap; i++)
		h[i] = NONE;
	for (size_t i = 0; i < t->hash_cap; i++) {
		int x = t->hash[i];
		if (x == NONE)
			continue;
		size_t j = hash_str(t->v[x].id) & (cap - 1);
		while (h[j] != NONE)
			j = (j + 1) & (cap - 1);
		h[j] = x;
	}
	free(t->hash);
	t->hash = h;
	t->hash_cap = cap;
	return 0;
}

/* The node holding id, created as a dummy when there is none (id is taken
 * over or freed). NONE when out of memory. */
static int node_for_id(struct tree *t, char *id)
{
	if (t->hash_n * 2 >= t->hash_cap && hash_grow(t) < 0) {
		free(id);
		return NONE;
	}
	size_t j = hash_str(id) & (t->hash_cap - 1);
	for (; t->hash[j] != NONE; j = (j + 1) & (t->hash_cap - 1)) {
		if (strcmp(t->v[t->hash[j]].id, id) == 0) { /* case-sensitive (RFC 5256) */
			free(id);
			return t->hash[j];
		}
	}
	int x = node_new(t, NONE);
	if (x == NONE) {
		free(id);
		return NONE;
	}
	t->v[x].id = id;
	t->hash[j] = x;
	t->hash_n++;
	return x;
}

/* Sort key of a node: its message's sent date and number, or for a dummy
 * those of its first child (RFC 5256 REFERENCES steps 4 and 6). */
static const struct imap_thread_msg *node_key(const struct tree *t, int x)
{
	while (x != NONE && is_dummy(t, x))
		x = t->v[x].first;
	return x != NONE ? &t->msgs[t->v[x].msg] : NULL;
}

/* qsort has no context argument; sessions run on several workers */
static _Thread_local const struct tree *sort_tree;

static int cmp_nodes(const void *a, const void *b)
{
	const struct imap_thread_msg *x = node_key(sort_tree, *(const int *)a);
	const struct imap_thread_msg *y = node_key(sort_tree, *(const int *)b);
	if (x == NULL || y == NULL)
		return (x != NULL) - (y != NULL);
	if (x->sent != y->sent)
		return x->sent < y->sent ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort the children of p by sent date. */
static void sort_children(struct tree *t, int p, int *scratch)
{
	size_t k = 0;
	for (int c = t->v[p].first; c != NONE; c = t->v[c].next)
		scratch[k++] = c;
	if (k < 2)
		return;
	sort_tree = t;
	qsort(scratch, k, sizeof(*scratch), cmp_nodes);
	t->v[p].first = t->v[p].last = NONE;
	for (size_t i = 0; i < k; i++)
		append_child(t, p, scratch[i]);
}

/* Every node below root, each before its parent (reversed pre-order). */
static int *bottom_up(const struct tree *t, int root, size_t *n_r)
{
	int *order = malloc(t->n * sizeof(*order));
	int *stack = malloc(t->n * sizeof(*stack));
	if (order == NULL || stack == NULL) {
		free(order);
		free(stack);
		return NULL;
	}
	size_t n = 0, sp = 0;
	for (int c = t->v[root].first; c != NONE; c = t->v[c].next)
		stack[sp++] = c;
	while (sp > 0) {
		int x = stack[--sp];
		order[n++] = x;
		for (int c = t->v[x].first; c != NONE; c = t->v[c].next)
			stack[sp++] = c;
	}
	free(stack);
	for (size_t i = 0; i < n / 2; i++) {
		int tmp = order[i];
		order[i] = order[n - 1 - i];
		order[n - 1 - i] = tmp;
	}
	*n_r = n;
	return order;
}

/* ------------------------------------------------------------------ output */

struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t len)
{
	if (b->oom)
		return;
	if (b->n + len + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 256;
		while (b->n + len + 1 > c)
			c *= 2;
		char *np = realloc(b->p, c);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = c;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static int n_children(const struct tree *t, int x)
{
	int first = t->v[x].first;
	if (first == NONE)
		return 0;
	return t->v[first].next == NONE ? 1 : 2;
}

/* "(members)" for the thread at x (RFC 5256 4 thread-list): a chain of
 * only children is "a b c"; where it splits, each branch is its own
 * parenthesised list ("a (b c)(d)"); a dummy writes no number. Iterative:
 * stack[] holds, per open branch, the sibling to open after it. */
static void write_thread(const struct tree *t, int x, struct sbuf *b, int *stack)
{
	size_t sp = 0;
	int after_number = 0;
	char num[16];
	sb_add(b, "(", 1);
	for (;;) {
		/* down the chain from x */
		for (;;) {
			if (!is_dummy(t, x)) {
				int len = snprintf(num, sizeof(num), "%s%u", after_number ? " " : "",
						   t->msgs[t->v[x].msg].number);
				sb_add(b, num, (size_t)len);
				after_number = 1;
			}
			int k = n_children(t, x);
			if (k == 0)
				break;
			if (k == 1) {
				x = t->v[x].first;
				continue;
			}
			sb_add(b, after_number ? " (" : "(", after_number ? 2 : 1);
			after_number = 0;
			x = t->v[x].first;
			stack[sp++] = t->v[x].next;
		}
		/* close branches until one has a next sibling to open */
		int opened = 0;
		while (sp > 0 && !opened) {
			sb_add(b, ")", 1);
			int y = stack[--sp];
			if (y != NONE) {
				sb_add(b, "(", 1);
				after_number = 0;
				stack[sp++] = t->v[y].next;
				x = y;
				opened = 1;
			}
		}
		if (!opened)
			break;
	}
	sb_add(b, ")", 1);
}

/* ----------------------------------------------------------- the algorithms */

static void free_tree(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].id);
	free(t->v);
	free(t->hash);
	if (t->subj != NULL)
		for (size_t i = 0; i < t->n_msgs; i++)
			free(t->subj[i]);
	free(t->subj);
	free(t->reply);
}

static int load_subjects(struct tree *t)
{
	t->subj = calloc(t->n_msgs ? t->n_msgs : 1, sizeof(*t->subj));
	t->reply = calloc(t->n_msgs ? t->n_msgs : 1, sizeof(*t->reply));
	if (t->subj == NULL || t->reply == NULL)
		return -1;
	for (size_t i = 0; i < t->n_msgs; i++) {
		char *base = imap_base_subject(t->msgs[i].subject, &t->reply[i]);
		if (base == NULL)
			return -1;
		t->subj[i] = mime_casemap_key(base);
		free(base);
		if (t->subj[i] == NULL)
			return -1;
	}
	return 0;
}

static int cmp_ordered(const void *a, const void *b)
{
	const struct tree *t = sort_tree;
	int x = *(const int *)a, y = *(const int *)b;
	int c = strcmp(t->subj[x], t->subj[y]);
	if (c != 0)
		return c;
	const struct imap_thread_msg *mx = &t->msgs[x], *my = &t->msgs[y];
	if (mx->sent != my->sent)
		return mx->sent < my->sent ? -1 : 1;
	return mx->seq < my->seq ? -1 : mx->seq > my->seq;
}

/* ORDEREDSUBJECT: sort by base subject then sent date; each run of one
 * subject is a thread whose first message is the parent of all the
 * others; threads in the order of their first message's sent date. */
static int thread_orderedsubject(struct tree *t, int root, int *scratch)
{
	for (size_t i = 0; i < t->n_msgs; i++)
		scratch[i] = (int)i;
	sort_tree = t;
	qsort(scratch, t->n_msgs, sizeof(*scratch), cmp_ordered);
	int head = NONE;
	for (size_t i = 0; i < t->n_msgs; i++) {
		int m = scratch[i];
		int x = node_new(t, m);
		if (x == NONE)
			return -1;
		if (head != NONE && strcmp(t->subj[t->v[head].msg], t->subj[m]) == 0) {
			append_child(t, head, x);
		} else {
			append_child(t, root, x);
			head = x;
		}
	}
	sort_children(t, root, scratch);
	return 0;
}

/* The thread subject of a child of the root (step 5.B.i): its own base
 * subject, or its first child's when it is a dummy. */
static const char *thread_subject(const struct tree *t, int x)
{
	while (x != NONE && is_dummy(t, x))
		x = t->v[x].first;
	return x != NONE ? t->subj[t->v[x].msg] : "";
}

static int msg_reply(const struct tree *t, int x)
{
	return !is_dummy(t, x) && t->reply[t->v[x].msg];
}

/* The subject table (step 5): open addressing over thread subjects. */
struct subj_table {
	const char **key;
	int *node;
	size_t cap;
};

static size_t subj_slot(const struct subj_table *st, const char *key)
{
	size_t j = hash_str(key) & (st->cap - 1);
	while (st->key[j] != NULL && strcmp(st->key[j], key) != 0)
		j = (j + 1) & (st->cap - 1);
	return j;
}

static int thread_references(struct tree *t)
{
	int *scratch = NULL;
	/* (1) link messages by their references */
	for (size_t i = 0; i < t->n_msgs; i++) {
		const struct imap_thread_msg *m = &t->msgs[i];
		const char *p = m->message_id;
		int oom = 0;
		char *own = imap_next_message_id(&p, &oom);
		int c = NONE;
		if (own != NULL) {
			c = node_for_id(t, own);
			if (c == NONE)
				return -1;
			if (!is_dummy(t, c))
				c = NONE; /* a duplicate: this one gets a unique ID */
			else
				t->v[c].msg = (int)i;
		}
		if (oom)
			return -1;
		if (c == NONE && (c = node_new(t, (int)i)) == NONE)
			return -1;
		/* (1.A) References, else the first ID of In-Reply-To */
		int prev = NONE, any = 0;
		for (int pass = 0; pass < 2 && !any; pass++) {
			p = pass == 0 ? m->references : m->in_reply_to;
			char *id;
			while ((id = imap_next_message_id(&p, &oom)) != NULL) {
				int r = node_for_id(t, id);
				if (r == NONE)
					return -1;
				any = 1;
				if (prev != NONE && t->v[r].parent == NONE && !is_within(t, prev, r))
					append_child(t, prev, r);
				prev = r;
				if (pass == 1)
					break;
			}
			if (oom)
				return -1;
		}
		/* (1.B) the last reference is the parent, whatever came before */
		unlink_node(t, c);
		if (prev != NONE && !is_within(t, prev, c))
			append_child(t, prev, c);
	}
	/* (2) the parentless under a root */
	int root = node_new(t, NONE);
	if (root == NONE)
		return -1;
	for (int x = 0; x < root; x++)
		if (t->v[x].parent == NONE)
			append_child(t, root, x);
	/* sorting space: every node now, and one dummy per merge in (5) */
	scratch = malloc((2 * t->n + 1) * sizeof(*scratch));
	if (scratch == NULL)
		return -1;
	/* (3) prune dummies, bottom up */
	size_t n_order;
	int *order = bottom_up(t, root, &n_order);
	if (order == NULL) {
		free(scratch);
		return -1;
	}
	for (size_t i = 0; i < n_order; i++) {
		int x = order[i];
		if (!is_dummy(t, x))
			continue;
		int k = n_children(t, x);
		if (k == 0) {
			unlink_node(t, x);
		} else if (t->v[x].parent != root || k == 1) {
			/* promote the children into x's place */
			int parent = t->v[x].parent, after = t->v[x].prev;
			int c = t->v[x].first;
			unlink_node(t, x);
			while (c != NONE) {
				int next = t->v[c].next;
				struct node *nc = &t->v[c];
				nc->parent = parent;
				nc->prev = after;
				nc->next = after != NONE ? t->v[after].next : t->v[parent].first;
				if (nc->next != NONE)
					t->v[nc->next].prev = c;
				else
					t->v[parent].last = c;
				if (after != NONE)
					t->v[after].next = c;
				else
					t->v[parent].first = c;
				after = c;
				c = next;
			}
			t->v[x].first = t->v[x].last = NONE;
		}
	}
	free(order);
	/* (4) sort the top level by sent date (a dummy by its first child) */
	for (int x = t->v[root].first; x != NONE; x = t->v[x].next)
		if (is_dummy(t, x))
			sort_children(t, x, scratch);
	sort_children(t, root, scratch);
	/* (5) gather the threads with the same base subject */
	struct subj_table st = { 0 };
	st.cap = 16;
	while (st.cap < 2 * t->n_msgs + 2)
		st.cap *= 2;
	st.key = calloc(st.cap, sizeof(*st.key));
	st.node = malloc(st.cap * sizeof(*st.node));
	if (st.key == NULL || st.node == NULL) {
		free(st.key);
		free(st.node);
		free(scratch);
		return -1;
	}
	for (int x = t->v[root].first; x != NONE; x = t->v[x].next) {
		const char *ts = thread_subject(t, x);
		if (*ts == '\0')
			continue;
		size_t j = subj_slot(&st, ts);
		if (st.key[j] == NULL) {
			st.key[j] = ts;
			st.node[j] = x;
		} else if (!is_dummy(t, st.node[j]) &&
			   (is_dummy(t, x) || (msg_reply(t, st.node[j]) && !msg_reply(t, x)))) {
			st.node[j] = x;
		}
	}
	int ret = 0;
	for (int x = t->v[root].first, next; x != NONE; x = next) {
		next = t->v[x].next;
		const char *ts = thread_subject(t, x);
		if (*ts == '\0')
			continue;
		size_t j = subj_slot(&st, ts);
		int y = st.node[j];
		if (y == x)
			continue;
		if (is_dummy(t, x) && is_dummy(t, y)) {
			for (int c = t->v[x].first, cn; c != NONE; c = cn) {
				cn = t->v[c].next;
				unlink_node(t, c);
				append_child(t, y, c);
			}
			unlink_node(t, x);
		} else if (is_dummy(t, y) || (msg_reply(t, x) && !msg_reply(t, y))) {
			unlink_node(t, x);
			append_child(t, y, x);
		} else {
			int d = node_new(t, NONE);
			if (d == NONE) {
				ret = -1;
				break;
			}
			int y_was_next = next == y;
			replace_node(t, y, d);
			unlink_node(t, x);
			append_child(t, d, y);
			append_child(t, d, x);
			st.node[j] = d;
			if (y_was_next)
				next = d; /* visited and skipped: it is in the table */
		}
	}
	free(st.key);
	free(st.node);
	/* (6) sort every set of siblings, the deepest first */
	order = ret < 0 ? NULL : bottom_up(t, root, &n_order);
	if (order == NULL) {
		free(scratch);
		return -1;
	}
	for (size_t i = 0; i < n_order; i++)
		sort_children(t, order[i], scratch);
	free(order);
	sort_children(t, root, scratch);
	free(scratch);
	return root;
}

char *imap_thread(enum imap_thread_alg alg, const struct imap_thread_msg *msgs, size_t n)
{
	struct tree t = { .msgs = msgs, .n_msgs = n };
	struct sbuf b = { 0 };
	int *scratch = NULL;
	sb_add(&b, "", 0);
	if (load_subjects(&t) < 0)
		goto fail;
	int root;
	if (alg == IMAP_THREAD_ORDEREDSUBJECT) {
		root = node_new(&t, NONE);
		scratch = malloc((n + 1) * sizeof(*scratch));
		if (root == NONE || scratch == NULL || thread_orderedsubject(&t, root, scratch) < 0)
			goto fail;
	} else {
		root = thread_references(&t);
		if (root < 0)
			goto fail;
	}
	free(scratch);
	scratch = malloc((t.n + 1) * sizeof(*scratch)); /* write_thread's stack */
	if (scratch == NULL)
		goto fail;
	for (int x = t.v[root].first; x != NONE; x = t.v[x].next)
		write_thread(&t, x, &b, scratch);
	if (b.oom || t.oom)
		goto fail;
	free(scratch);
	free_tree(&t);
	return b.p;
fail:
	free(scratch);
	free_tree(&t);
	free(b.p);
	return NULL;
}
