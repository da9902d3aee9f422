/*
 * dispatch.c — one handler per pgoutput message kind behind apply_message,
 * and the error context every error of apply carries.
 *
 * apply_record takes a message as the sink's network thread found it (its
 * type, xid and, unless it is a change, what it said: pgoutput_facts_t),
 * decodes a change's body, its only decoding, and hands the message to
 * apply_handle_<kind>. apply_message (replay) finds the same from the raw
 * bytes first. Inside a Stream Start/Stop block every message goes to the
 * spill file (spill.c) instead; a Stream Commit replays it through the same
 * handlers.
 * When a handler fails, apply_error_context names the source transaction
 * (xid and commit LSN) in the error's where, unless the handler said
 * something more precise (the statement, the relation, the command).
 */
#include "apply_internal.h"

#include "pgferry/replication.h"

#include "pgferry/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Adds where the error happened, if the handler did not: the source
 * transaction being applied, or the message's position outside one. */
static void apply_error_context(const apply_t *a, uint64_t wal_start, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN];

	if (err->where[0] != '\0')
		return;
	if (dr_group_in_source_transaction(&a->group.sm))
		error_where(err, "transaction %u ending at %s", a->txn.xid,
		            lsn_format(a->txn.lsn, lsn));
	else if (wal_start != 0)
		error_where(err, "message at %s", lsn_format(wal_start, lsn));
}

/* ---- changes: inside a transaction, or replayed from a spill file ---------- */

static int apply_handle_relation(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	/* the same description again (after a VACUUM or ANALYZE on the
	 * primary, say): nothing changes, held images stay held */
	if (relcache_same(a->relcache, m))
		return PGF_OK;
	/* held images follow the old description: write them first */
	if (!coalesce_empty(&a->net) && rows_flush_held(a, err) != PGF_OK)
		return PGF_ERR;
	return relcache_update(a->relcache, m, err);
}

/* Holds the change as a net change when its table allows it (coalesce.h);
 * otherwise writes what is held, then the change, so order is kept. */
static int apply_handle_row(apply_t *a, const pgoutput_message_t *m, size_t len, pgf_error_t *err)
{
	uint32_t relid = m->type == PGOUTPUT_INSERT   ? m->u.insert.relid
	                 : m->type == PGOUTPUT_UPDATE ? m->u.update.relid
	                                              : m->u.delete_.relid;
	const tuple_t *t = m->type == PGOUTPUT_INSERT   ? &m->u.insert.new_tuple
	                   : m->type == PGOUTPUT_UPDATE ? &m->u.update.new_tuple
	                                                : &m->u.delete_.old_tuple;
	const relcache_entry_t *rel;
	bool taken;

	a->group.bytes += len;
	rel = rows_relation(a, relid, err);
	if (rel == NULL || rows_check_tuple(rel, t, err) != PGF_OK)
		return PGF_ERR;
	if (coalesce_add(&a->net, schema_coalesce_mode(&a->schema, rel), rel, m->type,
	                 m->type == PGOUTPUT_UPDATE && m->u.update.old_kind != 0, t, &taken,
	                 err) != PGF_OK)
		return PGF_ERR;
	if (taken) {
		a->group.rows++;
		return PGF_OK;
	}
	if (!coalesce_empty(&a->net) && rows_flush_held(a, err) != PGF_OK)
		return PGF_ERR;
	if (m->type == PGOUTPUT_INSERT)
		return rows_insert(a, relid, t, err);
	return m->type == PGOUTPUT_UPDATE ? rows_update(a, m, err) : rows_delete(a, m, err);
}

static int apply_handle_truncate(apply_t *a, const pgoutput_message_t *m, size_t len,
                                 pgf_error_t *err)
{
	a->group.bytes += len;
	if (!coalesce_empty(&a->net) && rows_flush_held(a, err) != PGF_OK)
		return PGF_ERR;
	return rows_truncate(a, m, err);
}

/* Relation, Type and row changes, inside a transaction (or a replay). */
static int apply_change(apply_t *a, const pgoutput_message_t *m, size_t len, pgf_error_t *err)
{
	switch (m->type) {
	case PGOUTPUT_RELATION:
		return apply_handle_relation(a, m, err);
	case PGOUTPUT_TYPE:
		return relcache_update_type(a->relcache, m, err);
	case PGOUTPUT_INSERT:
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE:
		return apply_handle_row(a, m, len, err);
	case PGOUTPUT_TRUNCATE:
		return apply_handle_truncate(a, m, len, err);
	case PGOUTPUT_MESSAGE:
		return own_message_apply(a, m, err);
	case PGOUTPUT_ORIGIN:
		return PGF_OK;
	default:
		return error_set(err, PGF_E_PROTOCOL, "unexpected %s message inside a transaction",
		                 pgoutput_type_name(m->type));
	}
}

/* ---- transaction boundaries ------------------------------------------------ */

static int apply_handle_begin(apply_t *a, const pgoutput_message_t *m, uint64_t wal_start,
                              pgf_error_t *err)
{
	const dr_group_t *g = &a->group.sm;
	uint64_t final_lsn = m->u.begin.final_lsn;
	char lsn[LSN_TEXT_LEN];

	if (dr_group_in_source_transaction(g))
		return error_set(err, PGF_E_PROTOCOL, "BEGIN inside a transaction at %s",
		                 lsn_format(wal_start, lsn));
	/* the origin's progress is the end of the last applied commit:
	 * a commit before it was applied already and must not be twice */
	if (final_lsn < a->group.progress_lsn) {
		a->txn.xid = m->u.begin.xid;
		a->txn.lsn = final_lsn;
		return dr_group_transition(&a->group.sm, DR_GROUP_SKIP, err);
	}
	/* its commit is not here yet: secure the whole transactions first,
	 * durably: input paused mid-transaction, so this is where the
	 * figures (and the slot) must catch up */
	if (a->hooks.received_commit != NULL && g->state == DR_GROUP_OPEN && a->group.txns > 0 &&
	    final_lsn > a->hooks.received_commit(a->hooks.arg) &&
	    apply_commit_group(a, true, err) != PGF_OK)
		return PGF_ERR;
	a->txn.xid = m->u.begin.xid;
	a->txn.lsn = final_lsn;
	return group_begin(a, DR_GROUP_BEGIN, err);
}

static int apply_handle_commit(apply_t *a, const pgoutput_message_t *m, uint64_t wal_start,
                               pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN];

	if (!dr_group_in_source_transaction(&a->group.sm))
		return error_set(err, PGF_E_PROTOCOL, "COMMIT outside a transaction at %s",
		                 lsn_format(wal_start, lsn));
	if (a->group.sm.state == DR_GROUP_SKIPPING)
		return dr_group_transition(&a->group.sm, DR_GROUP_SOURCE_COMMIT, err);
	return group_source_commit(a, m->u.commit.end_lsn, m->u.commit.commit_time, err);
}

/* ---- streamed transactions ------------------------------------------------- */

static int apply_handle_stream_start(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	a->spill.current = spill_open(&a->spill, m->u.stream_start.xid, err);
	return a->spill.current ? PGF_OK : PGF_ERR;
}

static int apply_dispatch(apply_t *a, const pgoutput_message_t *m, uint64_t wal_start, size_t len,
                          pgf_error_t *err);

/*
 * The message of len bytes at data in a->msg: a change's body (and a
 * Relation or Type message) is decoded here, its one decoding; any other
 * message was decoded by the sink's network thread (or apply_message), and
 * is rebuilt from what it found (facts, xid) without decoding it again.
 */
static int apply_take_message(apply_t *a, uint8_t type, uint32_t xid, const pgoutput_facts_t *facts,
                              const uint8_t *data, size_t len, pgf_error_t *err)
{
	if (pgoutput_header_only(type))
		return pgoutput_decode(&a->decoder, data, len, a->msg, err);
	pgoutput_facts_message(type, xid, facts, data, len, a->msg);
	return PGF_OK;
}

/*
 * A change larger than a batch, in its file (huge.c): an INSERT or UPDATE
 * inside a transaction is written by COPY without holding it; anything
 * else (or what COPY cannot write exactly) is read whole and applied like
 * any message, the one case where memory holds a huge change.
 */
static int apply_huge_file(apply_t *a, uint64_t wal_start, uint8_t type, uint32_t xid,
                           const pgoutput_facts_t *facts, const char *path, pgf_error_t *err)
{
	bool done = false;
	buf_t msg;
	int fd, rc;
	struct stat st;

	if ((type == PGOUTPUT_INSERT || type == PGOUTPUT_UPDATE) &&
	    dr_group_in_source_transaction(&a->group.sm)) {
		if (a->group.sm.state == DR_GROUP_SKIPPING)
			return PGF_OK;
		if (huge_apply(a, path, &done, err) != PGF_OK)
			return PGF_ERR;
		if (done)
			return PGF_OK;
	}
	buf_init(&msg);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !buf_reserve(&msg, (size_t)st.st_size) ||
	    util_pread_all(fd, msg.data, (size_t)st.st_size, 0) != PGF_OK) {
		rc = error_set(err, PGF_E_IO, "could not read the huge change \"%s\": %s", path,
		               strerror(errno));
	} else {
		msg.len = (size_t)st.st_size;
		rc = apply_take_message(a, type, xid, facts, (const uint8_t *)msg.data, msg.len,
		                        err);
		if (rc == PGF_OK)
			rc = apply_dispatch(a, a->msg, wal_start, msg.len, err);
	}
	if (fd >= 0)
		close(fd);
	buf_free(&msg);
	return rc;
}

/* Replays a committed streamed transaction from its spill file, one
 * message at a time (memory: the largest single message). */
static int stream_replay(apply_t *a, uint32_t xid, pgf_error_t *err)
{
	stream_file_t *s = spill_find(&a->spill, xid);
	pgoutput_decoder_t saved = a->decoder;
	off_t pos = 0;
	buf_t rec;
	spilled_t sr;
	int rc;

	if (s == NULL)
		return PGF_OK;
	buf_init(&rec);
	a->decoder.in_stream = true; /* spilled changes carry their xid */
	while ((rc = spill_read(&a->spill, s, &pos, &rec, err)) == 1) {
		if (!spill_record_parse(&rec, &sr)) {
			rc = error_set(err, PGF_E_IO,
			               "spill file \"%s\" is corrupt before offset %lld", s->path,
			               (long long)pos);
			break;
		}
		if (sr.huge) {
			rc = apply_huge_file(a, 0, sr.type, sr.xid, &sr.facts, sr.path, err);
			unlink(sr.path);
			if (rc != PGF_OK)
				break;
			continue;
		}
		if (apply_take_message(a, sr.type, sr.xid, &sr.facts, sr.data, sr.len, err) !=
		            PGF_OK ||
		    apply_change(a, a->msg, sr.len, err) != PGF_OK) {
			rc = PGF_ERR;
			break;
		}
	}
	buf_free(&rec);
	a->decoder = saved;
	if (rc == 0)
		spill_close(&a->spill, s, true);
	return rc == 0 ? PGF_OK : PGF_ERR;
}

static int apply_handle_stream_commit(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	uint64_t end_lsn = m->u.stream_commit.end_lsn;
	int64_t commit_time = m->u.stream_commit.commit_time;

	if (dr_group_in_source_transaction(&a->group.sm))
		return error_set(err, PGF_E_PROTOCOL, "STREAM COMMIT inside a transaction");
	if (m->u.stream_commit.commit_lsn < a->group.progress_lsn) {
		/* applied before: drop its spill file */
		spill_close(&a->spill, spill_find(&a->spill, m->u.stream_commit.xid), true);
		return PGF_OK;
	}
	a->txn.xid = m->u.stream_commit.xid;
	a->txn.lsn = m->u.stream_commit.commit_lsn;
	if (group_begin(a, DR_GROUP_BEGIN, err) != PGF_OK)
		return PGF_ERR;
	if (stream_replay(a, m->u.stream_commit.xid, err) != PGF_OK)
		return PGF_ERR;
	return group_source_commit(a, end_lsn, commit_time, err);
}

static int unsupported_two_phase(pgf_error_t *err)
{
	error_set(err, PGF_E_PROTOCOL, "the stream carries two-phase (prepared) transactions");
	error_detail(err, "The sink applies prepared transactions when they commit; the slot "
	                  "must not decode them at PREPARE time.");
	error_hint(err, "pgferry source never asks for them; stream with pgferry source, which "
	                "decodes a prepared transaction at its COMMIT PREPARED.");
	return PGF_ERR;
}

/* ---- the dispatcher ----------------------------------------------------------- */

static int apply_dispatch(apply_t *a, const pgoutput_message_t *m, uint64_t wal_start, size_t len,
                          pgf_error_t *err)
{
	bool in_txn = dr_group_in_source_transaction(&a->group.sm);
	bool skipping = a->group.sm.state == DR_GROUP_SKIPPING;
	char lsn[LSN_TEXT_LEN];

	switch (m->type) {
	case PGOUTPUT_BEGIN:
		return apply_handle_begin(a, m, wal_start, err);
	case PGOUTPUT_COMMIT:
		return apply_handle_commit(a, m, wal_start, err);
	case PGOUTPUT_STREAM_START:
		return apply_handle_stream_start(a, m, err);
	case PGOUTPUT_STREAM_STOP:
		a->spill.current = NULL;
		return PGF_OK;
	case PGOUTPUT_STREAM_ABORT:
		return spill_abort(&a->spill, m->u.stream_abort.xid, m->u.stream_abort.subxid, err);
	case PGOUTPUT_STREAM_COMMIT:
		return apply_handle_stream_commit(a, m, err);
	case PGOUTPUT_BEGIN_PREPARE:
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_COMMIT_PREPARED:
	case PGOUTPUT_ROLLBACK_PREPARED:
	case PGOUTPUT_STREAM_PREPARE:
		return unsupported_two_phase(err);
	case PGOUTPUT_MESSAGE:
		/* a non-transactional message outside a transaction changes nothing */
		if (!in_txn || skipping)
			return PGF_OK;
		return apply_change(a, m, len, err);
	case PGOUTPUT_RELATION:
	case PGOUTPUT_TYPE:
	case PGOUTPUT_ORIGIN:
		return apply_change(a, m, len, err);
	default:
		if (!in_txn)
			return error_set(err, PGF_E_PROTOCOL, "%s outside a transaction at %s",
			                 pgoutput_type_name(m->type), lsn_format(wal_start, lsn));
		if (skipping)
			return PGF_OK;
		return apply_change(a, m, len, err);
	}
}

/* A message inside a Stream Start/Stop block goes to the spill file as it
 * came (a change is decoded once, when its transaction commits); anything
 * else is dispatched here. */
static int apply_decoded_or_spilled(apply_t *a, uint64_t wal_start, uint8_t type, uint32_t xid,
                                    const pgoutput_facts_t *facts, const uint8_t *data, size_t len,
                                    pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN];

	if (a->spill.current != NULL && type != PGOUTPUT_STREAM_STOP) {
		if (type == PGOUTPUT_STREAM_START || type == PGOUTPUT_STREAM_COMMIT ||
		    type == PGOUTPUT_STREAM_ABORT)
			return error_set(err, PGF_E_PROTOCOL, "%s inside a stream block at %s",
			                 pgoutput_type_name((pgoutput_type_t)type),
			                 lsn_format(wal_start, lsn));
		return spill_append(a->spill.current, xid, wal_start,
		                    pgoutput_header_only(type) ? NULL : facts, data, len, err);
	}
	if (apply_take_message(a, type, xid, facts, data, len, err) != PGF_OK) {
		error_where(err, "message at %s", lsn_format(wal_start, lsn));
		return PGF_ERR;
	}
	if (apply_dispatch(a, a->msg, wal_start, len, err) != PGF_OK) {
		apply_error_context(a, wal_start, err);
		return PGF_ERR;
	}
	return PGF_OK;
}

int apply_record(apply_t *a, uint64_t wal_start, uint8_t type, uint32_t xid,
                 const pgoutput_facts_t *facts, const uint8_t *data, size_t len, pgf_error_t *err)
{
	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	return apply_decoded_or_spilled(a, wal_start, type, xid, facts, data, len, err);
}

int apply_message(apply_t *a, uint64_t wal_start, const uint8_t *data, size_t len, pgf_error_t *err)
{
	pgoutput_message_t *m = a->msg;
	pgoutput_facts_t facts;

	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	/* what the sink's network thread finds in a record, found here */
	if (pgoutput_decode_header(&a->decoder, data, len, m, err) != PGF_OK) {
		char lsn[LSN_TEXT_LEN];
		error_where(err, "message at %s", lsn_format(wal_start, lsn));
		return PGF_ERR;
	}
	pgoutput_facts_set(m, data, &facts);
	return apply_decoded_or_spilled(a, wal_start, (uint8_t)m->type, m->has_xid ? m->xid : 0,
	                                &facts, data, len, err);
}

int apply_huge_record(apply_t *a, uint64_t wal_start, uint8_t type, uint32_t xid,
                      const pgoutput_facts_t *facts, const char *path, pgf_error_t *err)
{
	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	/* inside a stream block: the file waits for the Stream Commit */
	if (a->spill.current != NULL)
		return spill_append_huge(&a->spill, a->spill.current, xid, wal_start, type, facts,
		                         path, err);
	if (apply_huge_file(a, wal_start, type, xid, facts, path, err) != PGF_OK) {
		apply_error_context(a, wal_start, err);
		return PGF_ERR;
	}
	return PGF_OK;
}

uint64_t apply_failed_lsn(const apply_t *a)
{
	/* a statement's error may come back while a later transaction is
	 * applied: the pipeline knows which one it was */
	if (a->pl.failed_lsn != 0)
		return a->pl.failed_lsn;
	return dr_group_in_source_transaction(&a->group.sm) ? a->txn.lsn : 0;
}

bool apply_in_transaction(const apply_t *a)
{
	return dr_group_in_source_transaction(&a->group.sm);
}

void apply_set_proto_version(apply_t *a, int proto_version)
{
	a->proto_version = proto_version;
	pgoutput_decoder_init(&a->decoder, proto_version);
}
