/*
 * imap_fetch.h - what the session needs from FETCH (imap_cmd_fetch.c).
 */
#ifndef PETREL_IMAP_FETCH_H
#define PETREL_IMAP_FETCH_H

struct imap_session;

/* The connection is gone while a long FETCH response was suspended
 * (s->cont set): free its state. Call from imap_closed before freeing the
 * session; harmless when no FETCH is in progress. */
void imap_fetch_abort(struct imap_session *s);

#endif
