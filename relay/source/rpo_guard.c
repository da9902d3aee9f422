/*
 * rpo_guard.c — the RPO guard of `pgferry source` (rpo_guard.h).
 *
 * The source reports to the walsender as flushed only what the DR database
 * committed (source_send_status), so a primary that lists the source's
 * application_name in synchronous_standby_names makes each commit wait until
 * the DR side holds it. The guard turns that on when the RPO bound passes
 * rpo_guard_budget and off again when it is back under half of it, when the
 * DR side confirms nothing for rpo_guard_max_wait (availability over RPO) and
 * when the source stops. The DBA's own entries are parsed and kept; the
 * guard only ever adds or removes its own name. A watchdog process (forked
 * before any connection exists) holds the other end of a pipe: when the
 * source dies without releasing, the pipe closes and the watchdog releases.
 */
#include "pgferry/rpo_guard.h"

#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- the guard ----------------------------------------------------------------- */

#define FACTS_MAX 4096
#define SSN_TEXT  4096

typedef struct {
	uint64_t lsn;
	double sent_at;     /* the heartbeat query was sent (before its statement ran) */
	double returned_at; /* its result came back (its commit happened before) */
} guard_fact_t;

struct rpo_guard {
	const config_t *cfg;
	rpo_guard_state_t state;
	char reason[256];
	uint64_t engagements;

	guard_fact_t *facts; /* ring, oldest first, not yet confirmed by the DR side */
	size_t head, count;
	double proof_at; /* the DR side held every commit before this (0: no proof yet) */
	uint64_t applied_lsn;
	double progress_at;   /* when the DR side last confirmed something new */
	double engaged_at;    /* when engaged */
	bool wait_progress;   /* released for max_wait: engage again only after progress */
	bool leftover_done;   /* the value left by an earlier run was looked at */
	double retry_at;      /* after a failed change, not before this */
	double last_bound_ms; /* for the report */

	PGconn *conn;             /* the guard's own connection to the primary */
	char app_name[256];       /* the source's application_name there */
	char original[SSN_TEXT];  /* the value before engaging */
	char set_value[SSN_TEXT]; /* the value the guard set */

	int watchdog_fd; /* write end of the pipe to the watchdog (-1: none) */
	pid_t watchdog_pid;
	bool watchdog_warned;
};

double rpo_guard_clock(void)
{
	return util_monotonic_s();
}

static PGconn *guard_connect(const config_t *cfg, char *app_name, size_t len, pgf_error_t *err)
{
	/* short timeouts: the source's loop waits for these calls */
	const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
	const char *values[] = {cfg->primary_conninfo, "pgferry", "5", NULL};
	PGconn *c = PQconnectdbParams(keys, values, 1);
	PGresult *res;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		error_set(err, PGF_E_DATABASE, "cannot connect to the primary: %s",
		          c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	res = pgsession_query(c, "primary", "SET statement_timeout = 5000", 0, NULL, err);
	if (res == NULL) {
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	/* the walsender's name: same connection string, same fallback name */
	res = pgsession_query(c, "primary", "SELECT current_setting('application_name')", 0, NULL,
	                      err);
	if (res == NULL) {
		PQfinish(c);
		return NULL;
	}
	snprintf(app_name, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return c;
}

/* The role may change synchronous_standby_names and reload (README). */
static int guard_check_privileges(PGconn *c, pgf_error_t *err)
{
	PGresult *res = pgsession_query(
	        c, "primary",
	        "SELECT has_parameter_privilege('synchronous_standby_names', 'ALTER SYSTEM'), "
	        "has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE'), current_user",
	        0, NULL, err);
	bool ok;

	if (res == NULL)
		return PGF_ERR;
	ok = strcmp(PQgetvalue(res, 0, 0), "t") == 0 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	if (!ok) {
		error_set(
		        err, PGF_E_CONFIG,
		        "rpo_guard = on, but role \"%s\" may not change synchronous_standby_names "
		        "on the primary",
		        PQgetvalue(res, 0, 2));
		error_hint(err,
		           "As a superuser on the primary: GRANT ALTER SYSTEM ON PARAMETER "
		           "synchronous_standby_names TO %s; GRANT EXECUTE ON FUNCTION "
		           "pg_catalog.pg_reload_conf() TO %s; (sql/primary_setup.sql), or set "
		           "rpo_guard = off.",
		           PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return ok ? PGF_OK : PGF_ERR;
}

static int guard_read_names(PGconn *c, char *out, size_t len, pgf_error_t *err)
{
	PGresult *res = pgsession_query(
	        c, "primary", "SELECT current_setting('synchronous_standby_names')", 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return PGF_OK;
}

/* ALTER SYSTEM, then the reload; waits (a few seconds at most) until this
 * session sees the new value, so that the next read is not the old one. */
static int guard_write_names(PGconn *c, const char *value, pgf_error_t *err)
{
	char *lit = PQescapeLiteral(c, value, strlen(value));
	char sql[SSN_TEXT * 2 + 80], now[SSN_TEXT];
	PGresult *res;

	if (lit == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	snprintf(sql, sizeof(sql), "ALTER SYSTEM SET synchronous_standby_names = %s", lit);
	PQfreemem(lit);
	res = pgsession_query(c, "primary", sql, 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	PQclear(res);
	res = pgsession_query(c, "primary", "SELECT pg_catalog.pg_reload_conf()", 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	PQclear(res);
	for (int i = 0; i < 100; i++) {
		if (guard_read_names(c, now, sizeof(now), err) != PGF_OK)
			return PGF_ERR;
		if (strcmp(now, value) == 0)
			return PGF_OK;
		util_sleep_ms(30);
	}
	log_warning("synchronous_standby_names was set to '%s' but this session still reads '%s'",
	            value, now);
	return PGF_OK;
}

/* The value without this source's name: the original when nobody changed
 * it meanwhile, else whatever the DBA has now, minus our name. */
static int guard_release_value(const char *current, const char *name, const char *set_value,
                               const char *original, char *out, size_t len, pgf_error_t *err)
{
	if (set_value[0] && (strcmp(current, set_value) == 0 || strcmp(current, original) == 0)) {
		snprintf(out, len, "%s", original);
		return 1;
	}
	return rpo_guard_names_remove(current, name, out, len, err);
}

/* ---- the watchdog ----------------------------------------------------------- */

/* The watchdog reads "E<set value>\t<original>\n" (engaged) and "R\n"
 * (released) from the source. On end of file it releases, if the last word
 * was E, and exits. It ignores SIGINT and SIGTERM: the source releases on
 * those itself, and a service manager that signals the whole group after
 * the source died must not stop the watchdog before it released. */
static void watchdog_release(const config_t *cfg, const char *set_value, const char *original)
{
	double give_up = rpo_guard_clock() + (double)cfg->rpo_guard_max_wait / 1000.0 + 10.0;
	char app[256], current[SSN_TEXT], target[SSN_TEXT];
	bool said = false;

	for (;;) {
		pgf_error_t err;
		PGconn *c;
		error_clear(&err);
		c = guard_connect(cfg, app, sizeof(app), &err);
		if (c != NULL && guard_read_names(c, current, sizeof(current), &err) == PGF_OK &&
		    guard_release_value(current, app, set_value, original, target, sizeof(target),
		                        &err) >= 0 &&
		    (strcmp(target, current) == 0 ||
		     guard_write_names(c, target, &err) == PGF_OK)) {
			log_warning("RPO guard watchdog: the source ended with the guard engaged; "
			            "released it: synchronous_standby_names = '%s' (was '%s')",
			            target, current);
			PQfinish(c);
			return;
		}
		PQfinish(c);
		if (!said)
			log_error_value(LOG_ERROR, &err);
		said = true;
		if (rpo_guard_clock() > give_up) {
			log_error(
			        "RPO guard watchdog: could not release the guard; the primary's "
			        "commits wait for this source, which is gone. As a superuser on "
			        "the "
			        "primary: ALTER SYSTEM SET synchronous_standby_names = '%s'; "
			        "SELECT "
			        "pg_reload_conf(); (or start the source again: it releases what it "
			        "finds left)",
			        original);
			return;
		}
		util_sleep_ms(1000);
	}
}

static void watchdog_main(int fd, const config_t *cfg)
{
	static char line[SSN_TEXT * 2 + 4], set_value[sizeof(line)], original[sizeof(line)];
	size_t n = 0;
	bool engaged = false;

	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (ch != '\n') {
			if (n + 1 < sizeof(line))
				line[n++] = ch;
			continue;
		}
		line[n] = '\0';
		n = 0;
		if (line[0] == 'E') {
			char *tab = strchr(line + 1, '\t');
			if (tab == NULL)
				continue;
			*tab = '\0';
			snprintf(set_value, sizeof(set_value), "%s", line + 1);
			snprintf(original, sizeof(original), "%s", tab + 1);
			engaged = true;
		} else if (line[0] == 'R')
			engaged = false;
	}
	if (engaged)
		watchdog_release(cfg, set_value, original);
}

static int watchdog_start(rpo_guard_t *g, pgf_error_t *err)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds) != 0)
		return error_set(err, PGF_E_IO, "cannot create the RPO guard's pipe: %s",
		                 strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return error_set(err, PGF_E_IO, "cannot start the RPO guard's watchdog: %s",
		                 strerror(errno));
	}
	if (pid == 0) {
		close(fds[1]);
		watchdog_main(fds[0], g->cfg);
		_exit(0);
	}
	close(fds[0]);
	g->watchdog_fd = fds[1];
	g->watchdog_pid = pid;
	return PGF_OK;
}

static void watchdog_tell(rpo_guard_t *g, bool engaged)
{
	char msg[SSN_TEXT * 2 + 4];
	int n;

	if (g->watchdog_fd < 0)
		return;
	if (engaged)
		n = snprintf(msg, sizeof(msg), "E%s\t%s\n", g->set_value, g->original);
	else
		n = snprintf(msg, sizeof(msg), "R\n");
	if (n < 0 || (size_t)n >= sizeof(msg) ||
	    util_write_all(g->watchdog_fd, msg, (size_t)n) != 0) {
		if (!g->watchdog_warned)
			log_warning(
			        "the RPO guard's watchdog (pid %d) is gone: a source killed with "
			        "the guard engaged would leave the primary waiting until it is "
			        "restarted",
			        (int)g->watchdog_pid);
		g->watchdog_warned = true;
	}
}

/* ---- deciding ----------------------------------------------------------------- */

rpo_guard_t *rpo_guard_create(const config_t *cfg, pgf_error_t *err)
{
	rpo_guard_t *g = calloc(1, sizeof(*g));

	if (g == NULL || (g->facts = calloc(FACTS_MAX, sizeof(guard_fact_t))) == NULL) {
		free(g);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	g->cfg = cfg;
	g->state = RPO_GUARD_RELEASED;
	g->watchdog_fd = -1;
	g->last_bound_ms = -1;
	snprintf(g->reason, sizeof(g->reason), "not engaged yet");
	/* a role without the privileges is refused at once, not at the first
	 * stall; an unreachable primary is looked at again later */
	{
		pgf_error_t e2;
		PGconn *c;
		error_clear(&e2);
		c = guard_connect(cfg, g->app_name, sizeof(g->app_name), &e2);
		if (c != NULL && guard_check_privileges(c, err) != PGF_OK) {
			PQfinish(c);
			free(g->facts);
			free(g);
			return NULL;
		}
		PQfinish(c);
	}
	if (watchdog_start(g, err) != PGF_OK) {
		free(g->facts);
		free(g);
		return NULL;
	}
	return g;
}

static bool guard_connection(rpo_guard_t *g, pgf_error_t *err)
{
	if (g->conn != NULL && PQstatus(g->conn) == CONNECTION_OK)
		return true;
	PQfinish(g->conn);
	g->conn = guard_connect(g->cfg, g->app_name, sizeof(g->app_name), err);
	return g->conn != NULL;
}

static void guard_failed(rpo_guard_t *g, const char *what, const pgf_error_t *err)
{
	log_warning("RPO guard: could not %s: %s", what, err->message);
	PQfinish(g->conn);
	g->conn = NULL;
	g->retry_at = rpo_guard_clock() + 5.0;
}

/* The source's bound, in ms: since the newest proof; before any, the age
 * of the oldest unconfirmed fact (its heartbeat committed before it came
 * back, and the DR side does not have it). -1: nothing known. */
static double guard_bound_ms(const rpo_guard_t *g, double now, bool *proven)
{
	*proven = g->proof_at > 0;
	if (g->proof_at > 0)
		return (now - g->proof_at) * 1000.0;
	if (g->count > 0)
		return (now - g->facts[g->head].returned_at) * 1000.0;
	return -1;
}

static void guard_engage(rpo_guard_t *g, double bound_ms)
{
	pgf_error_t err;
	char current[SSN_TEXT], merged[SSN_TEXT];
	int rc;

	error_clear(&err);
	if (!guard_connection(g, &err) ||
	    guard_read_names(g->conn, current, sizeof(current), &err) != PGF_OK) {
		guard_failed(g, "engage", &err);
		return;
	}
	rc = rpo_guard_names_add(current, g->app_name, merged, sizeof(merged), &err);
	if (rc < 0) {
		log_error_value(LOG_ERROR, &err);
		g->retry_at = rpo_guard_clock() + 60.0;
		return;
	}
	if (rc == 0 && guard_write_names(g->conn, merged, &err) != PGF_OK) {
		guard_failed(g, "engage", &err);
		return;
	}
	snprintf(g->original, sizeof(g->original), "%s", current);
	snprintf(g->set_value, sizeof(g->set_value), "%s", merged);
	g->state = RPO_GUARD_ENGAGED;
	g->engaged_at = rpo_guard_clock();
	g->engagements++;
	snprintf(g->reason, sizeof(g->reason),
	         "engaged: the RPO bound was %.1f s, over rpo_guard_budget %.1f s",
	         bound_ms / 1000.0, (double)g->cfg->rpo_guard_budget / 1000.0);
	watchdog_tell(g, true);
	log_warning("RPO guard engaged: the RPO bound is %.1f s, over rpo_guard_budget %.1f s; "
	            "the primary's commits now wait until the DR side holds them "
	            "(synchronous_standby_names = '%s', was '%s'). It is released when the bound "
	            "is under %.1f s, after %.1f s without DR progress (rpo_guard_max_wait), or "
	            "when the source stops. By hand: ALTER SYSTEM SET synchronous_standby_names "
	            "= '%s'; SELECT pg_reload_conf();",
	            bound_ms / 1000.0, (double)g->cfg->rpo_guard_budget / 1000.0, merged, current,
	            (double)g->cfg->rpo_guard_budget / 2000.0,
	            (double)g->cfg->rpo_guard_max_wait / 1000.0, current);
}

/* Takes this source's name out; returns false when the primary could not
 * be changed (tried again later). */
static bool guard_unset(rpo_guard_t *g, char *was, char *now, size_t len)
{
	pgf_error_t err;
	int rc;

	error_clear(&err);
	if (!guard_connection(g, &err) || guard_read_names(g->conn, was, len, &err) != PGF_OK) {
		guard_failed(g, "release", &err);
		return false;
	}
	rc = guard_release_value(was, g->app_name, g->set_value, g->original, now, len, &err);
	if (rc < 0) {
		log_error_value(LOG_ERROR, &err);
		return false;
	}
	if (strcmp(now, was) != 0 && guard_write_names(g->conn, now, &err) != PGF_OK) {
		guard_failed(g, "release", &err);
		return false;
	}
	return true;
}

static void guard_release(rpo_guard_t *g, double bound_ms, const char *why)
{
	char was[SSN_TEXT], now[SSN_TEXT];
	double held = rpo_guard_clock() - g->engaged_at;

	if (!guard_unset(g, was, now, sizeof(was)))
		return;
	g->state = RPO_GUARD_RELEASED;
	g->set_value[0] = '\0';
	snprintf(g->reason, sizeof(g->reason), "released: %s", why);
	watchdog_tell(g, false);
	if (bound_ms >= 0)
		log_warning("RPO guard released after %.1f s: %s (RPO bound %.1f s); the primary "
		            "commits asynchronously again (synchronous_standby_names = '%s')",
		            held, why, bound_ms / 1000.0, now);
	else
		log_warning("RPO guard released after %.1f s: %s; the primary commits "
		            "asynchronously again (synchronous_standby_names = '%s')",
		            held, why, now);
}

/* A value left by a source that died with its watchdog: this source's name
 * is in the list although it engaged nothing. */
static void guard_leftover(rpo_guard_t *g)
{
	pgf_error_t err;
	char current[SSN_TEXT], target[SSN_TEXT];

	error_clear(&err);
	if (!guard_connection(g, &err) ||
	    guard_read_names(g->conn, current, sizeof(current), &err) != PGF_OK) {
		guard_failed(g, "read synchronous_standby_names", &err);
		return;
	}
	g->leftover_done = true;
	if (rpo_guard_names_remove(current, g->app_name, target, sizeof(target), &err) != 1)
		return;
	if (guard_write_names(g->conn, target, &err) != PGF_OK) {
		g->leftover_done = false;
		guard_failed(g, "release what an earlier run left", &err);
		return;
	}
	log_warning("RPO guard: synchronous_standby_names listed this source (\"%s\"), left by an "
	            "earlier run that did not release it; released: '%s' (was '%s')",
	            g->app_name, target, current);
}

void rpo_guard_on_fact(rpo_guard_t *g, uint64_t position_lsn, double sent_at)
{
	guard_fact_t *tail;
	double now = rpo_guard_clock();

	if (g == NULL || position_lsn == 0)
		return;
	if (position_lsn <= g->applied_lsn) {
		if (sent_at > g->proof_at)
			g->proof_at = sent_at;
		return;
	}
	if (g->count > 0) {
		tail = &g->facts[(g->head + g->count - 1) % FACTS_MAX];
		if (position_lsn <= tail->lsn)
			return;
		if (g->count == FACTS_MAX) {
			/* full: the newest moves forward, a later proof, never an earlier */
			tail->lsn = position_lsn;
			tail->sent_at = sent_at;
			return;
		}
	}
	tail = &g->facts[(g->head + g->count) % FACTS_MAX];
	tail->lsn = position_lsn;
	tail->sent_at = sent_at;
	tail->returned_at = now;
	g->count++;
}

void rpo_guard_on_applied(rpo_guard_t *g, uint64_t applied_lsn)
{
	if (g == NULL || applied_lsn <= g->applied_lsn)
		return;
	g->applied_lsn = applied_lsn;
	g->progress_at = rpo_guard_clock();
	g->wait_progress = false;
	while (g->count > 0 && g->facts[g->head].lsn <= applied_lsn) {
		if (g->facts[g->head].sent_at > g->proof_at)
			g->proof_at = g->facts[g->head].sent_at;
		g->head = (g->head + 1) % FACTS_MAX;
		g->count--;
	}
}

void rpo_guard_tick(rpo_guard_t *g, bool streaming)
{
	double now = rpo_guard_clock(), budget, bound, max_wait, since;
	bool proven;

	if (g == NULL || now < g->retry_at)
		return;
	if (!g->leftover_done) {
		guard_leftover(g);
		if (!g->leftover_done)
			return;
	}
	budget = (double)g->cfg->rpo_guard_budget;
	max_wait = (double)g->cfg->rpo_guard_max_wait / 1000.0;
	bound = guard_bound_ms(g, now, &proven);
	g->last_bound_ms = bound;
	if (g->state == RPO_GUARD_ENGAGED) {
		since = g->progress_at > g->engaged_at ? g->progress_at : g->engaged_at;
		if (now - since > max_wait) {
			char why[200];
			snprintf(why, sizeof(why),
			         "the DR side confirmed nothing for %.1f s (rpo_guard_max_wait "
			         "%.1f s)",
			         now - since, max_wait);
			g->wait_progress = true;
			guard_release(g, bound, why);
		} else if (proven && bound <= budget / 2)
			guard_release(g, bound,
			              "the RPO bound is back under half of rpo_guard_budget");
		return;
	}
	if (streaming && !g->wait_progress && bound > budget)
		guard_engage(g, bound);
}

void rpo_guard_release(rpo_guard_t *g, const char *why)
{
	bool proven;

	if (g == NULL || g->state != RPO_GUARD_ENGAGED)
		return;
	g->retry_at = 0;
	guard_release(g, guard_bound_ms(g, rpo_guard_clock(), &proven), why);
}

void rpo_guard_fill_report(rpo_guard_t *g, rpo_guard_report_t *r)
{
	bool proven;
	double b;

	memset(r, 0, sizeof(*r));
	if (g == NULL)
		return;
	b = guard_bound_ms(g, rpo_guard_clock(), &proven);
	r->state = (uint8_t)g->state;
	r->bound_ms = b < 0 ? -1 : (int64_t)b;
	r->engagements = g->engagements;
	snprintf(r->reason, sizeof(r->reason), "%s", g->reason);
}

void rpo_guard_free(rpo_guard_t *g)
{
	if (g == NULL)
		return;
	rpo_guard_release(g, "the source stops");
	PQfinish(g->conn);
	if (g->watchdog_fd >= 0) {
		/* the watchdog reads the end of the pipe and exits (it releases
		 * first if the release above failed) */
		close(g->watchdog_fd);
	}
	free(g->facts);
	free(g);
}
