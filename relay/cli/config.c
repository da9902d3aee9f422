/*
 * config.c — the key table: each key's type, default, unit, help and role,
 * a value set by its name (from a file, see config_file.c, or -c) and
 * checked against its type and range, the check of what a role needs, and
 * the key list of --help, the man page and the README. Durations and sizes
 * take PostgreSQL's units. Unknown keys and bad values are errors naming
 * the origin, line and key: a typo must never silently fall back to a
 * default.
 */
#include "pgferry/config.h"

#include "pgferry/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define OFF(field) offsetof(config_t, field)
#define MS_PER_DAY (86400000LL)

static const char *const log_levels[] = {"debug", "info", "warning", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const initial_copies[] = {"clone", "external", NULL};

/* The last field, reload, is left out where false (most keys need a
 * restart): the warning about fields left out is off for this table. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* clang-format off */
const config_key_t config_keys[] = {
	{"log_level", CONFIG_ENUM, "info", ROLE_ALL, OFF(log_level), 0, 0, log_levels, false,
	 "least severe level written to stderr", true},
	{"log_format", CONFIG_ENUM, "text", ROLE_ALL, OFF(log_format), 0, 0, log_formats, false,
	 "text for people, json (one object a line) for log shippers", true},
	{"tls", CONFIG_BOOL, "on", ROLE_SOURCE | ROLE_SINK, OFF(tls), 0, 0, NULL, false,
	 "mutual TLS between source and sink; off only when both ends are on loopback"},
	{"tls_ca", CONFIG_STRING, NULL, ROLE_SOURCE | ROLE_SINK, OFF(tls_ca), 0, 0, NULL, false,
	 "PEM file of the CA that signs the peer's certificate"},
	{"tls_cert", CONFIG_STRING, NULL, ROLE_SOURCE | ROLE_SINK, OFF(tls_cert), 0, 0, NULL, false,
	 "PEM file of this side's certificate"},
	{"tls_key", CONFIG_STRING, NULL, ROLE_SOURCE | ROLE_SINK, OFF(tls_key), 0, 0, NULL, false,
	 "PEM file of this side's private key"},
	{"tls_peer_name", CONFIG_STRING, NULL, ROLE_SOURCE | ROLE_SINK, OFF(tls_peer_name), 0, 0, NULL, false,
	 "name the peer's certificate must carry (sink: required with tls = on, the source's name; source: defaults to the sink's host)"},
	{"max_frame_bytes", CONFIG_SIZE, "64MB", ROLE_SOURCE | ROLE_SINK, OFF(max_frame_bytes), 1024, 1LL << 30, NULL, false,
	 "largest frame accepted on the wire; larger ones are refused before allocation"},

	{"primary_conninfo", CONFIG_STRING, NULL, ROLE_SOURCE | ROLE_ADMIN, OFF(primary_conninfo), 0, 0, NULL, true,
	 "libpq connection string of the primary database"},
	{"slot_name", CONFIG_STRING, "pgferry", ROLE_SOURCE | ROLE_ADMIN, OFF(slot_name), 0, 0, NULL, false,
	 "logical replication slot on the primary (created if missing)"},
	{"publication", CONFIG_STRING, "pgferry", ROLE_SOURCE | ROLE_ADMIN, OFF(publication), 0, 0, NULL, false,
	 "publication on the primary that lists the replicated tables"},
	{"sink_address", CONFIG_STRING, NULL, ROLE_SOURCE, OFF(sink_address), 0, 0, NULL, true,
	 "host:port of the sink"},
	{"batch_max_bytes", CONFIG_SIZE, "1MB", ROLE_SOURCE, OFF(batch_max_bytes), 1024, 1LL << 30, NULL, false,
	 "a batch is shipped when it holds this much pgoutput"},
	{"batch_max_delay", CONFIG_DURATION, "5ms", ROLE_SOURCE, OFF(batch_max_delay), 0, 10000, NULL, false,
	 "a batch is shipped at the latest this long after its first message (at once when it "
	 "ends with a commit and the walsender has sent all the primary had flushed)", true},
	{"read_round_delay", CONFIG_DURATION, "4ms", ROLE_SOURCE, OFF(read_round_delay), 0, 1000, NULL, false,
	 "under a trickle of small transactions the stream is read in rounds this far apart, so "
	 "several travel in one batch and apply in one DR transaction (0 = each message as it "
	 "comes)", true},
	{"batch_scheduling", CONFIG_BOOL, "on", ROLE_SOURCE, OFF(batch_scheduling), 0, 0, NULL, false,
	 "run the source under the kernel's SCHED_BATCH policy: woken for each message the walsender "
	 "sends, it does not preempt the walsender or another backend of the primary (off: the normal "
	 "policy)"},
	{"compression_level", CONFIG_INT, "1", ROLE_SOURCE, OFF(compression_level), -7, 19, NULL, false,
	 "zstd level for batches"},
	{"heartbeat_interval", CONFIG_DURATION, "100ms", ROLE_SOURCE, OFF(heartbeat_interval), 0, 3600000, NULL, false,
	 "a heartbeat message is written on the primary this often (0 = never)"},
	{"status_interval", CONFIG_DURATION, "1s", ROLE_SOURCE, OFF(status_interval), 10, 3600000, NULL, false,
	 "standby status updates to the primary at least this often"},
	{"reconnect_max_delay", CONFIG_DURATION, "10s", ROLE_SOURCE | ROLE_SINK, OFF(reconnect_max_delay), 10, 3600000, NULL, false,
	 "longest wait between reconnection attempts (backoff doubles up to this)", true},
	{"sequence_sync_interval", CONFIG_DURATION, "1s", ROLE_SOURCE, OFF(sequence_sync_interval), 0, 3600000, NULL, false,
	 "sequences on the primary are read and shipped this often (0 = never)"},
	{"replicate_ddl", CONFIG_BOOL, "off", ROLE_SOURCE | ROLE_SINK, OFF(replicate_ddl), 0, 0, NULL, false,
	 "apply DDL captured on the primary by the event trigger in sql/"},
	{"slot_wal_warning", CONFIG_SIZE, "10GB", ROLE_SOURCE, OFF(slot_wal_warning), 0, 1LL << 50, NULL, false,
	 "warn (log, /v1/status, metric) when the slot retains more WAL than this on the primary (0 = off)", true},
	{"rpo_guard", CONFIG_BOOL, "off", ROLE_SOURCE, OFF(rpo_guard), 0, 0, NULL, false,
	 "hold the primary to rpo_guard_budget: over it, its commits wait for the DR side (the source joins synchronous_standby_names)"},
	{"rpo_guard_budget", CONFIG_DURATION, "30s", ROLE_SOURCE, OFF(rpo_guard_budget), 100, 86400000, NULL, false,
	 "RPO bound over which the guard engages; it releases under half of it"},
	{"rpo_guard_max_wait", CONFIG_DURATION, "5min", ROLE_SOURCE, OFF(rpo_guard_max_wait), 1000, 86400000, NULL, false,
	 "the guard releases when the DR side has confirmed nothing for this long (availability over RPO)"},
	{"sink_timeout", CONFIG_DURATION, "10s", ROLE_SOURCE, OFF(sink_timeout), 100, 3600000, NULL, false,
	 "a sink silent this long (it pings every 200 ms) is taken for gone: the session restarts", true},

	{"source_http_listen", CONFIG_STRING, "", ROLE_SOURCE, OFF(source_http_listen), 0, 0, NULL, false,
	 "host:port for the source's own /metrics and /healthz (empty: off; e.g. 127.0.0.1:7481, loopback unless a scraper elsewhere needs it)"},

	{"listen_address", CONFIG_STRING, "127.0.0.1:7433", ROLE_SINK, OFF(listen_address), 0, 0, NULL, false,
	 "host:port the sink accepts the source on"},
	{"dr_conninfo", CONFIG_STRING, NULL, ROLE_SINK | ROLE_ADMIN, OFF(dr_conninfo), 0, 0, NULL, true,
	 "libpq connection string of the DR database"},
	{"work_dir", CONFIG_STRING, NULL, ROLE_SINK, OFF(work_dir), 0, 0, NULL, true,
	 "directory for spill files of large transactions"},
	{"initial_copy", CONFIG_ENUM, "clone", ROLE_SINK, OFF(initial_copy), 0, 0, initial_copies, false,
	 "how the DR copy was seeded: clone (the sink applies only after a finished pgferry clone) or external (the operator copied it from the slot's consistent point; recorded on first contact)"},
	{"http_listen", CONFIG_STRING, "127.0.0.1:7480", ROLE_SINK, OFF(http_listen), 0, 0, NULL, false,
	 "host:port for /metrics, /v1/status, /v1/promotion-safety, /healthz"},
	{"apply_group_max_transactions", CONFIG_INT, "1000", ROLE_SINK, OFF(apply_group_max_transactions), 1, 100000, NULL, false,
	 "source transactions grouped into one DR transaction at most (larger groups net more changes of hot rows; in a table whose changes cannot be netted, a row updated again and again in one group slows down)", true},
	{"apply_group_max_delay", CONFIG_DURATION, "100ms", ROLE_SINK, OFF(apply_group_max_delay), 0, 60000, NULL, false,
	 "a DR transaction stays open at most this long while a backlog is applied", true},
	{"apply_coalesce", CONFIG_BOOL, "on", ROLE_SINK, OFF(apply_coalesce), 0, 0, NULL, false,
	 "apply only the net change per row of each DR transaction, where the DR table allows it"},
	{"apply_workers", CONFIG_INT, "1", ROLE_SINK, OFF(apply_workers), 1, 16, NULL, false,
	 "DR connections applying non-conflicting source transactions at once, committing in source commit order (1 = one connection, as before)"},
	{"spool_memory_limit", CONFIG_SIZE, "32MB", ROLE_SINK, OFF(spool_memory_limit), 1LL << 20, 1LL << 40, NULL, false,
	 "received, unapplied batches held in memory at most, with 48 bytes of bookkeeping per record; beyond it they wait in a spool file in work_dir"},
	{"spool_disk_limit", CONFIG_SIZE, "1GB", ROLE_SINK, OFF(spool_disk_limit), 0, 1LL << 50, NULL, false,
	 "received, unapplied batches held on disk at most, their bookkeeping included (0 = none); beyond it the sink stops reading and the slot keeps the rest"},
	{"lag_history_retention", CONFIG_DURATION, "7d", ROLE_SINK, OFF(lag_history_retention), 60000, 3650 * MS_PER_DAY, NULL, false,
	 "how long per-second lag samples are kept in the DR database", true},
	{"source_timeout", CONFIG_DURATION, "10s", ROLE_SINK, OFF(source_timeout), 100, 3600000, NULL, false,
	 "a source from which no byte arrives this long is taken for gone and disconnected", true},
	{"max_rpo", CONFIG_DURATION, "60s", ROLE_SINK | ROLE_CLIENT, OFF(max_rpo), 0, 365 * MS_PER_DAY, NULL, false,
	 "promotion is safe only with an RPO bound at most this (when a request names none)", true},
	{"max_apply_backlog", CONFIG_INT, "0", ROLE_SINK | ROLE_CLIENT, OFF(max_apply_backlog), 0, INT64_MAX, NULL, false,
	 "promotion is safe only with at most this many received, unapplied transactions", true},
	{"max_clock_offset", CONFIG_DURATION, "1s", ROLE_SINK, OFF(max_clock_offset), 0, 3600000, NULL, false,
	 "clock offset between primary and sink hosts beyond this is a fault", true},
	{"test_clock_skew", CONFIG_DURATION, "0", ROLE_SOURCE | ROLE_SINK, OFF(test_clock_skew), -3600000, 3600000, NULL, false,
	 "TESTS ONLY: shift this process's clock by this much"},

	{"sink_url", CONFIG_STRING, "http://127.0.0.1:7480", ROLE_CLIENT | ROLE_ADMIN, OFF(sink_url), 0, 0, NULL, false,
	 "base URL of the sink's HTTP API"},

	{"clone_jobs", CONFIG_INT, "2", ROLE_ADMIN, OFF(clone_jobs), 1, 64, NULL, false,
	 "tables clone copies at once"},
	{"verify_chunk_rows", CONFIG_INT, "10000", ROLE_ADMIN, OFF(verify_chunk_rows), 10, 100000000, NULL, false,
	 "rows per primary-key chunk that verify hashes in one query"},
	{"verify_retries", CONFIG_INT, "5", ROLE_ADMIN, OFF(verify_retries), 0, 1000, NULL, false,
	 "times verify re-reads a chunk that differs before it calls it different"},
	{"promote_sequence_margin", CONFIG_INT, "10000", ROLE_SINK | ROLE_ADMIN, OFF(promote_sequence_margin), 0, INT64_MAX, NULL, false,
	 "promote moves every sequence this many increments past the last value shipped"},
};
/* clang-format on */
#pragma GCC diagnostic pop

const size_t config_key_count = sizeof(config_keys) / sizeof(config_keys[0]);

const config_key_t *config_find_key(const char *name)
{
	size_t i;

	for (i = 0; i < config_key_count; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static void *field(config_t *cfg, const config_key_t *key)
{
	return (char *)cfg + key->offset;
}

static const void *cfield(const config_t *cfg, const config_key_t *key)
{
	return (const char *)cfg + key->offset;
}

int config_parse_bool(const char *text, bool *value)
{
	static const char *const yes[] = {"on", "true", "yes", "1", NULL};
	static const char *const no[] = {"off", "false", "no", "0", NULL};
	int i;

	for (i = 0; yes[i]; i++)
		if (strcasecmp(text, yes[i]) == 0) {
			*value = true;
			return PGF_OK;
		}
	for (i = 0; no[i]; i++)
		if (strcasecmp(text, no[i]) == 0) {
			*value = false;
			return PGF_OK;
		}
	return PGF_ERR;
}

/* A number with an optional unit from units[]; result = number * factor. */
typedef struct unit {
	const char *name;
	int64_t factor;
} unit_t;

static int parse_with_units(const char *text, const unit_t *units, bool unit_required, int64_t *out)
{
	char *end = NULL;
	long long n;
	const char *u;
	size_t i;

	errno = 0;
	while (*text == ' ' || *text == '\t')
		text++;
	if (*text == '\0')
		return PGF_ERR;
	n = strtoll(text, &end, 10);
	if (errno != 0 || end == text)
		return PGF_ERR;
	u = end;
	while (isspace((unsigned char)*u))
		u++;
	if (*u == '\0') {
		/* "5" could mean 5 ms or 5 s: only 0 is the same in every unit */
		if (unit_required && n != 0)
			return PGF_ERR;
		*out = n * units[0].factor; /* bare number: the base unit */
		return PGF_OK;
	}
	for (i = 0; units[i].name; i++) {
		if (strcmp(u, units[i].name) == 0) {
			if (n != 0 &&
			    (n > INT64_MAX / units[i].factor || n < INT64_MIN / units[i].factor))
				return PGF_ERR;
			*out = n * units[i].factor;
			return PGF_OK;
		}
	}
	return PGF_ERR;
}

int config_parse_duration(const char *text, int64_t *ms)
{
	static const unit_t units[] = {{"ms", 1},      {"s", 1000},       {"min", 60000},
	                               {"h", 3600000}, {"d", MS_PER_DAY}, {NULL, 0}};
	return parse_with_units(text, units, true, ms);
}

int config_parse_size(const char *text, int64_t *bytes)
{
	static const unit_t units[] = {{"B", 1},          {"kB", 1024},      {"MB", 1 << 20},
	                               {"GB", 1LL << 30}, {"TB", 1LL << 40}, {NULL, 0}};
	return parse_with_units(text, units, false, bytes);
}

static const char *type_name(config_type_t t)
{
	switch (t) {
	case CONFIG_BOOL:
		return "boolean";
	case CONFIG_INT:
		return "integer";
	case CONFIG_STRING:
		return "string";
	case CONFIG_DURATION:
		return "duration";
	case CONFIG_SIZE:
		return "size";
	case CONFIG_ENUM:
		return "enum";
	}
	return "?";
}

static void set_where(pgf_error_t *err, const char *origin, int line)
{
	if (line > 0)
		error_where(err, "%s:%d", origin, line);
	else
		error_where(err, "%s", origin);
}

static int range_error(pgf_error_t *err, const config_key_t *key, const char *value,
                       const char *origin, int line)
{
	error_set(err, PGF_E_CONFIG, "value \"%s\" for \"%s\" is out of range", value, key->name);
	if (key->type == CONFIG_DURATION)
		error_detail(err, "\"%s\" must be between %" PRId64 "ms and %" PRId64 "ms.",
		             key->name, key->min, key->max);
	else if (key->type == CONFIG_SIZE)
		error_detail(err, "\"%s\" must be between %" PRId64 " and %" PRId64 " bytes.",
		             key->name, key->min, key->max);
	else
		error_detail(err, "\"%s\" must be between %" PRId64 " and %" PRId64 ".", key->name,
		             key->min, key->max);
	set_where(err, origin, line);
	return PGF_ERR;
}

int config_set(config_t *cfg, const char *name, const char *value, const char *origin, int line,
               pgf_error_t *err)
{
	const config_key_t *key = config_find_key(name);
	int64_t n = 0;
	bool b;
	int i;

	if (key == NULL) {
		error_set(err, PGF_E_CONFIG, "unrecognized configuration parameter \"%s\"", name);
		error_hint(err, "See \"pgferry --help\" for the list of parameters.");
		set_where(err, origin, line);
		return PGF_ERR;
	}
	switch (key->type) {
	case CONFIG_BOOL:
		if (config_parse_bool(value, &b) != PGF_OK) {
			error_set(err, PGF_E_CONFIG,
			          "parameter \"%s\" requires a Boolean value, not \"%s\"", name,
			          value);
			error_hint(err, "Use on or off.");
			set_where(err, origin, line);
			return PGF_ERR;
		}
		*(bool *)field(cfg, key) = b;
		return PGF_OK;
	case CONFIG_STRING: {
		char *copy = strdup(value);
		char **slot = field(cfg, key);

		if (copy == NULL)
			return error_set(err, PGF_E_MEMORY, "out of memory");
		free(*slot);
		*slot = copy;
		return PGF_OK;
	}
	case CONFIG_ENUM:
		for (i = 0; key->enum_values[i]; i++) {
			if (strcasecmp(value, key->enum_values[i]) == 0) {
				*(int *)field(cfg, key) = i;
				return PGF_OK;
			}
		}
		error_set(err, PGF_E_CONFIG, "invalid value \"%s\" for parameter \"%s\"", value,
		          name);
		{
			char allowed[256] = "";
			for (i = 0; key->enum_values[i]; i++) {
				if (i)
					strncat(allowed, ", ",
					        sizeof(allowed) - strlen(allowed) - 1);
				strncat(allowed, key->enum_values[i],
				        sizeof(allowed) - strlen(allowed) - 1);
			}
			error_hint(err, "Available values: %s.", allowed);
		}
		set_where(err, origin, line);
		return PGF_ERR;
	case CONFIG_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		if (errno != 0 || end == value || *end != '\0') {
			error_set(err, PGF_E_CONFIG,
			          "invalid value \"%s\" for integer parameter \"%s\"", value, name);
			set_where(err, origin, line);
			return PGF_ERR;
		}
		n = v;
		break;
	}
	case CONFIG_DURATION:
		if (config_parse_duration(value, &n) != PGF_OK) {
			error_set(err, PGF_E_CONFIG,
			          "invalid value \"%s\" for duration parameter \"%s\"", value,
			          name);
			error_hint(err,
			           "Write a number with a unit: \"ms\", \"s\", \"min\", \"h\" or "
			           "\"d\" (e.g. 500ms, 30s); a number without one is refused, "
			           "since it "
			           "could mean either.");
			set_where(err, origin, line);
			return PGF_ERR;
		}
		break;
	case CONFIG_SIZE:
		if (config_parse_size(value, &n) != PGF_OK) {
			error_set(err, PGF_E_CONFIG,
			          "invalid value \"%s\" for size parameter \"%s\"", value, name);
			error_hint(
			        err,
			        "Valid units are \"B\", \"kB\", \"MB\", \"GB\" and \"TB\"; a bare "
			        "number is bytes.");
			set_where(err, origin, line);
			return PGF_ERR;
		}
		break;
	}
	if (n < key->min || n > key->max)
		return range_error(err, key, value, origin, line);
	*(int64_t *)field(cfg, key) = n;
	return PGF_OK;
}

void config_init(config_t *cfg)
{
	size_t i;
	pgf_error_t err;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < config_key_count; i++) {
		if (config_keys[i].default_value == NULL)
			continue;
		if (config_set(cfg, config_keys[i].name, config_keys[i].default_value, "default", 0,
		               &err) != PGF_OK) {
			/* a broken built-in table is a programming error */
			fprintf(stderr, "pgferry: bad default for %s: %s\n", config_keys[i].name,
			        err.message);
			abort();
		}
	}
}

void config_free(config_t *cfg)
{
	size_t i;

	for (i = 0; i < config_key_count; i++) {
		if (config_keys[i].type == CONFIG_STRING) {
			char **slot = field(cfg, &config_keys[i]);
			free(*slot);
			*slot = NULL;
		}
	}
}

int config_set_option(config_t *cfg, const char *option, pgf_error_t *err)
{
	const char *eq = strchr(option, '=');
	char name[128];
	size_t n;

	if (eq == NULL) {
		error_set(err, PGF_E_USAGE, "option \"-c %s\" has no value", option);
		error_hint(err, "Write -c key=value.");
		return PGF_ERR;
	}
	n = (size_t)(eq - option);
	while (n > 0 && isspace((unsigned char)option[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(name)) {
		error_set(err, PGF_E_USAGE, "option \"-c %s\" has no valid key", option);
		return PGF_ERR;
	}
	memcpy(name, option, n);
	name[n] = '\0';
	eq++;
	while (isspace((unsigned char)*eq))
		eq++;
	return config_set(cfg, name, eq, "-c", 0, err);
}

int config_check(const config_t *cfg, int role, pgf_error_t *err)
{
	size_t i;

	for (i = 0; i < config_key_count; i++) {
		const config_key_t *key = &config_keys[i];
		if (!key->required || !(key->roles & role) || key->type != CONFIG_STRING)
			continue;
		const char *v = *(char *const *)cfield(cfg, key);
		if (v == NULL || v[0] == '\0') {
			error_set(err, PGF_E_CONFIG, "required parameter \"%s\" is not set",
			          key->name);
			error_hint(err, "Set it in the configuration file or with -c %s=...",
			           key->name);
			return PGF_ERR;
		}
	}
	if ((role & (ROLE_SOURCE | ROLE_SINK)) && cfg->tls) {
		if (!cfg->tls_ca || !cfg->tls_cert || !cfg->tls_key) {
			error_set(err, PGF_E_CONFIG,
			          "tls is on but tls_ca, tls_cert or tls_key is not set");
			error_hint(
			        err,
			        "Give this side a certificate, its key and the CA that signs the "
			        "peer's certificate, or set tls = off on loopback only.");
			return PGF_ERR;
		}
	}
	/* without a pinned name any certificate the CA signed would pass as the source,
	 * one made for another host or the sink's own included */
	if ((role & ROLE_SINK) && cfg->tls &&
	    (cfg->tls_peer_name == NULL || !cfg->tls_peer_name[0])) {
		error_set(err, PGF_E_CONFIG, "tls is on but tls_peer_name is not set");
		error_detail(err,
		             "The sink accepts a source only if its certificate carries this name; "
		             "without it any certificate signed by tls_ca would be taken for the "
		             "source.");
		error_hint(err, "Set tls_peer_name to the name (DNS SAN or CN) in the source's "
		                "certificate, "
		                "or set tls = off on loopback only.");
		return PGF_ERR;
	}
	if ((role & ROLE_SOURCE) && cfg->batch_max_bytes > cfg->max_frame_bytes / 2) {
		error_set(err, PGF_E_CONFIG,
		          "batch_max_bytes must be at most half of max_frame_bytes");
		error_detail(err, "batch_max_bytes is %" PRId64 ", max_frame_bytes is %" PRId64 ".",
		             cfg->batch_max_bytes, cfg->max_frame_bytes);
		return PGF_ERR;
	}
	return PGF_OK;
}

void config_value_text(const config_t *cfg, const config_key_t *key, char *out, size_t len)
{
	const void *f = cfield(cfg, key);

	switch (key->type) {
	case CONFIG_BOOL:
		snprintf(out, len, "%s", *(const bool *)f ? "on" : "off");
		break;
	case CONFIG_STRING:
		snprintf(out, len, "%s", *(char *const *)f ? *(char *const *)f : "");
		break;
	case CONFIG_ENUM:
		snprintf(out, len, "%s", key->enum_values[*(const int *)f]);
		break;
	case CONFIG_INT:
		snprintf(out, len, "%" PRId64, *(const int64_t *)f);
		break;
	case CONFIG_DURATION:
		snprintf(out, len, "%" PRId64 "ms", *(const int64_t *)f);
		break;
	case CONFIG_SIZE:
		snprintf(out, len, "%" PRId64 "B", *(const int64_t *)f);
		break;
	}
}

static const char *roles_text(int roles)
{
	switch (roles) {
	case ROLE_SOURCE:
		return "source";
	case ROLE_SINK:
		return "sink";
	case ROLE_CLIENT:
		return "lag, promote-check";
	case ROLE_SOURCE | ROLE_SINK:
		return "source, sink";
	case ROLE_SINK | ROLE_CLIENT:
		return "sink, promote-check";
	case ROLE_ADMIN:
		return "clone, verify, promote";
	case ROLE_SOURCE | ROLE_ADMIN:
		return "source, clone, verify";
	case ROLE_SINK | ROLE_ADMIN:
		return "sink, clone, verify, promote";
	case ROLE_CLIENT | ROLE_ADMIN:
		return "lag, promote-check, promote";
	default:
		return "all";
	}
}

void config_print_keys(FILE *out, bool markdown)
{
	size_t i;

	if (markdown) {
		fprintf(out, "| key | type | default | used by | meaning |\n");
		fprintf(out, "| --- | --- | --- | --- | --- |\n");
	}
	for (i = 0; i < config_key_count; i++) {
		const config_key_t *k = &config_keys[i];
		const char *def =
		        k->default_value ? k->default_value : (k->required ? "(required)" : "");
		const char *live = k->reload ? "; changes on SIGHUP" : "";
		if (markdown)
			fprintf(out, "| `%s` | %s | %s%s%s | %s | %s%s |\n", k->name,
			        type_name(k->type), def[0] && def[0] != '(' ? "`" : "", def,
			        def[0] && def[0] != '(' ? "`" : "", roles_text(k->roles), k->help,
			        live);
		else
			fprintf(out, "  %-30s %-8s %-22s %s%s\n", k->name, type_name(k->type),
			        def[0] ? def : "-", k->help, live);
	}
}

/* for the man page, which lists the same table */
const char *config_type_text(config_type_t type)
{
	return type_name(type);
}

const char *config_roles_text(int roles)
{
	return roles_text(roles);
}
