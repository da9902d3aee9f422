/*
 * huge_change.c — the pieces of a message larger than a batch, put
 * together in a private file instead of memory (huge_change.h). The first
 * piece starts with the walsender's XLogData header; the file gets the
 * pgoutput message after it.
 */
#include "pgferry/huge_change.h"

#include "pgferry/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void huge_change_init(huge_change_t *h, const char *work_dir)
{
	memset(h, 0, sizeof(*h));
	h->work_dir = work_dir;
	h->fd = -1;
}

void huge_change_path(const char *work_dir, uint64_t session, uint64_t n, char *path, size_t size)
{
	snprintf(path, size, "%s/" HUGE_CHANGE_PREFIX "%" PRIu64 "-%" PRIu64 ".change", work_dir,
	         session, n);
}

int huge_change_clean(const char *work_dir)
{
	DIR *d = opendir(work_dir);
	struct dirent *e;
	char path[768];
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, HUGE_CHANGE_PREFIX, strlen(HUGE_CHANGE_PREFIX)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", work_dir, e->d_name);
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

bool huge_change_open(const huge_change_t *h)
{
	return h->fd >= 0;
}

void huge_change_abort(huge_change_t *h)
{
	if (h->fd < 0)
		return;
	close(h->fd);
	unlink(h->path);
	h->fd = -1;
	h->len = 0;
}

/* The first piece: its header says where the message is in the WAL. */
static int start_file(huge_change_t *h, uint64_t session, const uint8_t *piece, size_t len,
                      pgf_error_t *err)
{
	if (walsender_parse(piece, len, &h->head, err) != PGF_OK)
		return PGF_ERR;
	if (h->head.kind != 'w' || h->head.payload_len == 0)
		return error_set(
		        err, PGF_E_PROTOCOL,
		        "a message in pieces that is not a change (walsender message '%c')",
		        h->head.kind);
	snprintf(h->path, sizeof(h->path),
	         "%s/" HUGE_CHANGE_PREFIX "%" PRIu64 "-%" PRIu64 ".change", h->work_dir, session,
	         ++h->counter);
	/* private, and never through a link another user planted */
	if (unlink(h->path) != 0 && errno != ENOENT)
		h->fd = -1;
	else
		h->fd = open(h->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (h->fd < 0) {
		error_set(err, PGF_E_IO,
		          "could not create \"%s\" for a change of more than %zu bytes: %s",
		          h->path, len, strerror(errno));
		error_hint(err, "Check that work_dir exists, is writable and has free space.");
		return PGF_ERR;
	}
	h->len = 0;
	return PGF_OK;
}

/* A row change: its head (type, xid) from the first piece alone. */
static bool is_row_change(uint8_t type)
{
	return type == PGOUTPUT_INSERT || type == PGOUTPUT_UPDATE || type == PGOUTPUT_DELETE;
}

/* Anything else: read back and decoded whole, as any message is checked. */
static int decode_whole(huge_change_t *h, pgoutput_decoder_t *d, pgoutput_message_t *m,
                        pgf_error_t *err)
{
	uint8_t *buf = malloc(h->len ? h->len : 1);
	int fd = open(h->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc;

	if (buf == NULL || fd < 0 || util_pread_all(fd, buf, h->len, 0) != PGF_OK)
		rc = error_set(err, PGF_E_IO, "could not read back \"%s\": %s", h->path,
		               strerror(errno));
	else
		rc = pgoutput_decode_header(d, buf, h->len, m, err);
	if (rc == PGF_OK)
		pgoutput_facts_set(m, buf, &h->facts);
	/* the caller reads a Message's prefix (a heartbeat?) after buf is freed */
	if (rc == PGF_OK && m->type == PGOUTPUT_MESSAGE) {
		snprintf(h->prefix, sizeof(h->prefix), "%s", m->u.message.prefix);
		m->u.message.prefix = h->prefix;
		m->u.message.content = NULL;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int huge_change_add(huge_change_t *h, uint64_t session, const uint8_t *piece, size_t len,
                    bool continues, pgoutput_decoder_t *d, pgoutput_message_t *m, bool *complete,
                    pgf_error_t *err)
{
	const uint8_t *data = piece;

	*complete = false;
	if (h->fd < 0) {
		if (!continues)
			return error_set(err, PGF_E_PROTOCOL, "a message of one piece");
		if (start_file(h, session, piece, len, err) != PGF_OK)
			return PGF_ERR;
		data = h->head.payload;
		len = h->head.payload_len;
		h->type = data[0];
		h->xid = 0;
		memset(&h->facts, 0, sizeof(h->facts));
		if (is_row_change(h->type)) {
			if (pgoutput_decode_header(d, data, len, m, err) != PGF_OK) {
				huge_change_abort(h);
				return PGF_ERR;
			}
			h->xid = m->has_xid ? m->xid : 0;
		}
	}
	if (util_write_all(h->fd, data, len) != PGF_OK) {
		error_set(err, PGF_E_IO, "could not write %zu bytes to \"%s\": %s", len, h->path,
		          strerror(errno));
		error_hint(err, "Check that work_dir has free space for the largest row change.");
		huge_change_abort(h);
		return PGF_ERR;
	}
	h->len += len;
	if (continues)
		return PGF_OK;
	if (close(h->fd) != 0) {
		h->fd = -1;
		unlink(h->path);
		return error_set(err, PGF_E_IO, "could not write \"%s\": %s", h->path,
		                 strerror(errno));
	}
	h->fd = -1;
	if (!is_row_change(h->type) && decode_whole(h, d, m, err) != PGF_OK) {
		unlink(h->path);
		return PGF_ERR;
	}
	m->type = (pgoutput_type_t)h->type;
	*complete = true;
	return PGF_OK;
}
