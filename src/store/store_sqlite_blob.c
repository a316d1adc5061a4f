/*
 * store_sqlite_blob.c - reading message content (store_mail.h): by offset
 * (store_blob_read) and whole messages in order (store_blob_reader_*).
 *
 * A blob is one row of blobs: its octets in data (inline, at most
 * STORE_INLINE_MAX) or in the file named by path. Either way one statement
 * finds it: one read transaction, no incremental-blob handle (opening one
 * compiles a statement every time).
 */
#include "store/store_sqlite_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A reader keeps a buffer of up to this size between messages; a bigger
 * one (a large inline message) is given back when the message is done. */
#define READER_KEEP (128u * 1024u)

static int pread_all(int fd, void *buf, size_t len, uint64_t offset, size_t *got_r)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, (char *)buf + got, len - got, (off_t)(offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*got_r = got;
	return 0;
}

/* Step stmt (STMT_BLOB_CONTENT, bound) to its row: 0 with the size, -1
 * with *error_r (no such blob, database error). */
static int content_row(struct store_conn *conn, sqlite3_stmt *stmt, uint64_t *size_r,
		       const char **error_r)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW) {
		*size_r = (uint64_t)sqlite3_column_int64(stmt, 0);
		return 0;
	}
	*error_r = rc == SQLITE_DONE ? "no such message content" :
				       store_db_error(conn, "database error");
	return -1;
}

/* Inline content of the row: at least size octets, or -1. A zero-length
 * blob has no pointer: *data_r is then NULL (with size 0). */
static int inline_data(sqlite3_stmt *stmt, uint64_t size, const unsigned char **data_r,
		       const char **error_r)
{
	const unsigned char *data = sqlite3_column_blob(stmt, 2);

	if ((uint64_t)sqlite3_column_bytes(stmt, 2) < size || (data == NULL && size > 0)) {
		*error_r = "stored content is shorter than recorded";
		return -1;
	}
	*data_r = data;
	return 0;
}

/* Open the content file of the row (O_RDONLY); -1 with *error_r. */
static int open_file(store_t *store, sqlite3_stmt *stmt, const char **error_r)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", store->data_dir,
		 (const char *)sqlite3_column_text(stmt, 1));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		*error_r = store_errorf("open %s: %s", path, strerror(errno));
	return fd;
}

int store_blob_read(store_t *store, int64_t blob_id, uint64_t offset, void *buf, size_t len,
		    size_t *got_r, const char **error_r)
{
	const unsigned char *data;
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	uint64_t size = 0;
	size_t n = 0;
	int fd = -1, ret;

	*got_r = 0;
	if ((conn = store_conn_get(store, error_r)) == NULL ||
	    (stmt = stmt_get(conn, STMT_BLOB_CONTENT, error_r)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, blob_id);
	/* While the statement holds its row, its snapshot keeps the blob
	 * row; a file opened now stays readable even if it is unlinked. */
	ret = content_row(conn, stmt, &size, error_r);
	if (ret == 0) {
		n = offset >= size ? 0 : (size - offset < len ? (size_t)(size - offset) : len);
		if (n == 0) {
			/* At or past the end: nothing to read. */
		} else if (sqlite3_column_type(stmt, 1) == SQLITE_NULL) {
			if ((ret = inline_data(stmt, size, &data, error_r)) == 0)
				memcpy(buf, data + offset, n);
		} else if ((fd = open_file(store, stmt, error_r)) < 0) {
			ret = -1;
		}
	}
	stmt_put(conn, STMT_BLOB_CONTENT, stmt);
	if (fd >= 0) {
		size_t got = 0;

		if (pread_all(fd, buf, n, offset, &got) < 0) {
			*error_r = store_errorf("reading message content: %s", strerror(errno));
			ret = -1;
		} else if (got != n) {
			*error_r = "stored message file is shorter than recorded";
			ret = -1;
		}
		close(fd);
	}
	if (ret == 0)
		*got_r = n;
	return ret;
}

/* ---- whole messages in order ---- */

/* At most this many blobs read ahead at once. */
#define AHEAD_SLOTS 64

struct ahead_slot {
	int64_t blob_id;
	size_t off;         /* in buf */
	uint64_t size;
};

struct store_blob_reader {
	store_t *store;
	int fd;             /* content file, -1 when inline or none open */
	uint64_t size, pos;
	size_t off;         /* inline: where the current content starts in buf */
	char *buf;          /* inline: the current content and what was read
			     * ahead; file: the last pread */
	size_t cap;
	/* Inline content read ahead (in buf, after the current content).
	 * ahead_end: octets of buf they use (0: nothing read ahead). */
	struct ahead_slot ahead[AHEAD_SLOTS];
	size_t n_ahead, ahead_end;
};

store_blob_reader_t *store_blob_reader_new(store_t *store)
{
	store_blob_reader_t *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->store = store;
	r->fd = -1;
	return r;
}

void store_blob_reader_forget(store_blob_reader_t *r)
{
	if (r == NULL)
		return;
	r->n_ahead = 0;
	r->ahead_end = 0;
	if (r->fd < 0 && r->size == 0 && r->cap > READER_KEEP) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
}

void store_blob_reader_close(store_blob_reader_t *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->size = r->pos = 0;
	r->off = 0;
	/* A big buffer is given back, unless it still holds what was read
	 * ahead (bounded by the caller). */
	if (r->cap > READER_KEEP && r->n_ahead == 0) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
}

void store_blob_reader_free(store_blob_reader_t *r)
{
	if (r == NULL)
		return;
	store_blob_reader_close(r);
	free(r->buf);
	free(r);
}

/* Room for len octets in buf; keep: the first keep octets are preserved. */
static int reserve(store_blob_reader_t *r, size_t len, size_t keep, const char **error_r)
{
	char *n;

	if (len <= r->cap)
		return 0;
	if (keep == 0) {
		/* Nothing in the buffer needs keeping: free, then allocate. */
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
		n = malloc(len);
	} else {
		/* Growing while reading ahead: by doubling, not per message. */
		if (len < 2 * r->cap)
			len = 2 * r->cap;
		n = realloc(r->buf, len);
	}
	if (n == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	r->buf = n;
	r->cap = len;
	return 0;
}

/* Copy out the content of the blob stmt stepped to (inline) at buf+at, or
 * open its file. 0, or -1 with *error_r. */
static int take_row(store_blob_reader_t *r, struct store_conn *conn, sqlite3_stmt *stmt,
		    size_t at, uint64_t *size_r, int *inline_r, const char **error_r)
{
	const unsigned char *data;
	uint64_t size = 0;

	if (content_row(conn, stmt, &size, error_r) < 0)
		return -1;
	*size_r = size;
	*inline_r = sqlite3_column_type(stmt, 1) == SQLITE_NULL;
	if (*inline_r) {
		/* Inline (at most STORE_INLINE_MAX): copied out whole, so that
		 * no transaction stays open while the client reads. */
		if (inline_data(stmt, size, &data, error_r) < 0 ||
		    reserve(r, at + (size_t)size, at, error_r) < 0)
			return -1;
		if (size > 0)
			memcpy(r->buf + at, data, (size_t)size);
		return 0;
	}
	/* Opened while the row is visible: the file stays readable even if
	 * the message is expunged and the file unlinked. */
	return (r->fd = open_file(r->store, stmt, error_r)) < 0 ? -1 : 0;
}

/* After the current content: the inline blobs of next[] while they fit
 * in max octets, in the read transaction the caller holds. A blob that is
 * missing, in a file or too big ends the run (it is read when opened). */
static void read_ahead(store_blob_reader_t *r, struct store_conn *conn, size_t at,
		       const int64_t *next, size_t n_next, size_t max)
{
	const char *err;
	size_t end = at;

	for (size_t i = 0; i < n_next && r->n_ahead < AHEAD_SLOTS; i++) {
		sqlite3_stmt *stmt = stmt_get(conn, STMT_BLOB_CONTENT, &err);
		uint64_t size = 0;
		int ok = 0;

		if (stmt == NULL)
			break;
		sqlite3_bind_int64(stmt, 1, next[i]);
		if (sqlite3_step(stmt) == SQLITE_ROW &&
		    sqlite3_column_type(stmt, 1) == SQLITE_NULL) {
			const unsigned char *data;

			size = (uint64_t)sqlite3_column_int64(stmt, 0);
			ok = size <= max - (end - at) && inline_data(stmt, size, &data, &err) == 0 &&
			     reserve(r, end + (size_t)size, end, &err) == 0;
			if (ok && size > 0)
				memcpy(r->buf + end, data, (size_t)size);
		}
		stmt_put(conn, STMT_BLOB_CONTENT, stmt);
		if (!ok)
			break;
		r->ahead[r->n_ahead++] = (struct ahead_slot){ next[i], end, size };
		end += (size_t)size;
	}
	r->ahead_end = r->n_ahead > 0 ? end : 0;
}

int store_blob_reader_open_ahead(store_blob_reader_t *r, int64_t blob_id, const int64_t *next,
				 size_t n_next, size_t max, uint64_t *size_r,
				 const char **error_r)
{
	struct store_conn *conn;
	sqlite3_stmt *stmt;
	uint64_t size = 0;
	int ret, is_inline = 0, snapshot;

	store_blob_reader_close(r);
	for (size_t i = 0; i < r->n_ahead; i++) {
		if (r->ahead[i].blob_id == blob_id) {
			r->off = r->ahead[i].off;
			r->size = *size_r = r->ahead[i].size;
			return 1;
		}
	}
	store_blob_reader_forget(r);
	if ((conn = store_conn_get(r->store, error_r)) == NULL)
		return -1;
	/* One transaction for this blob and those read ahead. */
	snapshot = n_next > 0 && max > 0 && store_read_begin(r->store, error_r) == 0;
	if ((stmt = stmt_get(conn, STMT_BLOB_CONTENT, error_r)) == NULL) {
		if (snapshot)
			store_read_end(r->store);
		return -1;
	}
	sqlite3_bind_int64(stmt, 1, blob_id);
	ret = take_row(r, conn, stmt, 0, &size, &is_inline, error_r);
	stmt_put(conn, STMT_BLOB_CONTENT, stmt);
	if (ret == 0 && snapshot)
		read_ahead(r, conn, is_inline ? (size_t)size : 0, next, n_next, max);
	if (snapshot)
		store_read_end(r->store);
	if (ret < 0) {
		store_blob_reader_close(r);
		return -1;
	}
	r->size = size;
	*size_r = size;
	return 0;
}

int store_blob_reader_open(store_blob_reader_t *r, int64_t blob_id, uint64_t *size_r,
			   const char **error_r)
{
	return store_blob_reader_open_ahead(r, blob_id, NULL, 0, 0, size_r, error_r) < 0 ? -1 : 0;
}

int store_blob_reader_next(store_blob_reader_t *r, size_t max, const void **data_r,
			   size_t *len_r, const char **error_r)
{
	uint64_t left = r->size - r->pos;
	size_t n = left < max ? (size_t)left : max;

	*data_r = r->buf;
	*len_r = 0;
	if (n == 0)
		return 0;
	if (r->fd < 0) {
		*data_r = r->buf + r->off + r->pos;
	} else {
		size_t got = 0;

		/* A content file: what was read ahead stays after the chunk. */
		if (r->ahead_end > 0) {
			if (reserve(r, r->ahead_end + n, r->ahead_end, error_r) < 0)
				return -1;
			r->off = r->ahead_end;
		} else if (reserve(r, n, 0, error_r) < 0) {
			return -1;
		}
		if (pread_all(r->fd, r->buf + r->off, n, r->pos, &got) < 0) {
			*error_r = store_errorf("reading message content: %s", strerror(errno));
			return -1;
		}
		if (got != n) {
			*error_r = "stored message file is shorter than recorded";
			return -1;
		}
		*data_r = r->buf + r->off;
	}
	r->pos += n;
	*len_r = n;
	return 0;
}
