/* petrel serve, petrel check */
#include "cli/cli.h"

#include "auth/auth.h"
#include "core/config.h"
#include "imap/imap.h"
#include "core/log.h"
#include "mime/mime.h"
#include "net/net.h"
#include "pop3/pop3.h"
#include "smtp/smtp.h"
#include "store/store.h"
#include "tls/tls.h"

#include <errno.h>
#include <grp.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Seconds SIGTERM leaves in-flight transactions to finish (exit within 10). */
#define SHUTDOWN_GRACE 8

/* glibc gives free memory at the top of a thread's heap back to the kernel
 * (madvise) once more than its trim threshold is free, and that flushes the
 * TLB of every core. Left dynamic, the threshold stays low enough that the
 * committer did so after most batches (SQLite frees its savepoint state):
 * ~5 % of the server's CPU in the IMAP benchmark, on the thread every write
 * waits for. Keep up to TRIM_THRESHOLD free per heap, and serve blocks up
 * to MMAP_THRESHOLD (deliveries hold up to 128 KiB) from the heaps rather
 * than from mappings of their own, whose unmapping flushes as well. */
#define TRIM_THRESHOLD (8 * 1024 * 1024)
#define MMAP_THRESHOLD (1024 * 1024)

int cli_check(struct config *config, int argc, char **argv)
{
	(void)argv;
	if (argc != 0) {
		cli_error("usage: petrel -c FILE check");
		return EX_USAGE;
	}
	char *err;
	if (config_validate(config, &err) < 0) {
		cli_error("%s", err);
		free(err);
		return EX_CONFIG;
	}
	if (config->tls_cert != NULL && config->tls_key != NULL) {
		tls_server_t *tls;
		const char *terr;
		if (tls_server_new(config->tls_cert, config->tls_key, &tls, &terr) < 0) {
			cli_error("%s: [tls]: %s", config->path, terr);
			return EX_CONFIG;
		}
		tls_server_free(tls);
	}
	printf("%s: configuration OK\n", config->path);
	return EX_OK;
}

static int drop_privileges(const struct config *config)
{
	if (geteuid() != 0 || config->user == NULL)
		return 0;
	struct passwd *pw = getpwnam(config->user);
	if (pw == NULL) {
		cli_error("%s: [server] user: no such user '%s'", config->path, config->user);
		return -1;
	}
	/* The data directory belongs to the unprivileged user. */
	if (mkdir(config->data_dir, 0700) == 0 || errno == EEXIST) {
		if (chown(config->data_dir, pw->pw_uid, pw->pw_gid) < 0)
			cli_error("warning: cannot chown %s: %s", config->data_dir, strerror(errno));
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		cli_error("cannot drop privileges to %s: %s", config->user, strerror(errno));
		return -1;
	}
	return 0;
}

static void on_hup(void *arg)
{
	tls_server_t *tls = arg;
	const char *err;
	if (tls == NULL)
		return;
	if (tls_server_reload(tls, &err) < 0)
		log_error("tls", 0, "event=reload-failed error=\"%s\" keeping=old", err);
	else
		log_info("tls", 0, "event=reloaded");
}

int cli_serve(struct config *config, int argc, char **argv)
{
	(void)argv;
	if (argc != 0) {
		cli_error("usage: petrel -c FILE serve");
		return EX_USAGE;
	}
	net_block_signals();
#ifdef __GLIBC__
	(void)mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
	(void)mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
#endif
	char *err;
	if (config_validate(config, &err) < 0) {
		cli_error("%s", err);
		free(err);
		return EX_CONFIG;
	}
	if (config->n_listens == 0) {
		cli_error("%s: [listen]: no listeners configured; add e.g. smtp = 127.0.0.1:2525",
			  config->path);
		return EX_CONFIG;
	}
	if (config->log_level != NULL) {
		static const char *const names[] = { "debug", "info", "warn", "error" };
		for (int i = 0; i < 4; i++)
			if (strcmp(config->log_level, names[i]) == 0)
				log_set_level((enum log_level)i);
	}
	mime_init();

	tls_server_t *tls = NULL;
	const char *terr;
	if (config->tls_cert != NULL &&
	    tls_server_new(config->tls_cert, config->tls_key, &tls, &terr) < 0) {
		cli_error("%s: [tls]: %s", config->path, terr);
		return EX_CONFIG;
	}

	struct smtp_server smtp = { .config = config };
	struct imap_server imap = { .config = config };
	struct pop3_server pop3 = { .config = config };
	net_server_t *srv = net_server_new(config->workers, config->limits.max_connections,
					   config->limits.output_high, tls);
	for (size_t i = 0; i < config->n_listens; i++) {
		const struct listen_addr *la = &config->listens[i];
		const struct net_proto_ops *ops = NULL;
		void *ctx = NULL;
		switch (la->proto) {
		case PROTO_SMTP:
			ops = &smtp_proto_ops;
			ctx = &smtp;
			break;
		case PROTO_IMAP:
		case PROTO_IMAPS:
			ops = &imap_proto_ops;
			ctx = &imap;
			break;
		case PROTO_POP3:
		case PROTO_POP3S:
			ops = &pop3_proto_ops;
			ctx = &pop3;
			break;
		default:
			break; /* config_validate refused it */
		}
		const char *lerr;
		if (ops == NULL || net_server_listen(srv, la->host, la->port,
						     config_proto_implicit_tls(la->proto), ops, ctx,
						     &lerr) < 0) {
			cli_error("%s:%d: [listen] %s: %s", config->path, la->config_line,
				  config_proto_name(la->proto), ops == NULL ? "not implemented" : lerr);
			net_server_free(srv);
			tls_server_free(tls);
			return EX_OSERR;
		}
	}
	if (drop_privileges(config) < 0) {
		net_server_free(srv);
		tls_server_free(tls);
		return EX_NOPERM;
	}
	store_t *store = cli_open_store(config);
	if (store == NULL) {
		net_server_free(srv);
		tls_server_free(tls);
		return EX_CANTCREAT;
	}
	const char *serr;
	store_set_fsync_optimized(store, config->fsync_optimized);
	if (store_start_committer(store, &serr) < 0) {
		cli_error("cannot start the store committer: %s", serr);
		store_close(store);
		net_server_free(srv);
		tls_server_free(tls);
		return EX_OSERR;
	}
	smtp.store = store;
	imap.store = store;
	pop3.store = store;
	auth_pool_t *auth = auth_pool_new(store, 2, config->auth_cache_ttl,
					  config->auth_cache_size);
	imap.auth = auth;
	pop3.auth = auth;
	log_info("server", 0, "event=started hostname=%s data_dir=%s pid=%d", config->hostname,
		 config->data_dir, (int)getpid());
	int left = net_server_run(srv, SHUTDOWN_GRACE, on_hup, tls);
	if (left != 0) {
		/* Sessions outlived the grace period. Nothing they hold was
		 * acknowledged, and the store is crash-safe: leave now, as a
		 * crash would, rather than close the store under them. */
		log_warn("server", 0, "event=exit forced=yes");
		_exit(EX_OK);
	}
	auth_pool_free(auth);
	/* Every delivery handed to the committer is finished before exit. */
	store_close(store);
	net_server_free(srv);
	tls_server_free(tls);
	log_info("server", 0, "event=exit");
	return EX_OK;
}
