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

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void field_lsn(buf_t *b, const char *name, uint64_t lsn)
{
	char t[LSN_TEXT_LEN];
	buf_printf(b, ",\"%s\":\"%s\"", name, lsn_format(lsn, t));
}

static void field_time(buf_t *b, const char *name, int64_t pgtime)
{
	char t[40];
	buf_printf(b, ",\"%s\":\"%s\"", name, pgtime_format_iso(pgtime, t));
}

static void field_gid(buf_t *b, uint32_t xid, const char *gid)
{
	buf_printf(b, ",\"xid\":%u,\"gid\":", xid);
	json_append_cstring(b, gid);
}

/* A tuple as {"column": "text value" | null}; unchanged TOAST columns are
 * left out and collected for "unchanged_toast". */
static int tuple_json(buf_t *b, const relcache_entry_t *rel, const tuple_t *t, buf_t *unchanged,
                      pgf_error_t *err)
{
	uint16_t i;
	bool first = true;

	if (t->ncolumns != rel->ncolumns)
		return error_set(err, PGF_E_PROTOCOL,
		                 "a tuple of %s.%s has %u columns, its Relation message %u",
		                 rel->namespace, rel->name, t->ncolumns, rel->ncolumns);
	buf_append_char(b, '{');
	for (i = 0; i < t->ncolumns; i++) {
		const tuple_column_t *c = &t->columns[i];
		if (c->kind == 'u') {
			if (unchanged) {
				if (unchanged->len)
					buf_append_char(unchanged, ',');
				json_append_cstring(unchanged, rel->columns[i].name);
			}
			continue;
		}
		if (!first)
			buf_append_char(b, ',');
		first = false;
		json_append_cstring(b, rel->columns[i].name);
		buf_append_char(b, ':');
		if (c->kind == 'n')
			buf_append_str(b, "null");
		else if (c->kind == 'b')
			json_append_hex(b, c->data, c->len);
		else
			json_append_string(b, c->data, c->len);
	}
	buf_append_char(b, '}');
	return PGF_OK;
}

static const relcache_entry_t *need_relation(relcache_t *rc, uint32_t relid, pgf_error_t *err)
{
	const relcache_entry_t *rel = relcache_get(rc, relid);

	if (rel == NULL)
		error_set(err, PGF_E_PROTOCOL, "change for relation %u before its Relation message",
		          relid);
	return rel;
}

static void relation_names(buf_t *b, const relcache_entry_t *rel)
{
	buf_printf(b, ",\"relid\":%u,\"namespace\":", rel->relid);
	json_append_cstring(b, rel->namespace);
	buf_append_str(b, ",\"name\":");
	json_append_cstring(b, rel->name);
}

/* One pgoutput message as the rest of a JSON object (after lsn and type). */
static int message_json(buf_t *b, const pgoutput_message_t *m, relcache_t *rc, pgf_error_t *err)
{
	const relcache_entry_t *rel;
	buf_t unchanged;
	uint32_t i;
	int rc_ = PGF_OK;

	if (m->has_xid && m->type != PGOUTPUT_STREAM_START && m->type != PGOUTPUT_STREAM_COMMIT &&
	    m->type != PGOUTPUT_STREAM_ABORT && m->type != PGOUTPUT_STREAM_PREPARE)
		buf_printf(b, ",\"xid\":%u", m->xid);
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		field_lsn(b, "final_lsn", m->u.begin.final_lsn);
		field_time(b, "commit_time", m->u.begin.commit_time);
		buf_printf(b, ",\"xid\":%u", m->u.begin.xid);
		break;
	case PGOUTPUT_COMMIT:
		field_lsn(b, "commit_lsn", m->u.commit.commit_lsn);
		field_lsn(b, "end_lsn", m->u.commit.end_lsn);
		field_time(b, "commit_time", m->u.commit.commit_time);
		buf_printf(b, ",\"flags\":%u", m->u.commit.flags);
		break;
	case PGOUTPUT_ORIGIN:
		field_lsn(b, "commit_lsn", m->u.origin.commit_lsn);
		buf_append_str(b, ",\"name\":");
		json_append_cstring(b, m->u.origin.name);
		break;
	case PGOUTPUT_RELATION:
		if (relcache_update(rc, m, err) != PGF_OK)
			return PGF_ERR;
		buf_printf(b, ",\"relid\":%u,\"namespace\":", m->u.relation.relid);
		json_append_cstring(b, m->u.relation.namespace);
		buf_append_str(b, ",\"name\":");
		json_append_cstring(b, m->u.relation.name);
		buf_printf(b, ",\"replica_identity\":\"%c\",\"columns\":[",
		           m->u.relation.replica_identity >= 32 &&
		                           m->u.relation.replica_identity < 127
		                   ? m->u.relation.replica_identity
		                   : '?');
		for (i = 0; i < m->u.relation.ncolumns; i++) {
			const relation_column_t *c = &m->u.relation.columns[i];
			buf_append_str(b, i ? ",{\"name\":" : "{\"name\":");
			json_append_cstring(b, c->name);
			buf_printf(b, ",\"type_oid\":%u,\"type_mod\":%d,\"key\":%s}", c->type_oid,
			           c->type_mod, (c->flags & 1) ? "true" : "false");
		}
		buf_append_char(b, ']');
		break;
	case PGOUTPUT_TYPE:
		if (relcache_update_type(rc, m, err) != PGF_OK)
			return PGF_ERR;
		buf_printf(b, ",\"type_oid\":%u,\"namespace\":", m->u.type.type_oid);
		json_append_cstring(b, m->u.type.namespace);
		buf_append_str(b, ",\"name\":");
		json_append_cstring(b, m->u.type.name);
		break;
	case PGOUTPUT_INSERT:
		if ((rel = need_relation(rc, m->u.insert.relid, err)) == NULL)
			return PGF_ERR;
		relation_names(b, rel);
		buf_append_str(b, ",\"new\":");
		return tuple_json(b, rel, &m->u.insert.new_tuple, NULL, err);
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE: {
		char old_kind =
		        m->type == PGOUTPUT_UPDATE ? m->u.update.old_kind : m->u.delete_.old_kind;
		const tuple_t *old = m->type == PGOUTPUT_UPDATE ? &m->u.update.old_tuple
		                                                : &m->u.delete_.old_tuple;
		uint32_t relid =
		        m->type == PGOUTPUT_UPDATE ? m->u.update.relid : m->u.delete_.relid;
		if ((rel = need_relation(rc, relid, err)) == NULL)
			return PGF_ERR;
		relation_names(b, rel);
		buf_init(&unchanged);
		if (old_kind) {
			buf_append_str(b, old_kind == 'K' ? ",\"key\":" : ",\"old\":");
			/* unchanged TOAST is listed from the newest tuple shown */
			rc_ = tuple_json(b, rel, old,
			                 m->type == PGOUTPUT_DELETE ? &unchanged : NULL, err);
		}
		if (rc_ == PGF_OK && m->type == PGOUTPUT_UPDATE) {
			buf_append_str(b, ",\"new\":");
			rc_ = tuple_json(b, rel, &m->u.update.new_tuple, &unchanged, err);
		}
		if (rc_ == PGF_OK && unchanged.len)
			buf_printf(b, ",\"unchanged_toast\":[%s]", unchanged.data);
		buf_free(&unchanged);
		return rc_;
	}
	case PGOUTPUT_TRUNCATE:
		buf_append_str(b, ",\"relids\":[");
		for (i = 0; i < m->u.truncate.nrelids; i++)
			buf_printf(b, "%s%u", i ? "," : "", pgoutput_truncate_relid(m, i));
		buf_append_str(b, "],\"names\":[");
		for (i = 0; i < m->u.truncate.nrelids; i++) {
			rel = need_relation(rc, pgoutput_truncate_relid(m, i), err);
			if (rel == NULL)
				return PGF_ERR;
			if (i)
				buf_append_char(b, ',');
			buf_t q;
			buf_init(&q);
			buf_printf(&q, "%s.%s", rel->namespace, rel->name);
			json_append_cstring(b, q.data);
			buf_free(&q);
		}
		buf_printf(b, "],\"cascade\":%s,\"restart_identity\":%s",
		           (m->u.truncate.options & 1) ? "true" : "false",
		           (m->u.truncate.options & 2) ? "true" : "false");
		break;
	case PGOUTPUT_MESSAGE:
		buf_printf(b, ",\"transactional\":%s", (m->u.message.flags & 1) ? "true" : "false");
		field_lsn(b, "message_lsn", m->u.message.lsn);
		buf_append_str(b, ",\"prefix\":");
		json_append_cstring(b, m->u.message.prefix);
		buf_append_str(b, ",\"content\":");
		if (utf8_valid((const char *)m->u.message.content, m->u.message.content_len))
			json_append_string(b, (const char *)m->u.message.content,
			                   m->u.message.content_len);
		else
			json_append_hex(b, m->u.message.content, m->u.message.content_len);
		break;
	case PGOUTPUT_STREAM_START:
		buf_printf(b, ",\"xid\":%u,\"first_segment\":%s", m->u.stream_start.xid,
		           m->u.stream_start.first_segment ? "true" : "false");
		break;
	case PGOUTPUT_STREAM_STOP:
		break;
	case PGOUTPUT_STREAM_COMMIT:
		buf_printf(b, ",\"xid\":%u,\"flags\":%u", m->u.stream_commit.xid,
		           m->u.stream_commit.flags);
		field_lsn(b, "commit_lsn", m->u.stream_commit.commit_lsn);
		field_lsn(b, "end_lsn", m->u.stream_commit.end_lsn);
		field_time(b, "commit_time", m->u.stream_commit.commit_time);
		break;
	case PGOUTPUT_STREAM_ABORT:
		buf_printf(b, ",\"xid\":%u,\"subxid\":%u", m->u.stream_abort.xid,
		           m->u.stream_abort.subxid);
		if (m->u.stream_abort.has_abort_lsn) {
			field_lsn(b, "abort_lsn", m->u.stream_abort.abort_lsn);
			field_time(b, "abort_time", m->u.stream_abort.abort_time);
		}
		break;
	case PGOUTPUT_BEGIN_PREPARE:
		field_lsn(b, "prepare_lsn", m->u.begin_prepare.prepare_lsn);
		field_lsn(b, "end_lsn", m->u.begin_prepare.end_lsn);
		field_time(b, "prepare_time", m->u.begin_prepare.prepare_time);
		field_gid(b, m->u.begin_prepare.xid, m->u.begin_prepare.gid);
		break;
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_STREAM_PREPARE:
		buf_printf(b, ",\"flags\":%u", m->u.prepare.flags);
		field_lsn(b, "prepare_lsn", m->u.prepare.prepare_lsn);
		field_lsn(b, "end_lsn", m->u.prepare.end_lsn);
		field_time(b, "prepare_time", m->u.prepare.prepare_time);
		field_gid(b, m->u.prepare.xid, m->u.prepare.gid);
		break;
	case PGOUTPUT_COMMIT_PREPARED:
		buf_printf(b, ",\"flags\":%u", m->u.commit_prepared.flags);
		field_lsn(b, "commit_lsn", m->u.commit_prepared.commit_lsn);
		field_lsn(b, "end_lsn", m->u.commit_prepared.end_lsn);
		field_time(b, "commit_time", m->u.commit_prepared.commit_time);
		field_gid(b, m->u.commit_prepared.xid, m->u.commit_prepared.gid);
		break;
	case PGOUTPUT_ROLLBACK_PREPARED:
		buf_printf(b, ",\"flags\":%u", m->u.rollback_prepared.flags);
		field_lsn(b, "prepare_end_lsn", m->u.rollback_prepared.prepare_end_lsn);
		field_lsn(b, "rollback_end_lsn", m->u.rollback_prepared.rollback_end_lsn);
		field_time(b, "prepare_time", m->u.rollback_prepared.prepare_time);
		field_time(b, "rollback_time", m->u.rollback_prepared.rollback_time);
		field_gid(b, m->u.rollback_prepared.xid, m->u.rollback_prepared.gid);
		break;
	}
	return PGF_OK;
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
		int r = capture_reader_next(&cr, &rec, &rlen, err);
		char t[LSN_TEXT_LEN];

		if (r == 0)
			break;
		if (r < 0)
			goto done;
		buf_reset(&line);
		if (walsender_parse(rec, rlen, &wm, err) != PGF_OK)
			goto bad_record;
		if (wm.kind == 'k') {
			buf_printf(&line, "{\"lsn\":\"%s\",\"type\":\"keepalive\"",
			           lsn_format(wm.wal_end, t));
			field_lsn(&line, "wal_end", wm.wal_end);
			buf_printf(&line, ",\"reply_requested\":%s}\n",
			           wm.reply_requested ? "true" : "false");
		} else {
			if (pgoutput_decode(&d, wm.payload, wm.payload_len, m, err) != PGF_OK)
				goto bad_record;
			buf_printf(&line, "{\"lsn\":\"%s\",\"type\":\"%s\"",
			           lsn_format(wm.wal_start, t), pgoutput_type_name(m->type));
			if (message_json(&line, m, rc, err) != PGF_OK)
				goto bad_record;
			buf_append_str(&line, "}\n");
		}
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
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--proto-version") == 0 && i + 1 < argc) {
			proto = atoi(argv[++i]);
			if (proto < 1 || proto > 4) {
				fprintf(stderr, "pgferry decode: --proto-version takes 1 to 4\n");
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
			fprintf(stderr, "pgferry decode: unexpected argument \"%s\"\n", argv[i]);
			return EXIT_ERROR;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "Usage: pgferry decode [--proto-version N] FILE\n");
		return EXIT_ERROR;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "pgferry decode: could not open \"%s\": %s\n", path,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_ERROR;
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			fprintf(stderr, "pgferry decode: could not map \"%s\": %s\n", path,
			        strerror(errno));
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
		fprintf(stderr, "pgferry decode: %s: %s\n", path, text);
		return EXIT_ERROR;
	}
	return 0;
}
