/* petrel: the one binary. `petrel [-c FILE] COMMAND ...` */
#include "cli/cli.h"

#include "core/config.h"
#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/petrel/petrel.conf"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("petrel: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

store_t *cli_open_store(const struct config *config)
{
	store_t *store;
	const char *err;
	if (store_open(config->data_dir, &store, &err) < 0) {
		cli_error("cannot open the store in %s: %s", config->data_dir, err);
		return NULL;
	}
	return store;
}

static void usage(FILE *out)
{
	fputs("usage: petrel [-c FILE] COMMAND [ARGS]\n"
	      "\n"
	      "  serve                          run the server in the foreground\n"
	      "  check                          validate the configuration (exit 0 or 78)\n"
	      "  domain add|del DOMAIN          manage local domains\n"
	      "  domain list\n"
	      "  user add|passwd ADDRESS        password from stdin's first line (or prompted)\n"
	      "  user del ADDRESS\n"
	      "  user apop ADDRESS [--off]      POP3 APOP secret from stdin's first line\n"
	      "                                 (kept readable: not the password); --off removes it\n"
	      "  user list [DOMAIN]\n"
	      "  mail list ADDRESS [MAILBOX]    uid, size, internal date, subject\n"
	      "  mail cat ADDRESS MAILBOX UID   the raw message as stored\n"
	      "\n"
	      "  -c FILE   configuration file (default " DEFAULT_CONFIG ")\n",
	      out);
}

static const struct {
	const char *name;
	int (*fn)(struct config *, int, char **);
} commands[] = {
	{ "serve", cli_serve }, { "check", cli_check }, { "domain", cli_domain },
	{ "user", cli_user },   { "mail", cli_mail },
};

int main(int argc, char **argv)
{
	const char *config_path = DEFAULT_CONFIG;
	int opt;
	while ((opt = getopt(argc, argv, "+c:h")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[optind];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		struct config *config;
		char *err;
		if (config_load(config_path, &config, &err) < 0) {
			cli_error("%s", err != NULL ? err : "cannot load the configuration");
			free(err);
			return EX_CONFIG;
		}
		int rc = commands[i].fn(config, argc - optind - 1, argv + optind + 1);
		config_free(config);
		return rc;
	}
	cli_error("unknown command '%s' (try: petrel help)", cmd);
	return EX_USAGE;
}
