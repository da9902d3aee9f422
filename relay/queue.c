/*
 * queue.c — FIFO between the sink's network and apply threads (queue.h).
 */
#include "pgferry/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

void queue_init(queue_t *q)
{
	pthread_condattr_t attr;

	q->head = q->tail = NULL;
	q->bytes = q->items = 0;
	q->closed = false;
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
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

void queue_push(queue_t *q, queue_item_t *item)
{
	item->next = NULL;
	pthread_mutex_lock(&q->lock);
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
		it->next = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return it;
}

size_t queue_bytes(queue_t *q)
{
	size_t b;

	pthread_mutex_lock(&q->lock);
	b = q->bytes;
	pthread_mutex_unlock(&q->lock);
	return b;
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
