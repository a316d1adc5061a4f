/*
 * cli.h - petrel subcommands. Each returns a sysexits.h code.
 */
#ifndef PETREL_CLI_H
#define PETREL_CLI_H

#include <sysexits.h>

struct config;
typedef struct store store_t;

int cli_serve(struct config *config, int argc, char **argv);
int cli_check(struct config *config, int argc, char **argv);
int cli_domain(struct config *config, int argc, char **argv);
int cli_user(struct config *config, int argc, char **argv);
int cli_mail(struct config *config, int argc, char **argv);

/* Open the store of config's data_dir; prints the error and returns NULL. */
store_t *cli_open_store(const struct config *config);
/* "petrel: " + message on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
