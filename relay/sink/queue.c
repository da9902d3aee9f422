/*
 * queue.c — FIFO between the sink's network and apply threads (queue.h).
 */
#include "pgferry/queue.h"

#include "pgferry/error.h"
#include "pgferry/util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void queue_init(queue_t *q)
{
	pthread_condattr_t attr;

	q->head = q->tail = q->after = q->after_tail = NULL;
	q->bytes = q->items = 0;
	q->closed = false;
	q->received_commit = 0;
	q->primary_flush = q->primary_flush_session = 0;
	q->memory_limit = q->memory_bytes = q->spooled_bytes = q->spooled_items = 0;
	q->spool_read = q->spool_end = q->spool_last_session = 0;
	q->spool_fd = -1;
	q->spool_failed = false;
	q->spool_error[0] = '\0';
	q->spool_failures = 0;
	q->notices_first = q->notices_count = 0;
	q->notices_dropped = 0;
	pthread_mutex_init(&q->lock, NULL);
	/* timed waits on the monotonic clock: wall-clock jumps must not stall apply */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &attr);
	pthread_condattr_destroy(&attr);
}

static void free_list(queue_item_t *it)
{
	queue_item_t *next;

	for (; it; it = next) {
		next = it->next;
		queue_item_free(it);
	}
}

void queue_destroy(queue_t *q)
{
	free_list(q->head);
	free_list(q->after);
	q->head = q->tail = q->after = q->after_tail = NULL;
	if (q->spool_fd >= 0)
		close(q->spool_fd);
	q->spool_fd = -1;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

int queue_spool_open(queue_t *q, const char *path, size_t memory_limit)
{
	int fd;

	/* a name left by a crash, or a link planted there, goes first; O_EXCL |
	 * O_NOFOLLOW then creates a new file or fails, and never writes through a
	 * link into someone else's file */
	if (unlink(path) != 0 && errno != ENOENT)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* nameless from now on: a crashed sink leaves nothing behind, and the
	 * spool is never a resume point */
	unlink(path);
	q->spool_fd = fd;
	q->memory_limit = memory_limit;
	return 0;
}

/* A notice for the loop to log (under the lock). */
static void notice(queue_t *q, log_level_t level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void notice(queue_t *q, log_level_t level, const char *fmt, ...)
{
	queue_notice_t *n;
	va_list ap;

	if (q->notices_count == QUEUE_NOTICES) {
		q->notices_dropped++;
		return;
	}
	n = &q->notices[(q->notices_first + q->notices_count) % QUEUE_NOTICES];
	q->notices_count++;
	n->level = level;
	va_start(ap, fmt);
	vsnprintf(n->text, sizeof(n->text), fmt, ap);
	va_end(ap);
}

bool queue_take_notice(queue_t *q, queue_notice_t *out)
{
	bool any;

	pthread_mutex_lock(&q->lock);
	any = q->notices_count > 0;
	if (any) {
		*out = q->notices[q->notices_first];
		q->notices_first = (q->notices_first + 1) % QUEUE_NOTICES;
		q->notices_count--;
		if (q->notices_dropped > 0) {
			size_t n = strlen(out->text);
			snprintf(out->text + n, sizeof(out->text) - n,
			         " (and %llu later notices of the receive spool were not kept)",
			         (unsigned long long)q->notices_dropped);
			q->notices_dropped = 0;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return any;
}

/* The spool is off until QUEUE_SPOOL_RETRY_S have passed (under the lock). */
static void spool_fail(queue_t *q, const char *what, int errnum)
{
	q->spool_failed = true;
	q->spool_failures++;
	clock_gettime(CLOCK_MONOTONIC, &q->spool_failed_at);
	snprintf(q->spool_error, sizeof(q->spool_error), "%s: %s", what, strerror(errnum));
}

/* After a failure, the spool is used again once the retry delay has
 * passed and nothing waits in it or behind it (so order is kept). */
static void spool_maybe_retry(queue_t *q)
{
	struct timespec now;

	if (!q->spool_failed || q->spooled_items > 0 || q->after != NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - q->spool_failed_at.tv_sec < QUEUE_SPOOL_RETRY_S)
		return;
	if (ftruncate(q->spool_fd, 0) != 0)
		return; /* still broken: try again later */
	q->spool_read = q->spool_end = 0;
	q->spool_failed = false;
	q->spool_error[0] = '\0';
	notice(q, LOG_INFO, "using the receive spool again, %lld s after it failed",
	       (long long)(now.tv_sec - q->spool_failed_at.tv_sec));
}

/* Writes the item (its header, then its data) at the spool's end and frees
 * it (under the lock); false if it could not, in which case the caller keeps
 * it in memory. The header is this process's own struct in this process's
 * own nameless file: pointers in it are never used again. */
static bool spool_write(queue_t *q, queue_item_t *item)
{
	if (util_pwrite_all(q->spool_fd, item, sizeof(*item), q->spool_end) != PGF_OK ||
	    (item->len > 0 && util_pwrite_all(q->spool_fd, item->data, item->len,
	                                      q->spool_end + sizeof(*item)) != PGF_OK)) {
		int e = errno;
		notice(q, LOG_ERROR,
		       "could not write to the receive spool in work_dir (%s); received "
		       "batches wait in memory only, and the sink reads less ahead, until it "
		       "tries the spool again in %d s",
		       strerror(e), QUEUE_SPOOL_RETRY_S);
		spool_fail(q, "writing the receive spool", e);
		return false;
	}
	q->spool_end += sizeof(*item) + item->len;
	/* the header takes disk as the data does: spool_disk_limit counts both */
	q->spooled_bytes += sizeof(*item) + item->len;
	q->bytes += sizeof(*item);
	q->spooled_items++;
	q->spool_last_session = item->session;
	queue_item_free(item);
	return true;
}

static void append(queue_item_t **head, queue_item_t **tail, queue_item_t *item)
{
	if (*tail)
		(*tail)->next = item;
	else
		*head = item;
	*tail = item;
}

void queue_push(queue_t *q, queue_item_t *item)
{
	item->next = NULL;
	pthread_mutex_lock(&q->lock);
	/* before the item can be popped: its BEGINs are judged by it */
	if (item->commit_lsn > q->received_commit)
		q->received_commit = item->commit_lsn;
	q->bytes += item->len;
	q->items++;
	if (q->spool_fd >= 0)
		spool_maybe_retry(q);
	/* once anything waits in the spool, everything after it goes there too
	 * (order); in memory, data and header count against the limit */
	if (q->spool_fd >= 0 && !q->spool_failed &&
	    (q->spooled_items > 0 ||
	     q->memory_bytes + item->len + sizeof(*item) > q->memory_limit) &&
	    spool_write(q, item)) {
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
		return;
	}
	q->memory_bytes += item->len + sizeof(*item);
	if (q->spooled_items > 0 || q->after != NULL)
		append(&q->after, &q->after_tail, item);
	else
		append(&q->head, &q->tail, item);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* The oldest spooled item, read back (the consumer's side; called without
 * the lock: the producer only appends beyond spool_end, and only this
 * consumer moves spool_read). On a failure the whole spool is dropped and a
 * QUEUE_RECORDS item with data NULL stands for it. */
static queue_item_t *spool_take(queue_t *q)
{
	queue_item_t header, *it = NULL;
	uint8_t *data = NULL;
	uint64_t offset;
	bool ok;

	pthread_mutex_lock(&q->lock);
	offset = q->spool_read;
	pthread_mutex_unlock(&q->lock);
	ok = util_pread_all(q->spool_fd, &header, sizeof(header), offset) == PGF_OK;
	if (ok && header.len > 0)
		ok = (data = malloc(header.len)) != NULL &&
		     util_pread_all(q->spool_fd, data, header.len, offset + sizeof(header)) ==
		             PGF_OK;
	if (ok)
		ok = (it = malloc(sizeof(*it))) != NULL;
	pthread_mutex_lock(&q->lock);
	if (ok) {
		*it = header;
		it->next = NULL;
		it->data = data;
		q->spool_read = offset + sizeof(header) + header.len;
		q->spooled_bytes -= sizeof(header) + header.len;
		q->spooled_items--;
		q->bytes -= sizeof(header) + header.len;
		q->items--;
	} else {
		int e = errno;
		notice(q, LOG_ERROR,
		       "could not read back from the receive spool in work_dir (%s); what "
		       "waited there is dropped and the source resends it",
		       strerror(e));
		spool_fail(q, "reading the receive spool back", e);
		free(data);
		it = queue_item_new(QUEUE_RECORDS, q->spool_last_session);
		if (it != NULL)
			it->len = 1; /* data NULL with a length: lost */
		q->bytes -= q->spooled_bytes;
		q->items -= q->spooled_items;
		q->spooled_bytes = q->spooled_items = 0;
	}
	if (q->spooled_items == 0) {
		/* everything spooled was read: start the file over; what waited
		 * behind the spool comes next */
		q->spool_read = q->spool_end = 0;
		if (ftruncate(q->spool_fd, 0) != 0)
			notice(q, LOG_WARNING, "could not truncate the receive spool: %s",
			       strerror(errno));
		q->head = q->after;
		q->tail = q->after_tail;
		q->after = q->after_tail = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return it;
}

queue_item_t *queue_pop(queue_t *q, int timeout_ms)
{
	queue_item_t *it;
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q->lock);
	while (q->items == 0 && !q->closed && timeout_ms > 0) {
		if (pthread_cond_timedwait(&q->cond, &q->lock, &deadline) == ETIMEDOUT)
			break;
	}
	it = q->head;
	if (it) {
		q->head = it->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->bytes -= it->len;
		q->items--;
		q->memory_bytes -= it->len + sizeof(*it);
		it->next = NULL;
	} else if (q->spooled_items > 0) {
		pthread_mutex_unlock(&q->lock);
		return spool_take(q);
	}
	pthread_mutex_unlock(&q->lock);
	return it;
}

/* One counter, read under the lock. */
static size_t read_counter(queue_t *q, const size_t *counter)
{
	size_t v;

	pthread_mutex_lock(&q->lock);
	v = *counter;
	pthread_mutex_unlock(&q->lock);
	return v;
}

size_t queue_bytes(queue_t *q)
{
	return read_counter(q, &q->bytes);
}

size_t queue_memory_bytes(queue_t *q)
{
	return read_counter(q, &q->memory_bytes);
}

bool queue_spool_fault(queue_t *q, char *error, size_t len, uint64_t *failures)
{
	bool failed;

	pthread_mutex_lock(&q->lock);
	failed = q->spool_failed;
	snprintf(error, len, "%s", failed ? q->spool_error : "");
	*failures = q->spool_failures;
	pthread_mutex_unlock(&q->lock);
	return failed;
}

size_t queue_spooled_bytes(queue_t *q)
{
	return read_counter(q, &q->spooled_bytes);
}

bool queue_empty(queue_t *q)
{
	bool e;

	pthread_mutex_lock(&q->lock);
	e = q->items == 0;
	pthread_mutex_unlock(&q->lock);
	return e;
}

uint64_t queue_received_commit(queue_t *q)
{
	uint64_t v;

	pthread_mutex_lock(&q->lock);
	v = q->received_commit;
	pthread_mutex_unlock(&q->lock);
	return v;
}

/* README (spool_memory_limit) counts this much bookkeeping per record */
_Static_assert(sizeof(queue_record_t) == 48, "queue_record_t is 48 bytes");

/* The records' facts start here, aligned for them. */
static size_t records_start(size_t raw_len)
{
	size_t a = _Alignof(queue_record_t);

	return (raw_len + a - 1) / a * a;
}

size_t queue_records_size(size_t raw_len, uint32_t nrecords)
{
	return records_start(raw_len) + (size_t)nrecords * sizeof(queue_record_t);
}

queue_record_t *queue_item_set_records(queue_item_t *it, uint8_t *data, size_t raw_len,
                                       uint32_t nrecords)
{
	queue_record_t *r = (queue_record_t *)(data + records_start(raw_len));

	it->data = data;
	it->len = queue_records_size(raw_len, nrecords);
	it->nrecords = nrecords;
	memset(data + raw_len, 0, it->len - raw_len);
	return r;
}

void queue_set_primary_flush(queue_t *q, uint64_t session, uint64_t flush_lsn)
{
	pthread_mutex_lock(&q->lock);
	if (session != q->primary_flush_session || flush_lsn > q->primary_flush) {
		q->primary_flush_session = session;
		q->primary_flush = flush_lsn;
	}
	pthread_mutex_unlock(&q->lock);
}

uint64_t queue_primary_flush(queue_t *q, uint64_t session)
{
	uint64_t v;

	pthread_mutex_lock(&q->lock);
	v = session == q->primary_flush_session ? q->primary_flush : 0;
	pthread_mutex_unlock(&q->lock);
	return v;
}

bool queue_item_records(const queue_item_t *it, const queue_record_t **records)
{
	size_t head = (size_t)it->nrecords * sizeof(queue_record_t), start, i;
	const queue_record_t *r;

	*records = NULL;
	if (it->data == NULL || head > it->len)
		return false;
	start = it->len - head;
	if (start % _Alignof(queue_record_t) != 0)
		return false;
	r = (const queue_record_t *)(it->data + start);
	for (i = 0; i < it->nrecords; i++)
		if (r[i].kind == 'w' && (r[i].offset > start || r[i].len > start - r[i].offset))
			return false;
	*records = r;
	return true;
}

const uint8_t *queue_record_message(const queue_item_t *it, const queue_record_t *r)
{
	return it->data + r->offset;
}

void queue_close(queue_t *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

queue_item_t *queue_item_new(queue_kind_t kind, uint64_t session)
{
	queue_item_t *it = calloc(1, sizeof(*it));

	if (it) {
		it->kind = kind;
		it->session = session;
	}
	return it;
}

void queue_item_free(queue_item_t *item)
{
	if (item) {
		free(item->data);
		free(item);
	}
}
