/*
 * net.h - listeners, worker threads and connections.
 *
 * The main thread accepts; each connection is handed to one worker thread
 * (round robin) and lives there for its whole life. Each worker runs one
 * libevent loop; there is no thread or process per connection. Protocol code
 * sees net_conn_t and the functions below, never libevent or OpenSSL types.
 *
 * Flow control: input is read up to a bounded buffer; a protocol is asked to
 * process input only while its output is below the high watermark, and is
 * asked again when the output has drained to half of it.
 */
#ifndef PETREL_NET_H
#define PETREL_NET_H

#include <stddef.h>
#include <stdint.h>

typedef struct net_server net_server_t;
typedef struct net_worker net_worker_t;
typedef struct net_conn net_conn_t;
typedef struct tls_server tls_server_t;

/* What a protocol provides. Every callback runs on the connection's worker. */
struct net_proto_ops {
	const char *name;
	/* Sent (plaintext listeners only) to a connection refused because the
	 * server is full, e.g. "421 4.7.0 Too many connections\r\n". */
	const char *busy_reply;
	/* New connection: return the session (NULL refuses: closed at once). */
	void *(*open)(net_conn_t *conn, void *proto_ctx);
	/* Input is buffered (or processing may continue after a pause). */
	void (*input)(void *session);
	/* No input for the timeout set with net_conn_set_timeout. */
	void (*timeout)(void *session);
	/* The server is stopping: finish what is in flight, then close. */
	void (*shutdown)(void *session);
	/* Optional: output drained below the low watermark (continue a long
	 * response such as a big FETCH). */
	void (*writable)(void *session);
	/* The connection is gone; the session must not touch conn any more.
	 * It frees itself now or, if work is pending elsewhere, when that ends. */
	void (*closed)(void *session);
};

/* Hold SIGTERM/SIGINT/SIGHUP until net_server_run installs its handlers
 * (call first thing in serve: threads started later inherit the mask). */
void net_block_signals(void);

net_server_t *net_server_new(unsigned workers, unsigned max_connections, size_t output_high,
			     tls_server_t *tls);
/* Bind a listener. port "0" picks a free port; the log line event=listen
 * shows which. */
int net_server_listen(net_server_t *srv, const char *host, const char *port, int implicit_tls,
		      const struct net_proto_ops *ops, void *proto_ctx, const char **error_r);
/* Run until SIGTERM/SIGINT: then stop accepting, ask every session to finish
 * (ops->shutdown), and return once all are closed or `grace` seconds passed.
 * SIGHUP calls on_hup. */
int net_server_run(net_server_t *srv, unsigned grace, void (*on_hup)(void *arg), void *arg);
void net_server_free(net_server_t *srv);

/* ---- connection: identity ---- */
uint64_t net_conn_id(const net_conn_t *conn);
const char *net_conn_peer(const net_conn_t *conn);      /* "addr:port" */
const char *net_conn_peer_ip(const net_conn_t *conn);   /* "addr" */
int net_conn_is_loopback(const net_conn_t *conn);
int net_conn_is_tls(const net_conn_t *conn);
/* TLS protocol and cipher, "" without TLS. */
void net_conn_tls_describe(net_conn_t *conn, char *buf, size_t bufsz);
net_worker_t *net_conn_worker(net_conn_t *conn);

/* ---- connection: input ---- */
/* Next line ending in LF (CR LF or bare LF; the ending is stripped, the line
 * is NUL-terminated and valid until the next input call).
 *  1: a line; 0: need more input; -1: the line exceeded max octets (counting
 *  its ending) and was discarded through its end. */
int net_conn_readline(net_conn_t *conn, size_t max, char **line_r, size_t *len_r);
/* Buffered input, in place: a pointer to the first contiguous run. */
size_t net_conn_peek(net_conn_t *conn, const char **data_r);
size_t net_conn_input_len(net_conn_t *conn);
void net_conn_consume(net_conn_t *conn, size_t len);
/* Whether output is below the high watermark (keep processing commands). */
int net_conn_can_process(net_conn_t *conn);

/* ---- connection: output ---- */
void net_conn_write(net_conn_t *conn, const void *data, size_t len);
void net_conn_printf(net_conn_t *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write in place: room for up to len octets at the end of the output, to
 * be filled and then committed (the first used octets) with
 * net_conn_write_commit before anything else is written. NULL when there
 * is none (a compressed connection, out of memory): use net_conn_write. */
void *net_conn_write_reserve(net_conn_t *conn, size_t len);
void net_conn_write_commit(net_conn_t *conn, size_t used);
size_t net_conn_output_len(net_conn_t *conn);

/* ---- connection: control ---- */
/* Seconds without input before ops->timeout; 0 disables. */
void net_conn_set_timeout(net_conn_t *conn, unsigned seconds);
/* Stop delivering input until net_conn_resume (which re-runs ops->input). */
void net_conn_pause(net_conn_t *conn);
void net_conn_resume(net_conn_t *conn);
/* Flush output, then close; ops->closed follows. */
void net_conn_close(net_conn_t *conn);
/* Start TLS once the output written so far is flushed. Input buffered now
 * (plaintext pipelined after the STARTTLS command) is discarded. 0 ok, -1
 * when TLS is not configured or already active. */
int net_conn_starttls(net_conn_t *conn);
int net_conn_tls_available(net_conn_t *conn);
/* Compress the connection both ways with raw DEFLATE (RFC 1951, zlib
 * windowBits -15; IMAP COMPRESS, RFC 4978), between the protocol and the
 * socket or TLS. Output written before the call goes out as it is; every
 * octet written after it is compressed, and flushed (Z_SYNC_FLUSH) at the end
 * of each batch of writes. Input still buffered (pipelined after the command
 * that asked for it) and all later input is inflated, never beyond the input
 * bound. Corrupt compressed input closes the connection. 0 ok, -1 when already
 * compressed, closing, or out of memory. */
int net_conn_compress(net_conn_t *conn);
int net_conn_is_compressed(const net_conn_t *conn);

/* Run fn(arg) on the connection's worker after ms milliseconds (failed-login
 * delays). One timer per connection: a new call replaces the pending one.
 * Cancelled when the connection closes. Worker thread only. */
void net_conn_after(net_conn_t *conn, unsigned ms, void (*fn)(void *arg), void *arg);

/* Run fn(arg) on the worker's thread soon; callable from any thread. */
void net_worker_post(net_worker_t *worker, void (*fn)(void *arg), void *arg);

/* ---- session handles ---- */
/* What another thread (auth pool, committer, store watcher) holds to answer
 * a session: the session may close before the answer comes, so the handle
 * outlives it and then says so. Reference counted; freed when the last
 * reference goes. */
typedef struct net_handle net_handle_t;

/* A handle on session, answered on worker, holding the session's own
 * reference. NULL when out of memory. Worker thread. */
net_handle_t *net_handle_new(net_worker_t *worker, void *session);
/* Take a reference (for a callback from another thread); returns h. */
net_handle_t *net_handle_ref(net_handle_t *h);
/* Drop a reference and set *hp = NULL. Any thread. */
void net_handle_unref(net_handle_t **hp);
/* The session is closing: posts from now on get a NULL session; drops the
 * session's own reference (*hp = NULL). Worker thread. */
void net_handle_detach(net_handle_t **hp);
/* Run fn(session, arg) on the handle's worker, with session NULL if it has
 * closed meanwhile (fn still runs, to free arg). The caller's reference
 * passes to the post. Any thread. */
void net_handle_post(net_handle_t *h, void (*fn)(void *session, void *arg), void *arg);

/* Number of open connections, whole server (for tests and logs). */
unsigned net_server_connections(net_server_t *srv);

#endif
