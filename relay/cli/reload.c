/*
 * reload.c — SIGHUP for source and sink (reload.h).
 *
 * The new configuration is built from scratch (defaults, the file, the -c
 * options) and checked as at start; only then are the keys marked reload
 * copied into the running one. Those keys are numbers that the threads
 * read afresh at each use, so each is stored in one atomic write and no
 * lock is needed; a string (a connection string, a path) may be held by a
 * thread and is never changed live.
 */
#include "pgferry/reload.h"

#include "pgferry/log.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct reload {
	struct ev_loop *loop;
	ev_signal sighup;
	cli_t *cli;
	int role;
};

static void store_value(config_t *live, const config_t *fresh, const config_key_t *key)
{
	char *to = (char *)live + key->offset;
	const char *from = (const char *)fresh + key->offset;

	switch (key->type) {
	case CONFIG_BOOL:
		__atomic_store_n((bool *)to, *(const bool *)from, __ATOMIC_RELAXED);
		break;
	case CONFIG_ENUM:
		__atomic_store_n((int *)to, *(const int *)from, __ATOMIC_RELAXED);
		break;
	case CONFIG_INT:
	case CONFIG_DURATION:
	case CONFIG_SIZE:
		__atomic_store_n((int64_t *)to, *(const int64_t *)from, __ATOMIC_RELAXED);
		break;
	case CONFIG_STRING:
		break; /* never live: see above */
	}
}

int reload_config(cli_t *cli, int role, int *applied, int *restart, pgf_error_t *err)
{
	config_t fresh;
	size_t i;
	int k, rc = PGF_ERR;
	bool logging = false;

	*applied = *restart = 0;
	config_init(&fresh);
	if (cli->config_file != NULL && config_load_file(&fresh, cli->config_file, err) != PGF_OK)
		goto out;
	for (k = 0; k < cli->noptions; k++)
		if (config_set_option(&fresh, cli->options[k], err) != PGF_OK)
			goto out;
	if (config_check(&fresh, role, err) != PGF_OK)
		goto out;
	for (i = 0; i < config_key_count; i++) {
		const config_key_t *key = &config_keys[i];
		char was[512], now[512];

		if (!(key->roles & role))
			continue;
		config_value_text(&cli->cfg, key, was, sizeof(was));
		config_value_text(&fresh, key, now, sizeof(now));
		if (strcmp(was, now) == 0)
			continue;
		if (key->reload && key->type != CONFIG_STRING) {
			store_value(&cli->cfg, &fresh, key);
			log_info("configuration: %s changed from %s to %s", key->name, was, now);
			logging |= strncmp(key->name, "log_", 4) == 0;
			(*applied)++;
		} else {
			/* a string may hold a password: the key is named, never its value */
			log_warning(
			        "configuration: %s changed in the file but takes effect only after "
			        "a restart; running on with the value it started with",
			        key->name);
			(*restart)++;
		}
	}
	if (logging)
		log_configure((log_level_t)cli->cfg.log_level, (log_format_t)cli->cfg.log_format,
		              NULL);
	rc = PGF_OK;
out:
	config_free(&fresh);
	return rc;
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	reload_t *r = w->data;
	int applied, restart;
	pgf_error_t err;

	(void)loop;
	(void)revents;
	error_clear(&err);
	if (r->cli->config_file == NULL && r->cli->noptions == 0) {
		log_info("SIGHUP: no configuration file to read again");
		return;
	}
	if (reload_config(r->cli, r->role, &applied, &restart, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		log_error("SIGHUP: the configuration in \"%s\" is refused; running on with the "
		          "previous one",
		          r->cli->config_file ? r->cli->config_file : "-c");
		return;
	}
	log_info("SIGHUP: configuration read again from \"%s\": %d change%s applied, %d waiting "
	         "for a restart",
	         r->cli->config_file ? r->cli->config_file : "-c", applied, applied == 1 ? "" : "s",
	         restart);
}

reload_t *reload_start(struct ev_loop *loop, cli_t *cli, int role)
{
	reload_t *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->loop = loop;
	r->cli = cli;
	r->role = role;
	ev_signal_init(&r->sighup, on_sighup, SIGHUP);
	r->sighup.data = r;
	ev_signal_start(loop, &r->sighup);
	return r;
}

void reload_stop(reload_t *r)
{
	if (r == NULL)
		return;
	ev_signal_stop(r->loop, &r->sighup);
	free(r);
}
