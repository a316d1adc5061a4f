/* petrel domain|user|mail: administration on the store. */
#include "cli/cli.h"

#include "auth/password.h"
#include "auth/scram.h"
#include "core/config.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int valid_domain(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.')
		return 0;
	for (const unsigned char *p = (const unsigned char *)d; *p != '\0'; p++)
		if (!(*p == '.' || *p == '-' || (*p >= '0' && *p <= '9') ||
		      ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || *p >= 0x80))
			return 0;
	return strstr(d, "..") == NULL;
}

static int valid_address(const char *a)
{
	const char *at = strrchr(a, '@');
	if (at == NULL || at == a || strlen(a) > 320)
		return 0;
	for (const unsigned char *p = (const unsigned char *)a; p < (const unsigned char *)at; p++)
		if (*p <= ' ' || *p == 127 || *p == '<' || *p == '>' || *p == '"' || *p == '\\')
			return 0;
	return valid_domain(at + 1);
}

static void print_line(void *ctx, const char *s)
{
	(void)ctx;
	printf("%s\n", s);
}

/* ---------------------------------------------------------------- domain */

int cli_domain(struct config *config, int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	int list = strcmp(sub, "list") == 0;
	if (!(list && argc == 1) &&
	    !((strcmp(sub, "add") == 0 || strcmp(sub, "del") == 0) && argc == 2)) {
		cli_error("usage: petrel domain add|del DOMAIN | petrel domain list");
		return EX_USAGE;
	}
	if (!list && !valid_domain(argv[1])) {
		cli_error("'%s' is not a domain name", argv[1]);
		return EX_DATAERR;
	}
	store_t *store = cli_open_store(config);
	if (store == NULL)
		return EX_UNAVAILABLE;
	const char *err = NULL;
	int rc = EX_OK;
	if (list) {
		if (store_domain_list(store, print_line, NULL, &err) < 0)
			rc = EX_SOFTWARE;
	} else {
		int add = strcmp(sub, "add") == 0;
		int exists = store_domain_exists(store, argv[1], &err);
		if (exists < 0) {
			rc = EX_SOFTWARE;
		} else if (add && exists) {
			cli_error("domain %s already exists", argv[1]);
			rc = EX_DATAERR;
		} else if (!add && !exists) {
			cli_error("no domain %s (see: petrel domain list)", argv[1]);
			rc = EX_DATAERR;
		} else if (add ? store_domain_add(store, argv[1], &err) < 0
			       : store_domain_del(store, argv[1], &err) < 0) {
			/* e.g. users left: the store's message says how many */
			rc = add ? EX_SOFTWARE : EX_DATAERR;
		}
	}
	if (err != NULL && rc != EX_OK)
		cli_error("domain %s: %s", sub, err);
	store_close(store);
	return rc;
}

/* ------------------------------------------------------------------ user */

/* First line of stdin when it is not a terminal, else prompted twice
 * without echo. what names it in prompts and errors ("password").
 * malloc'd; NULL on error (message printed). */
static char *read_secret(const char *what, const char *prompt)
{
	char *line = NULL;
	size_t cap = 0;
	if (!isatty(STDIN_FILENO)) {
		ssize_t n = getline(&line, &cap, stdin);
		if (n <= 0) {
			free(line);
			cli_error("no %s on stdin (give it as the first line)", what);
			return NULL;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0') {
			free(line);
			cli_error("the %s is empty", what);
			return NULL;
		}
		return line;
	}
	struct termios old, noecho;
	tcgetattr(STDIN_FILENO, &old);
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	char *second = NULL;
	size_t cap2 = 0;
	fprintf(stderr, "%s: ", prompt);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	ssize_t n1 = getline(&line, &cap, stdin);
	fprintf(stderr, "\nRepeat %s: ", what);
	ssize_t n2 = getline(&second, &cap2, stdin);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	if (n1 <= 0 || n2 <= 0) {
		free(line);
		free(second);
		cli_error("no %s given", what);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	second[strcspn(second, "\r\n")] = '\0';
	int same = strcmp(line, second) == 0;
	explicit_bzero(second, strlen(second));
	free(second);
	if (!same || line[0] == '\0') {
		if (same)
			cli_error("the %s is empty", what);
		else
			cli_error("the %ss differ", what);
		explicit_bzero(line, strlen(line));
		free(line);
		return NULL;
	}
	return line;
}

static char *read_password(void)
{
	return read_secret("password", "Password");
}

/* The password hash and the SCRAM-SHA-256 secrets of a password read from
 * stdin (both malloc'd); -1 after saying why. */
static int hash_from_stdin(char **hash_r, char **scram_r)
{
	char *pw = read_password();
	if (pw == NULL)
		return -1;
	const char *err;
	int r = password_hash(pw, hash_r, &err);
	if (r < 0) {
		cli_error("cannot hash the password: %s", err);
	} else if ((r = scram_secrets(pw, scram_r, &err)) < 0) {
		cli_error("cannot make SCRAM secrets for the password: %s", err);
		free(*hash_r);
		*hash_r = NULL;
	}
	explicit_bzero(pw, strlen(pw));
	free(pw);
	return r;
}

int cli_user(struct config *config, int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	int list = strcmp(sub, "list") == 0;
	int known = strcmp(sub, "add") == 0 || strcmp(sub, "del") == 0 ||
		    strcmp(sub, "passwd") == 0 || strcmp(sub, "apop") == 0;
	int apop_off = strcmp(sub, "apop") == 0 && argc == 3 && strcmp(argv[2], "--off") == 0;
	if (!(list && argc <= 2) && !(known && (argc == 2 || apop_off))) {
		cli_error("usage: petrel user add|del|passwd ADDRESS | petrel user apop ADDRESS "
			  "[--off] | petrel user list [DOMAIN]");
		return EX_USAGE;
	}
	if (known && !valid_address(argv[1])) {
		cli_error("'%s' is not an address (user@domain)", argv[1]);
		return EX_DATAERR;
	}
	store_t *store = cli_open_store(config);
	if (store == NULL)
		return EX_UNAVAILABLE;
	const char *err = NULL;
	int rc = EX_OK;
	int64_t uid;
	if (list) {
		if (store_user_list(store, argc == 2 ? argv[1] : NULL, print_line, NULL, &err) < 0) {
			cli_error("user list: %s", err);
			rc = EX_SOFTWARE;
		}
		goto out;
	}
	int found = store_user_lookup(store, argv[1], &uid, &err);
	if (found < 0) {
		cli_error("user %s: %s", sub, err);
		rc = EX_SOFTWARE;
		goto out;
	}
	if (strcmp(sub, "add") == 0) {
		const char *domain = strrchr(argv[1], '@') + 1;
		if (found) {
			cli_error("user %s already exists", argv[1]);
			rc = EX_DATAERR;
		} else if (store_domain_exists(store, domain, &err) <= 0) {
			cli_error("%s is not a local domain; add it first: petrel domain add %s",
				  domain, domain);
			rc = EX_DATAERR;
		} else {
			char *hash, *scram;
			if (hash_from_stdin(&hash, &scram) < 0) {
				rc = EX_DATAERR;
			} else {
				if (store_user_add(store, argv[1], hash, &err) < 0 ||
				    store_user_set_scram(store, argv[1], scram, &err) < 0) {
					cli_error("user add: %s", err);
					rc = EX_SOFTWARE;
				}
				free(hash);
				free(scram);
			}
		}
		goto out;
	}
	if (!found) {
		cli_error("no user %s (see: petrel user list)", argv[1]);
		rc = EX_NOUSER;
		goto out;
	}
	if (strcmp(sub, "del") == 0) {
		if (store_user_del(store, argv[1], &err) < 0) {
			cli_error("user del: %s", err);
			rc = EX_SOFTWARE;
		}
	} else if (strcmp(sub, "apop") == 0) {
		/* Kept readable (APOP needs it), so never the login password. */
		char *secret = apop_off ? NULL : read_secret("APOP secret", "APOP secret");
		char *hash = NULL;
		if (!apop_off && secret == NULL) {
			rc = EX_DATAERR;
		} else if (secret != NULL &&
			   store_user_password_hash(store, argv[1], NULL, &hash, &err) == 1 &&
			   password_verify(secret, hash)) {
			cli_error("the APOP secret must not be the login password (it is stored "
				  "readable)");
			rc = EX_DATAERR;
		} else {
			if (store_user_set_apop(store, argv[1], secret, &err) < 0) {
				cli_error("user apop: %s", err);
				rc = EX_SOFTWARE;
			}
		}
		if (secret != NULL) {
			explicit_bzero(secret, strlen(secret));
			free(secret);
		}
		free(hash);
	} else {
		char *hash, *scram;
		if (hash_from_stdin(&hash, &scram) < 0) {
			rc = EX_DATAERR;
		} else {
			if (store_user_set_password(store, argv[1], hash, &err) < 0 ||
			    store_user_set_scram(store, argv[1], scram, &err) < 0) {
				cli_error("user passwd: %s", err);
				rc = EX_SOFTWARE;
			}
			free(hash);
			free(scram);
		}
	}
out:
	store_close(store);
	return rc;
}

/* ------------------------------------------------------------------ mail */

static void print_message(void *ctx, const struct store_message_info *m)
{
	(void)ctx;
	char date[32];
	struct tm tm;
	localtime_r(&m->internaldate, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S%z", &tm);
	/* One line per message: keep control characters out of the subject. */
	char subject[512];
	size_t o = 0;
	for (const char *p = m->subject; *p != '\0' && o + 1 < sizeof(subject); p++)
		subject[o++] = ((unsigned char)*p < ' ' || *p == 127) ? ' ' : *p;
	subject[o] = '\0';
	printf("%u\t%llu\t%s\t%s\n", m->uid, (unsigned long long)m->size, date, subject);
}

int cli_mail(struct config *config, int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	int list = strcmp(sub, "list") == 0 && (argc == 2 || argc == 3);
	int cat = strcmp(sub, "cat") == 0 && argc == 4;
	if (!list && !cat) {
		cli_error("usage: petrel mail list ADDRESS [MAILBOX] | petrel mail cat ADDRESS "
			  "MAILBOX UID");
		return EX_USAGE;
	}
	unsigned long uidnum = 0;
	if (cat) {
		char *end;
		uidnum = strtoul(argv[3], &end, 10);
		if (*end != '\0' || uidnum == 0 || uidnum > 0xffffffffUL) {
			cli_error("'%s' is not a UID", argv[3]);
			return EX_USAGE;
		}
	}
	store_t *store = cli_open_store(config);
	if (store == NULL)
		return EX_UNAVAILABLE;
	const char *err;
	int64_t uid;
	int rc = EX_OK;
	int found = store_user_lookup(store, argv[1], &uid, &err);
	if (found <= 0) {
		if (found < 0)
			cli_error("mail %s: %s", sub, err);
		else
			cli_error("no user %s (see: petrel user list)", argv[1]);
		store_close(store);
		return found < 0 ? EX_SOFTWARE : EX_NOUSER;
	}
	const char *mailbox = argc >= 3 ? argv[2] : "INBOX";
	int r;
	if (list) {
		r = store_message_list(store, uid, mailbox, print_message, NULL, &err);
	} else {
		r = store_message_write(store, uid, mailbox, (uint32_t)uidnum, stdout, &err);
		if (fflush(stdout) != 0)
			r = -1, err = "cannot write to stdout";
	}
	if (r < 0) {
		cli_error("mail %s: %s", sub, err);
		rc = EX_SOFTWARE;
	} else if (r == 0) {
		if (cat)
			cli_error("no message %s in %s of %s", argv[3], mailbox, argv[1]);
		else
			cli_error("no mailbox %s for %s", mailbox, argv[1]);
		rc = EX_DATAERR;
	}
	store_close(store);
	return rc;
}
