/*
 * queue.c — FIFO between the sink's network and apply threads (queue.h).
 */
#include "pgferry/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgferry/log.h"

void queue_init(queue_t *q)
{
	pthread_condattr_t attr;

	q->head = q->tail = NULL;
	q->bytes = q->items = 0;
	q->closed = false;
	q->memory_limit = q->memory_bytes = q->spooled_bytes = 0;
	q->spool_end = 0;
	q->spool_fd = -1;
	q->spool_failed = false;
	pthread_mutex_init(&q->lock, NULL);
	/* timed waits on the monotonic clock: wall-clock jumps must not stall apply */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &attr);
	pthread_condattr_destroy(&attr);
}

void queue_destroy(queue_t *q)
{
	queue_item_t *it = q->head, *next;

	for (; it; it = next) {
		next = it->next;
		queue_item_free(it);
	}
	q->head = q->tail = NULL;
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

/* Writes the item's data at the spool's end (under the lock); false if it
 * could not, in which case it stays in memory. */
static bool spool_write(queue_t *q, queue_item_t *item)
{
	size_t done = 0;

	while (done < item->len) {
		ssize_t w = pwrite(q->spool_fd, item->data + done, item->len - done,
		                   (off_t)(q->spool_end + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_error("could not write to the receive spool in work_dir (%s); received "
			          "batches now wait in memory only, and the sink reads less ahead",
			          w < 0 ? strerror(errno) : "no space");
			q->spool_failed = true;
			return false;
		}
		done += (size_t)w;
	}
	item->spool_offset = q->spool_end;
	q->spool_end += item->len;
	q->spooled_bytes += item->len;
	free(item->data);
	item->data = NULL;
	return true;
}

void queue_push(queue_t *q, queue_item_t *item)
{
	item->next = NULL;
	pthread_mutex_lock(&q->lock);
	/* once anything waits in the spool, everything after it goes there too:
	 * memory keeps room for the headers of what is spooled */
	if (q->spool_fd < 0 || q->spool_failed || item->len == 0 ||
	    (q->spooled_bytes == 0 &&
	     q->memory_bytes + item->len + sizeof(*item) <= q->memory_limit) ||
	    !spool_write(q, item))
		q->memory_bytes += item->len;
	/* every waiting item's header counts too: many small spooled batches
	 * must not grow memory past the limit either */
	q->memory_bytes += sizeof(*item);
	if (q->tail)
		q->tail->next = item;
	else
		q->head = item;
	q->tail = item;
	q->bytes += item->len;
	q->items++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Reads a spooled item back. Its region stays counted until read, so the
 * spool is not truncated under it; data stays NULL if the read fails. */
static void spool_read(queue_t *q, queue_item_t *it)
{
	uint8_t *data = malloc(it->len);
	size_t done = 0;

	while (data != NULL && done < it->len) {
		ssize_t r = pread(q->spool_fd, data + done, it->len - done,
		                  (off_t)(it->spool_offset + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_error("could not read back from the receive spool in work_dir (%s)",
			          r < 0 ? strerror(errno) : "short file");
			free(data);
			data = NULL;
		} else
			done += (size_t)r;
	}
	it->data = data;
	pthread_mutex_lock(&q->lock);
	q->spooled_bytes -= it->len;
	if (q->spooled_bytes == 0) {
		/* everything spooled was read: start the file over */
		q->spool_end = 0;
		if (ftruncate(q->spool_fd, 0) != 0)
			log_warning("could not truncate the receive spool: %s", strerror(errno));
	}
	pthread_mutex_unlock(&q->lock);
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
	while (q->head == NULL && !q->closed && timeout_ms > 0) {
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
		if (it->data != NULL || it->len == 0)
			q->memory_bytes -= it->len;
		q->memory_bytes -= sizeof(*it);
		it->next = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	if (it && it->data == NULL && it->len > 0)
		spool_read(q, it);
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

size_t queue_spooled_bytes(queue_t *q)
{
	return read_counter(q, &q->spooled_bytes);
}

bool queue_empty(queue_t *q)
{
	bool e;

	pthread_mutex_lock(&q->lock);
	e = q->head == NULL;
	pthread_mutex_unlock(&q->lock);
	return e;
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
