/*
 * check_cmd.c — `pgferry check`: the pre-flight of a source, sink or
 * clone configuration, and the same checks run by the daemons at start.
 *
 * Each check is one line (ok, warning, error with the fix). The checks of
 * the primary are in source/primary_check.c, of the DR database in
 * dr/dr_check.c, of certificates and ports in check_net.c; this file
 * picks them per role, adds the clock offsets, prints the report (text or
 * JSON) and maps it to the exit code: 0 all ok, 1 warnings, 2 errors.
 */
#include "pgferry/check.h"

#include "pgferry/cli.h"
#include "pgferry/dr_check.h"
#include "pgferry/log.h"
#include "pgferry/primary_check.h"
#include "pgferry/util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void check_report_init(check_report_t *r)
{
	memset(r, 0, sizeof(*r));
}

void check_report_free(check_report_t *r)
{
	free(r->items);
	r->items = NULL;
	r->count = r->cap = 0;
}

void check_add(check_report_t *r, check_level_t level, const char *name, const char *fix,
               const char *fmt, ...)
{
	check_item_t *it;
	va_list ap;

	if (r->count == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		check_item_t *n = realloc(r->items, cap * sizeof(*n));
		if (n == NULL)
			return;
		r->items = n;
		r->cap = cap;
	}
	it = &r->items[r->count++];
	memset(it, 0, sizeof(*it));
	it->level = level;
	snprintf(it->name, sizeof(it->name), "%s", name);
	va_start(ap, fmt);
	vsnprintf(it->message, sizeof(it->message), fmt, ap);
	va_end(ap);
	if (fix != NULL && level != CHECK_OK)
		snprintf(it->fix, sizeof(it->fix), "%s", fix);
}

check_level_t check_report_worst(const check_report_t *r)
{
	check_level_t worst = r->count == 0 ? CHECK_ERROR : CHECK_OK;
	size_t i;

	for (i = 0; i < r->count; i++)
		if (r->items[i].level > worst)
			worst = r->items[i].level;
	return worst;
}

static const char *level_name(check_level_t level)
{
	return level == CHECK_OK ? "ok" : level == CHECK_WARNING ? "warning" : "error";
}

void check_format_item(const check_item_t *it, char *out, size_t len)
{
	snprintf(out, len, "%-8s %s: %s%s%s", level_name(it->level), it->name, it->message,
	         it->fix[0] ? ". Fix: " : "", it->fix);
}

const char *check_role_name(check_role_t role)
{
	return role == CHECK_ROLE_SOURCE ? "source" : role == CHECK_ROLE_SINK ? "sink" : "clone";
}

/* The server's clock against this host's, NTP-style: the server's time
 * against the middle of the round trip, half of which is the uncertainty.
 * *offset gets it in seconds (NAN when unknown). */
static void check_clock(PGconn *conn, const char *side, const char *name, const config_t *cfg,
                        check_report_t *r, double *offset)
{
	double before, after, server, off, unc, limit = (double)cfg->max_clock_offset / 1000.0;
	PGresult *res;

	*offset = NAN;
	before = (double)util_realtime_us() / 1e6;
	res = PQexec(conn, "SELECT extract(epoch FROM clock_timestamp())");
	after = (double)util_realtime_us() / 1e6;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		check_add(r, CHECK_WARNING, name, "check that the server answers",
		          "could not read the %s's clock", side);
		PQclear(res);
		return;
	}
	server = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	off = server - (before + after) / 2;
	unc = (after - before) / 2;
	*offset = off;
	if (fabs(off) - unc > limit)
		check_add(r, CHECK_WARNING, name,
		          "synchronise both hosts' clocks (NTP, chrony); the sink counts an offset "
		          "beyond max_clock_offset as a clock fault",
		          "the %s's clock is %+.3f s off this host's (± %.3f s), beyond "
		          "max_clock_offset = %.3f s",
		          side, off, unc, limit);
	else
		check_add(r, CHECK_OK, name, NULL,
		          "the %s's clock is %+.3f s off this host's (± %.3f s)", side, off, unc);
}

/* A session to one of the databases, or NULL with the line added: an error,
 * or a warning at start (the daemons retry until the server answers). */
static PGconn *connect_side(const char *conninfo, const char *side, const char *name,
                            check_report_t *r)
{
	pgf_error_t err;
	PGconn *c;

	/* a host that does not answer must not hold a daemon's start for
	 * minutes: a connect_timeout after the string's own wins over it */
	const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
	const char *values[] = {conninfo, "pgferry check", "10", NULL};

	error_clear(&err);
	c = PQconnectdbParams(keys, values, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		error_set(&err, PGF_E_DATABASE, "cannot connect to the %s: %s", side,
		          c ? PQerrorMessage(c) : "out of memory");
		error_hint(&err, "Check %s and that the server is up.",
		           strcmp(side, "primary") == 0 ? "primary_conninfo" : "dr_conninfo");
		PQfinish(c);
		c = NULL;
	}
	if (c == NULL) {
		size_t n = strlen(err.message);
		while (n > 0 && (err.message[n - 1] == '\n' || err.message[n - 1] == ' '))
			err.message[--n] = '\0';
		for (char *p = err.message; *p; p++)
			if (*p == '\n')
				*p = ' ';
		check_add(r, r->at_start ? CHECK_WARNING : CHECK_ERROR, name,
		          r->at_start ? "pgferry retries until the server answers" : err.hint, "%s",
		          err.message);
		return NULL;
	}
	check_add(r, CHECK_OK, name, NULL, "connected to the %s as %s (PostgreSQL %d)", side,
	          PQuser(c), PQserverVersion(c) / 10000);
	return c;
}

int check_work_dir(const char *dir, pgf_error_t *err)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		return error_set(err, PGF_E_CONFIG, "could not read work_dir \"%s\": %s", dir,
		                 strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return error_set(err, PGF_E_CONFIG, "work_dir \"%s\" is not a directory", dir);
	if (st.st_mode & S_IWOTH) {
		error_set(err, PGF_E_CONFIG,
		          "work_dir \"%s\" is writable by other users (mode %04o)", dir,
		          (unsigned)(st.st_mode & 07777));
		error_detail(err, "The sink writes its spill and spool files there.");
		error_hint(err, "Give the sink a directory of its own: chmod o-w, or 0700.");
		return PGF_ERR;
	}
	return PGF_OK;
}

/* work_dir as the sink will use it: one that does not exist yet is made
 * (0700) at start. */
static void check_sink_work_dir(const config_t *cfg, check_report_t *r)
{
	pgf_error_t err;
	struct stat st;

	error_clear(&err);
	if (stat(cfg->work_dir, &st) != 0 && errno == ENOENT)
		check_add(r, CHECK_OK, "work_dir", NULL, "\"%s\" will be created (mode 0700)",
		          cfg->work_dir);
	else if (check_work_dir(cfg->work_dir, &err) != PGF_OK)
		check_add(r, CHECK_ERROR, "work_dir", err.hint[0] ? err.hint : "check work_dir",
		          "%s", err.message);
	else
		check_add(r, CHECK_OK, "work_dir", NULL,
		          "\"%s\" is a directory no other user may write to", cfg->work_dir);
}

/* The stream's origin as clone will name it (pgferry.origin_name): the
 * primary's system identifier, database and the slot. */
static bool clone_origin_name(PGconn *primary, const config_t *cfg, char *out, size_t len)
{
	PGresult *res = PQexec(primary, "SELECT system_identifier, current_database() FROM "
	                                "pg_catalog.pg_control_system()");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		snprintf(out, len, "pgferry_%s_%s_%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		         cfg->slot_name);
	PQclear(res);
	return ok;
}

void check_run(const config_t *cfg, check_role_t role, check_report_t *r)
{
	PGconn *primary = NULL, *dr = NULL;
	double primary_offset = NAN, dr_offset = NAN;

	if (role != CHECK_ROLE_CLONE)
		check_tls_files(cfg, role, r);
	if (role == CHECK_ROLE_SINK)
		check_sink_work_dir(cfg, r);
	if (role == CHECK_ROLE_SINK && !r->at_start)
		check_sink_ports(cfg, r);
	if (role == CHECK_ROLE_SOURCE && !r->at_start)
		check_sink_reachable(cfg, r);
	if (role != CHECK_ROLE_SINK) {
		primary = connect_side(cfg->primary_conninfo, "primary", "primary_connection", r);
		if (primary != NULL) {
			primary_check_report(primary, cfg, role == CHECK_ROLE_CLONE, r);
			check_clock(primary, "primary", "clock_primary", cfg, r, &primary_offset);
		}
	}
	if (role != CHECK_ROLE_SOURCE) {
		dr = connect_side(cfg->dr_conninfo, "DR database", "dr_connection", r);
		if (dr != NULL) {
			dr_check_rights(dr, r);
			if (role == CHECK_ROLE_SINK)
				dr_check_origin(dr, NULL, false, r);
			else if (primary != NULL) {
				char origin[600];
				if (clone_origin_name(primary, cfg, origin, sizeof(origin)))
					dr_check_origin(dr, origin, true, r);
				else
					check_add(
					        r, CHECK_WARNING, "replication_origin",
					        "grant the role EXECUTE on pg_control_system() on "
					        "the primary to have it checked",
					        "could not read the primary's system identifier: "
					        "the "
					        "origin clone makes was not checked");
			}
			check_clock(dr, "DR database", "clock_dr", cfg, r, &dr_offset);
		}
	}
	if (!isnan(primary_offset) && !isnan(dr_offset)) {
		double between = primary_offset - dr_offset,
		       limit = (double)cfg->max_clock_offset / 1000.0;
		if (fabs(between) > limit)
			check_add(r, CHECK_WARNING, "clock_hosts",
			          "synchronise the hosts' clocks (NTP, chrony)",
			          "the primary's clock is %+.3f s off the DR database's, beyond "
			          "max_clock_offset = %.3f s",
			          between, limit);
		else
			check_add(r, CHECK_OK, "clock_hosts", NULL,
			          "the primary's clock is %+.3f s off the DR database's", between);
	}
	PQfinish(primary);
	PQfinish(dr);
}

int check_at_start(const config_t *cfg, check_role_t role, pgf_error_t *err)
{
	check_report_t r;
	size_t i, errors = 0;

	check_report_init(&r);
	r.at_start = true;
	check_run(cfg, role, &r);
	for (i = 0; i < r.count; i++) {
		char line[1400];
		check_format_item(&r.items[i], line, sizeof(line));
		if (r.items[i].level == CHECK_ERROR)
			errors++;
		log_write(r.items[i].level == CHECK_OK        ? LOG_DEBUG
		          : r.items[i].level == CHECK_WARNING ? LOG_WARNING
		                                              : LOG_ERROR,
		          "check %s", line);
	}
	check_report_free(&r);
	if (errors == 0)
		return PGF_OK;
	error_set(err, PGF_E_CONFIG, "the pre-flight check found %zu error%s (above); not starting",
	          errors, errors == 1 ? "" : "s");
	error_hint(err, "\"pgferry check --config FILE\" runs the same checks and prints each.");
	return PGF_ERR;
}

/* The role from --role, else from the keys the configuration sets: a
 * sink_address is a source's, a work_dir a sink's, both connections and
 * neither of those a clone's. */
static int pick_role(const cli_t *cli, const char *given, check_role_t *role, pgf_error_t *err)
{
	const config_t *c = &cli->cfg;

	if (given != NULL) {
		if (strcmp(given, "source") == 0)
			*role = CHECK_ROLE_SOURCE;
		else if (strcmp(given, "sink") == 0)
			*role = CHECK_ROLE_SINK;
		else if (strcmp(given, "clone") == 0)
			*role = CHECK_ROLE_CLONE;
		else
			return error_set(err, PGF_E_USAGE,
			                 "--role must be source, sink or clone, not \"%s\"", given);
		return PGF_OK;
	}
	if (c->sink_address != NULL && c->work_dir == NULL)
		*role = CHECK_ROLE_SOURCE;
	else if (c->work_dir != NULL && c->sink_address == NULL)
		*role = CHECK_ROLE_SINK;
	else if (c->sink_address == NULL && c->primary_conninfo != NULL && c->dr_conninfo != NULL)
		*role = CHECK_ROLE_CLONE;
	else {
		error_set(err, PGF_E_USAGE, "cannot tell which role this configuration is for");
		error_detail(err, "A source's sets sink_address, a sink's work_dir, a clone's "
		                  "primary_conninfo and dr_conninfo without either.");
		error_hint(err, "Say it: --role source, --role sink or --role clone.");
		return PGF_ERR;
	}
	return PGF_OK;
}

static int role_bits(check_role_t role)
{
	return role == CHECK_ROLE_SOURCE ? ROLE_SOURCE
	       : role == CHECK_ROLE_SINK ? ROLE_SINK
	                                 : ROLE_ADMIN;
}

static void print_json(const check_report_t *r, const char *role)
{
	json_t *doc = json_object(), *list = json_array();
	size_t i;
	char *text;

	json_object_set_new(doc, "role", role ? json_string(role) : json_null());
	json_object_set_new(doc, "result", json_string(level_name(check_report_worst(r))));
	for (i = 0; i < r->count; i++) {
		const check_item_t *it = &r->items[i];
		json_t *o = json_object();
		json_object_set_new(o, "check", json_string(it->name));
		json_object_set_new(o, "status", json_string(level_name(it->level)));
		json_object_set_new(o, "message", json_string(it->message));
		json_object_set_new(o, "fix", it->fix[0] ? json_string(it->fix) : json_null());
		json_array_append_new(list, o);
	}
	json_object_set_new(doc, "checks", list);
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(doc);
}

static void print_text(const check_report_t *r, const char *role)
{
	size_t i, n[3] = {0, 0, 0};

	for (i = 0; i < r->count; i++) {
		char line[1400];
		check_format_item(&r->items[i], line, sizeof(line));
		printf("%s\n", line);
		n[r->items[i].level]++;
	}
	printf("pgferry check (%s): %zu ok, %zu warning%s, %zu error%s\n", role ? role : "?", n[0],
	       n[1], n[1] == 1 ? "" : "s", n[2], n[2] == 1 ? "" : "s");
}

int cmd_check(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	check_report_t r;
	check_role_t role = CHECK_ROLE_SOURCE;
	const char *given = NULL, *role_text = NULL;
	bool json = false, ok;
	int i, rc;

	error_clear(&err);
	check_report_init(&r);
	ok = cli_load(argc, argv, 0, &cli, &err) == PGF_OK;
	for (i = 1; ok && i < cli.argc; i++) {
		if (strcmp(cli.argv[i], "--json") == 0)
			json = true;
		else if (strcmp(cli.argv[i], "--role") == 0 && i + 1 < cli.argc)
			given = cli.argv[++i];
	}
	if (ok)
		ok = pick_role(&cli, given, &role, &err) == PGF_OK;
	if (ok) {
		role_text = check_role_name(role);
		ok = config_check(&cli.cfg, role_bits(role), &err) == PGF_OK;
	}
	if (ok) {
		cli_configure_logging(&cli, "check");
		check_add(&r, CHECK_OK, "configuration", NULL,
		          "the configuration is complete for %s", role_text);
		check_run(&cli.cfg, role, &r);
	} else {
		char msg[1100];
		snprintf(msg, sizeof(msg), "%s%s%s%s%s", err.message, err.where[0] ? " (" : "",
		         err.where, err.where[0] ? ")" : "", err.detail[0] ? ". " : "");
		check_add(&r, CHECK_ERROR, "configuration",
		          err.hint[0] ? err.hint : "correct the configuration", "%s%s", msg,
		          err.detail);
	}
	if (json)
		print_json(&r, role_text);
	else
		print_text(&r, role_text);
	rc = (int)check_report_worst(&r);
	check_report_free(&r);
	cli_free(&cli);
	return rc;
}
