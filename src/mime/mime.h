/*
 * mime.h - process-wide set-up of the MIME layer (GMime).
 * Parsing itself: mime_parse.h; attaching results to a delivery: mime_store.h.
 */
#ifndef PETREL_MIME_H
#define PETREL_MIME_H

/* Call once at start-up, before any thread uses mime_*. */
void mime_init(void);

#endif
