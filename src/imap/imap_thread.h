/*
 * imap_thread.h - the data side of SORT and THREAD (RFC 5256): base
 * subjects, the first mailbox of an address list, message IDs and the two
 * threading algorithms. Pure functions over strings (the values the store
 * cached at delivery); nothing here touches a session or the store.
 * Private to src/imap/.
 */
#ifndef PETREL_IMAP_THREAD_H
#define PETREL_IMAP_THREAD_H

#include <stddef.h>
#include <stdint.h>

/* The base subject (RFC 5256 2.1, steps 2-6) of a subject already decoded
 * from RFC 2047 (step 1's decoding; the whitespace part of step 1 is done
 * here: tabs, CR and LF become spaces, runs of spaces one space).
 * *reply_r (when not NULL) tells whether extraction removed a subj-refwd, a
 * "(fwd)" trailer or a subj-fwd-hdr and subj-fwd-trl: the message is then a
 * reply or forward for THREAD=REFERENCES. malloc'd; NULL when out of
 * memory. */
char *imap_base_subject(const char *subject, int *reply_r);

/* The addr-mailbox (local part, unquoted) of the first address of a
 * decoded address list as the store keeps it (`Name <a@b>, c@d`, groups as
 * `Group: a@b, c@d;`); "" when the list has no address. A value that
 * holds no address at all is returned whole. malloc'd; NULL when out of
 * memory. */
char *imap_first_mailbox(const char *list);

/* The first valid message ID ("<left@right>", normalised: quoting,
 * escapes and white space removed, RFC 5256 REFERENCES note) at or after
 * *pp, which is advanced past it. malloc'd "left@right" without the angle
 * brackets; NULL when there is none (*oom_r set when out of memory). */
char *imap_next_message_id(const char **pp, int *oom_r);

struct imap_thread_msg {
	uint32_t number;        /* what the response shows: message number or UID */
	uint32_t seq;           /* message number: the tie-breaker (RFC 5256 2.2) */
	int64_t sent;           /* sent date (2.2): Date: in UTC, else INTERNALDATE */
	const char *subject;    /* decoded Subject ("" or NULL when absent) */
	const char *message_id; /* raw header values, NULL when absent */
	const char *in_reply_to;
	const char *references;
};

enum imap_thread_alg {
	IMAP_THREAD_ORDEREDSUBJECT,
	IMAP_THREAD_REFERENCES,
};

/* Thread msgs[0..n) (the searched messages, in message number order) and
 * return the thread-list data of the THREAD response (RFC 5256 4), e.g.
 * "(2)(3 6 (4 23)(44 7 96))", "" when n is 0. Subjects collate with
 * i;unicode-casemap. malloc'd; NULL when out of memory. */
char *imap_thread(enum imap_thread_alg alg, const struct imap_thread_msg *msgs, size_t n);

#endif
