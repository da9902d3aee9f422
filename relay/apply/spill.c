/*
 * spill.c — streamed (large, in-progress) transactions spilled to files
 * under work_dir until their Stream Commit (replayed then by dispatch.c,
 * one message at a time) and dropped on Stream Abort, so memory stays
 * bounded whatever the transaction size. A subtransaction's abort cuts
 * the file back to where its first change began.
 *
 * Spill record: u32 length, u64 wal_start (both big-endian), the pgoutput
 * message as received; a message that is not a change comes after what the
 * network thread decoded of it (SPILL_FACTS, its xid, its pgoutput_facts_t),
 * so that it is not decoded again; a change larger than a batch is a
 * reference to its file (SPILL_HUGE, the type, the xid, the facts, the
 * file's name), so that a streamed transaction holding one stays bounded
 * too. The facts are written as they are in memory: a spill file is read
 * only by the process that wrote it.
 */
#include "apply_internal.h"
#include "pgferry/byteorder.h"
#include "pgferry/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPILL_HEADER 12
#define SPILL_HUGE   0xff /* no pgoutput message starts with either */
#define SPILL_FACTS  0xfe
/* after SPILL_FACTS: the xid and the facts; after SPILL_HUGE: the type too */
#define SPILL_FACTS_LEN (1 + 4 + sizeof(pgoutput_facts_t))
#define SPILL_HUGE_LEN  (SPILL_FACTS_LEN + 1)

void spill_init(apply_spill_t *sp, const config_t *cfg)
{
	memset(sp, 0, sizeof(*sp));
	sp->work_dir = cfg->work_dir;
	sp->max_record = cfg->max_frame_bytes;
}

stream_file_t *spill_find(apply_spill_t *sp, uint32_t xid)
{
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (sp->streams[i] && sp->streams[i]->xid == xid)
			return sp->streams[i];
	return NULL;
}

stream_file_t *spill_open(apply_spill_t *sp, uint32_t xid, pgf_error_t *err)
{
	stream_file_t *s = spill_find(sp, xid);
	int i;

	if (s)
		return s;
	for (i = 0; i < MAX_STREAMS && sp->streams[i]; i++)
		;
	if (i == MAX_STREAMS) {
		error_set(err, PGF_E_MEMORY, "more than %d streamed transactions in progress",
		          MAX_STREAMS);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	s->xid = xid;
	snprintf(s->path, sizeof(s->path), "%s/stream-%u.spill", sp->work_dir, xid);
	/* a file left by a crash (the stream is sent again whole) or a planted
	 * link goes; O_EXCL | O_NOFOLLOW never writes through a link */
	if (unlink(s->path) != 0 && errno != ENOENT)
		s->fd = -1;
	else
		s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		error_set(err, PGF_E_IO, "could not create spill file \"%s\": %s", s->path,
		          strerror(errno));
		error_hint(err, "Check that work_dir exists, is writable and has free space.");
		free(s);
		return NULL;
	}
	sp->streams[i] = s;
	return s;
}

static void huge_name(const apply_spill_t *sp, const stream_file_t *s, unsigned k, char *path,
                      size_t size)
{
	/* huge-: removed at the sink's start like the network thread's files */
	snprintf(path, size, "%s/huge-stream-%u-%u.change", sp->work_dir, s->xid, k);
}

void spill_close(apply_spill_t *sp, stream_file_t *s, bool remove)
{
	int i;

	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (remove)
		unlink(s->path);
	for (i = 0; remove && i < (int)s->nhuge; i++) {
		char path[600];
		huge_name(sp, s, (unsigned)i, path, sizeof(path));
		unlink(path);
	}
	free(s->subxacts);
	free(s->slots);
	for (i = 0; i < MAX_STREAMS; i++)
		if (sp->streams[i] == s)
			sp->streams[i] = NULL;
	if (sp->current == s)
		sp->current = NULL;
	free(s);
}

void spill_drop_all(apply_spill_t *sp)
{
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (sp->streams[i])
			spill_close(sp, sp->streams[i], true);
	sp->current = NULL;
}

/* The index of subtransaction xid in s's list, or s->nsubxacts. Slots
 * left by an abort point past the list or at another xid: skipped. */
static size_t subxact_find(const stream_file_t *s, uint32_t xid)
{
	size_t h, mask = s->nslots - 1;

	if (s->nslots == 0)
		return s->nsubxacts;
	for (h = (xid * 2654435761u) & mask; s->slots[h] != 0; h = (h + 1) & mask) {
		size_t i = s->slots[h] - 1;
		if (i < s->nsubxacts && s->subxacts[i].xid == xid)
			return i;
	}
	return s->nsubxacts;
}

static void subxact_slot_put(stream_file_t *s, size_t i)
{
	size_t h, mask = s->nslots - 1;

	for (h = (s->subxacts[i].xid * 2654435761u) & mask; s->slots[h] != 0; h = (h + 1) & mask)
		;
	s->slots[h] = (uint32_t)(i + 1);
	s->slots_used++;
}

/* Remembers where a subtransaction's changes start, for its abort. */
static int subxact_note(stream_file_t *s, uint32_t xid, pgf_error_t *err)
{
	size_t i;

	/* the common case: the latest subtransaction goes on */
	if (s->nsubxacts > 0 && s->subxacts[s->nsubxacts - 1].xid == xid)
		return PGF_OK;
	if (subxact_find(s, xid) < s->nsubxacts)
		return PGF_OK;
	if (s->nsubxacts == s->subxacts_cap) {
		size_t cap = s->subxacts_cap ? 2 * s->subxacts_cap : 64;
		subxact_t *n = cap > UINT32_MAX - 1 ? NULL : realloc(s->subxacts, cap * sizeof(*n));
		if (n == NULL)
			return error_set(err, PGF_E_MEMORY,
			                 "out of memory for the subtransactions of transaction %u",
			                 s->xid);
		s->subxacts = n;
		s->subxacts_cap = cap;
	}
	s->subxacts[s->nsubxacts].xid = xid;
	s->subxacts[s->nsubxacts].offset = s->size;
	s->nsubxacts++;
	/* at most half full, counting slots an abort left behind */
	if (2 * (s->slots_used + 1) > s->nslots) {
		size_t n = 128;
		uint32_t *slots;
		while (n < 4 * s->nsubxacts)
			n *= 2;
		slots = calloc(n, sizeof(*slots));
		if (slots == NULL)
			return error_set(err, PGF_E_MEMORY,
			                 "out of memory for the subtransactions of transaction %u",
			                 s->xid);
		free(s->slots);
		s->slots = slots;
		s->nslots = n;
		s->slots_used = 0;
		for (i = 0; i < s->nsubxacts; i++)
			subxact_slot_put(s, i);
	} else
		subxact_slot_put(s, s->nsubxacts - 1);
	return PGF_OK;
}

/* Writes one record: its header, then head (head_len bytes), then data. */
static int spill_write(stream_file_t *s, uint32_t subxid, uint64_t wal_start, const uint8_t *head,
                       size_t head_len, const uint8_t *data, size_t len, pgf_error_t *err)
{
	uint8_t hdr[SPILL_HEADER];

	/* remember where each subtransaction starts, for subtransaction aborts */
	if (subxid != 0 && subxid != s->xid && subxact_note(s, subxid, err) != PGF_OK)
		return PGF_ERR;
	be32_write(hdr, (uint32_t)(head_len + len));
	be64_write(hdr + 4, wal_start);
	if (util_write_all(s->fd, hdr, sizeof(hdr)) != PGF_OK ||
	    (head_len > 0 && util_write_all(s->fd, head, head_len) != PGF_OK) ||
	    util_write_all(s->fd, data, len) != PGF_OK) {
		error_set(err, PGF_E_IO, "could not write spill file \"%s\": %s", s->path,
		          strerror(errno));
		error_hint(err, "Check free space in work_dir.");
		return PGF_ERR;
	}
	s->size += (off_t)(sizeof(hdr) + head_len + len);
	return PGF_OK;
}

/* The head of a SPILL_FACTS or SPILL_HUGE record; its length. */
static size_t facts_head(uint8_t *head, uint8_t marker, uint32_t xid, const pgoutput_facts_t *facts)
{
	head[0] = marker;
	be32_write(head + 1, xid);
	memcpy(head + 5, facts, sizeof(*facts));
	return SPILL_FACTS_LEN;
}

int spill_append(stream_file_t *s, uint32_t xid, uint64_t wal_start, const pgoutput_facts_t *facts,
                 const uint8_t *data, size_t len, pgf_error_t *err)
{
	uint8_t head[SPILL_FACTS_LEN];

	if (facts == NULL)
		return spill_write(s, xid, wal_start, NULL, 0, data, len, err);
	return spill_write(s, xid, wal_start, head, facts_head(head, SPILL_FACTS, xid, facts), data,
	                   len, err);
}

int spill_append_huge(apply_spill_t *sp, stream_file_t *s, uint32_t xid, uint64_t wal_start,
                      uint8_t type, const pgoutput_facts_t *facts, const char *path,
                      pgf_error_t *err)
{
	uint8_t head[SPILL_HUGE_LEN];
	char name[600];

	huge_name(sp, s, s->nhuge, name, sizeof(name));
	if (rename(path, name) != 0)
		return error_set(err, PGF_E_IO, "could not move \"%s\" to \"%s\": %s", path, name,
		                 strerror(errno));
	s->nhuge++;
	facts_head(head, SPILL_HUGE, xid, facts);
	head[SPILL_FACTS_LEN] = type;
	return spill_write(s, xid, wal_start, head, sizeof(head), (const uint8_t *)name,
	                   strlen(name), err);
}

bool spill_record_parse(const buf_t *rec, spilled_t *out)
{
	const uint8_t *p = (const uint8_t *)rec->data;
	size_t head;

	memset(out, 0, offsetof(spilled_t, path));
	out->path[0] = '\0';
	if (rec->len == 0 || (p[0] != SPILL_FACTS && p[0] != SPILL_HUGE)) {
		out->type = rec->len ? p[0] : 0;
		out->data = p;
		out->len = rec->len;
		return true;
	}
	head = p[0] == SPILL_HUGE ? SPILL_HUGE_LEN : SPILL_FACTS_LEN;
	if (rec->len <= head)
		return false;
	out->xid = be32_read(p + 1);
	memcpy(&out->facts, p + 5, sizeof(out->facts));
	out->data = p + head;
	out->len = rec->len - head;
	if (p[0] == SPILL_FACTS) {
		out->type = out->data[0];
		return true;
	}
	out->huge = true;
	out->type = p[SPILL_FACTS_LEN];
	if (out->len >= sizeof(out->path))
		return false;
	memcpy(out->path, out->data, out->len);
	out->path[out->len] = '\0';
	return true;
}

int spill_abort(apply_spill_t *sp, uint32_t xid, uint32_t subxid, pgf_error_t *err)
{
	stream_file_t *s = spill_find(sp, xid);
	size_t i;

	if (s == NULL)
		return PGF_OK; /* nothing of it was spilled */
	if (subxid == xid || subxid == 0) {
		spill_close(sp, s, true);
		return PGF_OK;
	}
	i = subxact_find(s, subxid);
	if (i == s->nsubxacts)
		return PGF_OK; /* the subtransaction changed nothing */
	/* drop the subtransaction and every one started after it */
	if (ftruncate(s->fd, s->subxacts[i].offset) != 0 ||
	    lseek(s->fd, s->subxacts[i].offset, SEEK_SET) < 0)
		return error_set(err, PGF_E_IO, "could not truncate spill file \"%s\": %s", s->path,
		                 strerror(errno));
	s->size = s->subxacts[i].offset;
	s->nsubxacts = i;
	return PGF_OK;
}

bool spill_any_open(const apply_spill_t *sp)
{
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (sp->streams[i] != NULL)
			return true;
	return false;
}

int spill_read(const apply_spill_t *sp, const stream_file_t *s, off_t *pos, buf_t *rec,
               pgf_error_t *err)
{
	uint8_t hdr[SPILL_HEADER];
	uint32_t len;

	if (*pos >= s->size)
		return 0;
	if (util_pread_all(s->fd, hdr, sizeof(hdr), (uint64_t)*pos) != PGF_OK)
		return error_set(err, PGF_E_IO, "could not read spill file \"%s\": %s", s->path,
		                 strerror(errno));
	len = be32_read(hdr);
	if ((int64_t)len > sp->max_record || *pos + (off_t)sizeof(hdr) + (off_t)len > s->size)
		return error_set(err, PGF_E_IO, "spill file \"%s\" is corrupt at offset %lld",
		                 s->path, (long long)*pos);
	buf_reset(rec);
	if (!buf_reserve(rec, len))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	if (util_pread_all(s->fd, rec->data, len, (uint64_t)(*pos + (off_t)sizeof(hdr))) != PGF_OK)
		return error_set(err, PGF_E_IO, "could not read spill file \"%s\": %s", s->path,
		                 strerror(errno));
	rec->len = len;
	*pos += (off_t)sizeof(hdr) + (off_t)len;
	return 1;
}
