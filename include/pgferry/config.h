/*
 * config.h — configuration: one table of keys, postgresql.conf syntax.
 *
 * Every key has a type, a default, a unit and the roles that use it; the
 * --help text, the README's table and validation all come from config_keys.
 * Values come from the defaults, then a file (config_load_file), then
 * "-c key=value" options (config_set_option), later ones winning.
 */
#ifndef PGFERRY_CONFIG_H
#define PGFERRY_CONFIG_H

#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
	CONFIG_BOOL,
	CONFIG_INT,
	CONFIG_STRING,
	CONFIG_DURATION, /* stored in milliseconds; units us? no: ms, s, min, h, d */
	CONFIG_SIZE,     /* stored in bytes; units B, kB, MB, GB, TB */
	CONFIG_ENUM,
} config_type_t;

/* Which processes read a key (a bit set). */
#define ROLE_SOURCE 1
#define ROLE_SINK   2
#define ROLE_CLIENT 4 /* lag, promote-check */
#define ROLE_ADMIN  8 /* clone, verify, promote */
#define ROLE_ALL    15

/* initial_copy: how the DR copy was seeded */
enum { INITIAL_COPY_CLONE = 0, INITIAL_COPY_EXTERNAL = 1 };

typedef struct config {
	/* all roles */
	int log_level;  /* log_level_t */
	int log_format; /* log_format_t */
	bool tls;
	char *tls_ca;
	char *tls_cert;
	char *tls_key;
	char *tls_peer_name;
	int64_t max_frame_bytes;

	/* source */
	char *primary_conninfo;
	char *slot_name;
	char *publication;
	char *sink_address;
	int64_t batch_max_bytes;
	int64_t batch_max_delay;
	int64_t read_round_delay; /* ms */
	bool batch_scheduling;
	int64_t compression_level;
	int64_t heartbeat_interval;
	int64_t status_interval;
	int64_t reconnect_max_delay;
	int64_t sequence_sync_interval;
	bool replicate_ddl;
	int64_t slot_wal_warning; /* bytes; 0 = off */
	bool rpo_guard;
	int64_t rpo_guard_budget;   /* ms */
	int64_t rpo_guard_max_wait; /* ms */

	/* sink */
	char *listen_address;
	char *dr_conninfo;
	char *work_dir;
	int initial_copy; /* INITIAL_COPY_* */
	char *http_listen;
	int64_t apply_group_max_transactions;
	int64_t apply_group_max_delay;
	bool apply_coalesce;
	int64_t apply_workers;
	int64_t spool_memory_limit;
	int64_t spool_disk_limit;
	int64_t lag_history_retention;
	int64_t source_timeout;
	int64_t sink_timeout;
	char *source_http_listen; /* "": off */
	int64_t max_rpo;
	int64_t max_apply_backlog;
	int64_t max_clock_offset;
	int64_t test_clock_skew;

	/* clients */
	char *sink_url;

	/* clone, verify, promote */
	int64_t clone_jobs;
	int64_t verify_chunk_rows;
	int64_t verify_retries;
	int64_t promote_sequence_margin;
} config_t;

typedef struct config_key {
	const char *name;
	config_type_t type;
	const char *default_value; /* as it would be written in the file; NULL = unset */
	int roles;
	size_t offset; /* into config_t */
	int64_t min, max;
	const char *const *enum_values; /* NULL-terminated, for CONFIG_ENUM */
	bool required;                  /* for its roles */
	const char *help;
	/* applied by a running source or sink on SIGHUP (relay/cli/reload.c);
	 * only keys read afresh at each use, never a string a thread holds */
	bool reload;
} config_key_t;

extern const config_key_t config_keys[];
extern const size_t config_key_count;

/* Fills cfg with the defaults. Never fails on the built-in table. */
void config_init(config_t *cfg);
void config_free(config_t *cfg);

/* Sets one key from its text form. origin and line name where it came from
 * (a file and line, or "-c"); they appear in the error. */
int config_set(config_t *cfg, const char *key, const char *value, const char *origin, int line,
               pgf_error_t *err);
/* "key=value" as given to -c. */
int config_set_option(config_t *cfg, const char *option, pgf_error_t *err);
int config_load_file(config_t *cfg, const char *path, pgf_error_t *err);
/* Parses postgresql.conf text (used by config_load_file; origin names it). */
int config_load_text(config_t *cfg, const char *text, size_t len, const char *origin,
                     pgf_error_t *err);
/* Checks that the keys a role requires are set and that values agree. */
int config_check(const config_t *cfg, int role, pgf_error_t *err);

/* Value parsers, exposed for tests. */
int config_parse_duration(const char *text, int64_t *ms);
int config_parse_size(const char *text, int64_t *bytes);
int config_parse_bool(const char *text, bool *value);

/* The key table as help text (one key a line) for --help and the README. */
void config_print_keys(FILE *out, bool markdown);
/* A type ("duration") and a set of roles ("source, sink") as words. */
const char *config_type_text(config_type_t type);
const char *config_roles_text(int roles);
/* Current value of a key in its text form (for status and tests). */
void config_value_text(const config_t *cfg, const config_key_t *key, char *out, size_t len);
const config_key_t *config_find_key(const char *name);

#endif
