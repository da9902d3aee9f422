/*
 * decode_cmd.c — `pgferry decode FILE`: a capture file as JSON Lines, one
 * object per walsender message, for people and for scripts (as pg_waldump
 * is for WAL). Values are shown in the text form the walsender sent; binary
 * values as "\\x" + hex. On a malformed file it prints what it decoded, then
 * an error naming the record number and byte offset, and exits 2.
 *
 * The protocol version is not in the file; version 4 rules decode every
 * version (they only add, and Stream Abort's extra fields are told by the
 * message length), so it is the default. --proto-version N forces another.
 */
#include "pgferry/buf.h"
#include "pgferry/cli.h"
#include "pgferry/decode.h"
#include "pgferry/decoder.h"
#include "pgferry/json_out.h"
#include "pgferry/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* xid and gid of a two-phase message */
static void set_gid(json_t *o, uint32_t xid, const char *gid)
{
	json_out_set(o, "xid", json_integer(xid));
	json_out_set(o, "gid", json_out_cstring(gid));
}

/* A tuple as {"column": "text value" | null}; unchanged TOAST columns are
 * left out and, when unchanged is given, listed there. NULL and err set
 * when the tuple does not match its Relation message. */
static json_t *tuple_json(const relcache_entry_t *rel, const tuple_t *t, json_t *unchanged,
                          pgf_error_t *err)
{
	json_t *o;
	uint16_t i;

	if (t->ncolumns != rel->ncolumns) {
		error_set(err, PGF_E_PROTOCOL,
		          "a tuple of %s.%s has %u columns, its Relation message %u",
		          rel->namespace, rel->name, t->ncolumns, rel->ncolumns);
		return NULL;
	}
	o = json_object();
	for (i = 0; i < t->ncolumns; i++) {
		const tuple_column_t *c = &t->columns[i];
		json_t *v;

		if (c->kind == 'u') {
			if (unchanged)
				json_array_append_new(unchanged,
				                      json_out_cstring(rel->columns[i].name));
			continue;
		}
		if (c->kind == 'n')
			v = json_null();
		else if (c->kind == 'b')
			v = json_out_hex(c->data, c->len);
		else
			v = json_out_text(c->data, c->len);
		json_out_set_text_key(o, rel->columns[i].name, v);
	}
	return o;
}

static const relcache_entry_t *need_relation(relcache_t *rc, uint32_t relid, pgf_error_t *err)
{
	const relcache_entry_t *rel = relcache_get(rc, relid);

	if (rel == NULL)
		error_set(err, PGF_E_PROTOCOL, "change for relation %u before its Relation message",
		          relid);
	return rel;
}

static void set_names(json_t *o, uint32_t relid, const char *namespace, const char *name)
{
	json_out_set(o, "relid", json_integer(relid));
	json_out_set(o, "namespace", json_out_cstring(namespace));
	json_out_set(o, "name", json_out_cstring(name));
}

static int relation_json(json_t *o, const pgoutput_message_t *m, relcache_t *rc, pgf_error_t *err)
{
	const char ri = m->u.relation.replica_identity;
	char ri_text[2] = {ri >= 32 && ri < 127 ? ri : '?', '\0'};
	json_t *cols = json_array();
	uint32_t i;

	if (relcache_update(rc, m, err) != PGF_OK) {
		json_decref(cols);
		return PGF_ERR;
	}
	set_names(o, m->u.relation.relid, m->u.relation.namespace, m->u.relation.name);
	json_out_set(o, "replica_identity", json_string(ri_text));
	for (i = 0; i < m->u.relation.ncolumns; i++) {
		const relation_column_t *c = &m->u.relation.columns[i];
		json_t *col = json_object();

		json_out_set(col, "name", json_out_cstring(c->name));
		json_out_set(col, "type_oid", json_integer(c->type_oid));
		json_out_set(col, "type_mod", json_integer(c->type_mod));
		json_out_set(col, "key", json_out_bool(c->flags & 1));
		json_array_append_new(cols, col);
	}
	json_out_set(o, "columns", cols);
	return PGF_OK;
}

static int insert_json(json_t *o, const pgoutput_message_t *m, relcache_t *rc, pgf_error_t *err)
{
	const relcache_entry_t *rel = need_relation(rc, m->u.insert.relid, err);
	json_t *t;

	if (rel == NULL)
		return PGF_ERR;
	set_names(o, rel->relid, rel->namespace, rel->name);
	if ((t = tuple_json(rel, &m->u.insert.new_tuple, NULL, err)) == NULL)
		return PGF_ERR;
	json_out_set(o, "new", t);
	return PGF_OK;
}

/* Update and Delete: the old row or key when sent, the new row (Update),
 * and the unchanged TOAST columns of the newest tuple shown. */
static int update_delete_json(json_t *o, const pgoutput_message_t *m, relcache_t *rc,
                              pgf_error_t *err)
{
	bool update = m->type == PGOUTPUT_UPDATE;
	char old_kind = update ? m->u.update.old_kind : m->u.delete_.old_kind;
	const tuple_t *old = update ? &m->u.update.old_tuple : &m->u.delete_.old_tuple;
	const relcache_entry_t *rel =
	        need_relation(rc, update ? m->u.update.relid : m->u.delete_.relid, err);
	json_t *unchanged, *t;

	if (rel == NULL)
		return PGF_ERR;
	set_names(o, rel->relid, rel->namespace, rel->name);
	unchanged = json_array();
	if (old_kind) {
		if ((t = tuple_json(rel, old, update ? NULL : unchanged, err)) == NULL)
			goto fail;
		json_out_set(o, old_kind == 'K' ? "key" : "old", t);
	}
	if (update) {
		if ((t = tuple_json(rel, &m->u.update.new_tuple, unchanged, err)) == NULL)
			goto fail;
		json_out_set(o, "new", t);
	}
	if (json_array_size(unchanged) > 0)
		json_out_set(o, "unchanged_toast", unchanged);
	else
		json_decref(unchanged);
	return PGF_OK;
fail:
	json_decref(unchanged);
	return PGF_ERR;
}

static int truncate_json(json_t *o, const pgoutput_message_t *m, relcache_t *rc, pgf_error_t *err)
{
	json_t *relids = json_array(), *names = json_array();
	uint32_t i;

	json_out_set(o, "relids", relids);
	json_out_set(o, "names", names);
	for (i = 0; i < m->u.truncate.nrelids; i++) {
		uint32_t relid = pgoutput_truncate_relid(m, i);
		const relcache_entry_t *rel = need_relation(rc, relid, err);
		buf_t q;

		if (rel == NULL)
			return PGF_ERR;
		json_array_append_new(relids, json_integer(relid));
		buf_init(&q);
		buf_printf(&q, "%s.%s", rel->namespace, rel->name);
		json_array_append_new(names, json_out_cstring(q.data));
		buf_free(&q);
	}
	json_out_set(o, "cascade", json_out_bool(m->u.truncate.options & 1));
	json_out_set(o, "restart_identity", json_out_bool(m->u.truncate.options & 2));
	return PGF_OK;
}

static void logical_message_json(json_t *o, const pgoutput_message_t *m)
{
	const char *content = (const char *)m->u.message.content;
	size_t len = m->u.message.content_len;

	json_out_set(o, "transactional", json_out_bool(m->u.message.flags & 1));
	json_out_set(o, "message_lsn", json_out_lsn(m->u.message.lsn));
	json_out_set(o, "prefix", json_out_cstring(m->u.message.prefix));
	/* text when it is text, else the bytes as hex */
	json_out_set(o, "content",
	             utf8_valid(content, len) ? json_out_text(content, len)
	                                      : json_out_hex(m->u.message.content, len));
}

/* Begin, Commit and the streamed transaction's boundaries. */
static void transaction_json(json_t *o, const pgoutput_message_t *m)
{
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		json_out_set(o, "final_lsn", json_out_lsn(m->u.begin.final_lsn));
		json_out_set(o, "commit_time", json_out_pgtime(m->u.begin.commit_time));
		json_out_set(o, "xid", json_integer(m->u.begin.xid));
		break;
	case PGOUTPUT_COMMIT:
		json_out_set(o, "commit_lsn", json_out_lsn(m->u.commit.commit_lsn));
		json_out_set(o, "end_lsn", json_out_lsn(m->u.commit.end_lsn));
		json_out_set(o, "commit_time", json_out_pgtime(m->u.commit.commit_time));
		json_out_set(o, "flags", json_integer(m->u.commit.flags));
		break;
	case PGOUTPUT_STREAM_START:
		json_out_set(o, "xid", json_integer(m->u.stream_start.xid));
		json_out_set(o, "first_segment", json_out_bool(m->u.stream_start.first_segment));
		break;
	case PGOUTPUT_STREAM_COMMIT:
		json_out_set(o, "xid", json_integer(m->u.stream_commit.xid));
		json_out_set(o, "flags", json_integer(m->u.stream_commit.flags));
		json_out_set(o, "commit_lsn", json_out_lsn(m->u.stream_commit.commit_lsn));
		json_out_set(o, "end_lsn", json_out_lsn(m->u.stream_commit.end_lsn));
		json_out_set(o, "commit_time", json_out_pgtime(m->u.stream_commit.commit_time));
		break;
	case PGOUTPUT_STREAM_ABORT:
		json_out_set(o, "xid", json_integer(m->u.stream_abort.xid));
		json_out_set(o, "subxid", json_integer(m->u.stream_abort.subxid));
		if (m->u.stream_abort.has_abort_lsn) {
			json_out_set(o, "abort_lsn", json_out_lsn(m->u.stream_abort.abort_lsn));
			json_out_set(o, "abort_time",
			             json_out_pgtime(m->u.stream_abort.abort_time));
		}
		break;
	default:
		break;
	}
}

/* The two-phase messages. */
static void two_phase_json(json_t *o, const pgoutput_message_t *m)
{
	switch (m->type) {
	case PGOUTPUT_BEGIN_PREPARE:
		json_out_set(o, "prepare_lsn", json_out_lsn(m->u.begin_prepare.prepare_lsn));
		json_out_set(o, "end_lsn", json_out_lsn(m->u.begin_prepare.end_lsn));
		json_out_set(o, "prepare_time", json_out_pgtime(m->u.begin_prepare.prepare_time));
		set_gid(o, m->u.begin_prepare.xid, m->u.begin_prepare.gid);
		break;
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_STREAM_PREPARE:
		json_out_set(o, "flags", json_integer(m->u.prepare.flags));
		json_out_set(o, "prepare_lsn", json_out_lsn(m->u.prepare.prepare_lsn));
		json_out_set(o, "end_lsn", json_out_lsn(m->u.prepare.end_lsn));
		json_out_set(o, "prepare_time", json_out_pgtime(m->u.prepare.prepare_time));
		set_gid(o, m->u.prepare.xid, m->u.prepare.gid);
		break;
	case PGOUTPUT_COMMIT_PREPARED:
		json_out_set(o, "flags", json_integer(m->u.commit_prepared.flags));
		json_out_set(o, "commit_lsn", json_out_lsn(m->u.commit_prepared.commit_lsn));
		json_out_set(o, "end_lsn", json_out_lsn(m->u.commit_prepared.end_lsn));
		json_out_set(o, "commit_time", json_out_pgtime(m->u.commit_prepared.commit_time));
		set_gid(o, m->u.commit_prepared.xid, m->u.commit_prepared.gid);
		break;
	case PGOUTPUT_ROLLBACK_PREPARED:
		json_out_set(o, "flags", json_integer(m->u.rollback_prepared.flags));
		json_out_set(o, "prepare_end_lsn",
		             json_out_lsn(m->u.rollback_prepared.prepare_end_lsn));
		json_out_set(o, "rollback_end_lsn",
		             json_out_lsn(m->u.rollback_prepared.rollback_end_lsn));
		json_out_set(o, "prepare_time",
		             json_out_pgtime(m->u.rollback_prepared.prepare_time));
		json_out_set(o, "rollback_time",
		             json_out_pgtime(m->u.rollback_prepared.rollback_time));
		set_gid(o, m->u.rollback_prepared.xid, m->u.rollback_prepared.gid);
		break;
	default:
		break;
	}
}

/* One pgoutput message's fields, added to o after lsn and type. */
static int message_json(json_t *o, const pgoutput_message_t *m, relcache_t *rc, pgf_error_t *err)
{
	/* a change inside a streamed block carries its transaction's xid */
	if (m->has_xid && m->type != PGOUTPUT_STREAM_START && m->type != PGOUTPUT_STREAM_COMMIT &&
	    m->type != PGOUTPUT_STREAM_ABORT && m->type != PGOUTPUT_STREAM_PREPARE)
		json_out_set(o, "xid", json_integer(m->xid));
	switch (m->type) {
	case PGOUTPUT_ORIGIN:
		json_out_set(o, "commit_lsn", json_out_lsn(m->u.origin.commit_lsn));
		json_out_set(o, "name", json_out_cstring(m->u.origin.name));
		return PGF_OK;
	case PGOUTPUT_RELATION:
		return relation_json(o, m, rc, err);
	case PGOUTPUT_TYPE:
		if (relcache_update_type(rc, m, err) != PGF_OK)
			return PGF_ERR;
		json_out_set(o, "type_oid", json_integer(m->u.type.type_oid));
		json_out_set(o, "namespace", json_out_cstring(m->u.type.namespace));
		json_out_set(o, "name", json_out_cstring(m->u.type.name));
		return PGF_OK;
	case PGOUTPUT_INSERT:
		return insert_json(o, m, rc, err);
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE:
		return update_delete_json(o, m, rc, err);
	case PGOUTPUT_TRUNCATE:
		return truncate_json(o, m, rc, err);
	case PGOUTPUT_MESSAGE:
		logical_message_json(o, m);
		return PGF_OK;
	case PGOUTPUT_BEGIN_PREPARE:
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_STREAM_PREPARE:
	case PGOUTPUT_COMMIT_PREPARED:
	case PGOUTPUT_ROLLBACK_PREPARED:
		two_phase_json(o, m);
		return PGF_OK;
	default:
		transaction_json(o, m);
		return PGF_OK;
	}
}

/* One walsender message as one JSON object; NULL and err set when its
 * payload does not decode. */
static json_t *record_json(const walsender_message_t *wm, pgoutput_decoder_t *d,
                           pgoutput_message_t *m, relcache_t *rc, pgf_error_t *err)
{
	json_t *o = json_object();

	if (wm->kind == 'k') {
		json_out_set(o, "lsn", json_out_lsn(wm->wal_end));
		json_out_set(o, "type", json_string("keepalive"));
		json_out_set(o, "wal_end", json_out_lsn(wm->wal_end));
		json_out_set(o, "reply_requested", json_out_bool(wm->reply_requested));
		return o;
	}
	if (pgoutput_decode(d, wm->payload, wm->payload_len, m, err) != PGF_OK) {
		json_decref(o);
		return NULL;
	}
	json_out_set(o, "lsn", json_out_lsn(wm->wal_start));
	json_out_set(o, "type", json_string(pgoutput_type_name(m->type)));
	if (message_json(o, m, rc, err) != PGF_OK) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int decode_capture(const uint8_t *data, size_t len, int proto_version, FILE *out, pgf_error_t *err)
{
	capture_reader_t cr;
	pgoutput_decoder_t d;
	pgoutput_message_t *m = malloc(sizeof(*m));
	relcache_t *rc = relcache_create();
	buf_t line;
	int result = PGF_ERR;

	buf_init(&line);
	if (m == NULL || rc == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		goto done;
	}
	pgoutput_decoder_init(&d, proto_version);
	if (capture_reader_init(&cr, data, len, err) != PGF_OK)
		goto done;
	for (;;) {
		const uint8_t *rec;
		size_t rlen;
		walsender_message_t wm;
		json_t *doc;
		int r = capture_reader_next(&cr, &rec, &rlen, err);

		if (r == 0)
			break;
		if (r < 0)
			goto done;
		buf_reset(&line);
		if (walsender_parse(rec, rlen, &wm, err) != PGF_OK)
			goto bad_record;
		if ((doc = record_json(&wm, &d, m, rc, err)) == NULL)
			goto bad_record;
		if (json_out_append(&line, doc) == PGF_OK)
			buf_append_char(&line, '\n');
		json_decref(doc);
		if (buf_failed(&line)) {
			error_set(err, PGF_E_MEMORY, "out of memory");
			goto done;
		}
		if (out)
			fwrite(line.data, 1, line.len, out);
		continue;
	bad_record:
		/* the message's own offset within the record, plus the record's
		 * place in the file */
		error_where(err, "record %llu at byte %zu of the file",
		            (unsigned long long)cr.record_no, cr.record_offset);
		goto done;
	}
	result = PGF_OK;
done:
	buf_free(&line);
	relcache_free(rc);
	free(m);
	return result;
}

int cmd_decode(int argc, char **argv)
{
	const char *path = NULL;
	int proto = 4, fd, i, rc;
	struct stat st;
	void *map = NULL;
	pgf_error_t err;
	char text[2048];

	error_clear(&err);
	log_configure(LOG_INFO, LOG_FORMAT_TEXT, "decode");
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--proto-version") == 0 && i + 1 < argc) {
			proto = atoi(argv[++i]);
			if (proto < 1 || proto > 4) {
				log_error("--proto-version takes 1 to 4");
				return EXIT_ERROR;
			}
		} else if (strcmp(argv[i], "--help") == 0) {
			printf("Usage: pgferry decode [--proto-version N] FILE\n"
			       "Prints a capture file as JSON Lines, one walsender message a "
			       "line.\n");
			return 0;
		} else if (path == NULL)
			path = argv[i];
		else {
			log_error("unexpected argument \"%s\"", argv[i]);
			return EXIT_ERROR;
		}
	}
	if (path == NULL) {
		log_error("no capture file given; usage: pgferry decode [--proto-version N] FILE");
		return EXIT_ERROR;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		log_error("could not open \"%s\": %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_ERROR;
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			log_error("could not map \"%s\": %s", path, strerror(errno));
			close(fd);
			return EXIT_ERROR;
		}
	}
	rc = decode_capture(map ? map : (const void *)"", (size_t)st.st_size, proto, stdout, &err);
	fflush(stdout);
	if (map)
		munmap(map, (size_t)st.st_size);
	close(fd);
	if (rc != PGF_OK) {
		error_format(&err, text, sizeof(text));
		log_error("%s: %s", path, text);
		return EXIT_ERROR;
	}
	return 0;
}
