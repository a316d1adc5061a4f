/*
 * imap_search.h - the SEARCH program (RFC 3501 6.4.4 search keys) for the
 * commands built on it: SEARCH itself (imap_cmd_search.c), SORT and THREAD
 * (RFC 5256, imap_cmd_sort.c). Private to src/imap/.
 */
#ifndef PETREL_IMAP_SEARCH_H
#define PETREL_IMAP_SEARCH_H

#include "imap/imap_session.h"

#include <stddef.h>
#include <stdint.h>

/* A parsed search program. */
struct imap_search;

/* What the whole program uses, for the response and the 7.4.1 rules. */
struct imap_search_info {
	int modseq;  /* a MODSEQ key: the result carries (MODSEQ n) (RFC 7162) */
	int seqnums; /* message numbers in a key: no EXPUNGE/VANISHED now */
};

/* One matching message, with the metadata its caller may sort on. */
struct imap_search_hit {
	uint32_t uid;
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
	int64_t blob_id;
};

/* Parse the search keys args[0..n) (ANDed; "$" is the SEARCHRES result)
 * against the selected mailbox view. 0 and *prog_r (free with
 * imap_search_free), or -1 with a static reason in *error_r (reply BAD). */
int imap_search_parse(struct imap_session *s, const struct imap_arg *args, size_t n,
		      struct imap_search **prog_r, struct imap_search_info *info_r,
		      const char **error_r);

/* Evaluate the program over the messages of the session's view. 0 and the
 * matches in UID order (that is, message number order) in a malloc'd
 * *hits_r (NULL when none), or -1 when the store failed or memory ran out
 * (logged; reply NO [SERVERBUG]). */
int imap_search_run(struct imap_session *s, struct imap_search *prog,
		    struct imap_search_hit **hits_r, size_t *n_r);

/* NULL is allowed. */
void imap_search_free(struct imap_search *prog);

#endif
