/*
 * faultproxy.c — a TCP proxy for integration tests and benchmarks: it
 * forwards 127.0.0.1:LISTEN to 127.0.0.1:TARGET and, on the first connection
 * only, flips one bit of the client-to-server bytes at offset N. Later
 * connections pass untouched, so a resend must succeed.
 *
 *   faultproxy LISTEN_PORT TARGET_PORT FLIP_OFFSET|cut:N [DELAY_MS [RATE_KBPS]]
 *
 * DELAY_MS holds every byte that long in each direction before passing it
 * on, which emulates a long link (40 gives an 80 ms round trip) where the
 * kernel has no netem. The client's first bytes also wait for the round
 * trip of TCP's handshake, which the loopback connect skipped: on a real
 * link connect() returns a round trip after it was called. At most 64 MB wait in each direction;
 * beyond that the proxy stops reading, as a full TCP window would. RATE_KBPS (kB/s, each direction)
 * paces the bytes as a slow link would (a bandwidth cap); with a rate and a delay, what may wait is
 * the link's bandwidth-delay product twice over (at least 1 MB), so a sender meets the link's pace
 * through TCP's back-pressure rather than a buffer no real link has.
 *
 * A FLIP_OFFSET of "len" instead follows the client-to-server frame
 * headers (wire.h) and, once the proxy gets SIGUSR1, flips bit 25 of the
 * length field (+32 MB: a frame that never ends) of the next header that
 * starts. It needs no byte offset, so a test aims it at a quiet moment.
 *
 * A FLIP_OFFSET of cut:N instead cuts the first connection after N
 * client-to-server bytes (both sides closed once those N have passed): a
 * frame truncated mid-way, as a link that dies would leave it.
 *
 * It prints "flipped" (or "cut") on stdout when it did, and "bytes up=N down=M" (all
 * connections so far) whenever a connection ends and on SIGTERM, so that
 * benchmarks can count what crossed the wire. A negative offset flips
 * nothing. Test-only; not installed.
 */
#include "pgferry/byteorder.h"
#include "pgferry/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* shared between the forked connection handlers */
typedef struct shared {
	volatile long long up, down;
	volatile long long flip_at;
	volatile long long cut_at;
	volatile int len_flip; /* 0 off, 1 waiting for SIGUSR1, 2 armed */
} shared_t;
static shared_t *shared;

static void print_totals(void)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "bytes up=%lld down=%lld\n", shared->up, shared->down);
	/* async-signal-safe: also called from the SIGTERM handler */
	if (write(1, line, (size_t)n) < 0)
		return;
}

static void on_term(int sig)
{
	(void)sig;
	print_totals();
	_exit(0);
}

static void on_usr1(int sig)
{
	(void)sig;
	if (shared->len_flip == 1)
		shared->len_flip = 2;
}

/* where the frame headers of the client-to-server stream are */
typedef struct track {
	long long next_hdr; /* stream offset of the next header */
	uint8_t h[WIRE_HEADER_LEN];
	int got;
	int flipping;
} track_t;

/* Walks the header bytes among buf (stream offsets seen .. seen+n), jumping
 * over payloads; flips the length of the first header after arming. */
static void track_frames(track_t *t, char *buf, long long seen, ssize_t n)
{
	while (t->next_hdr + t->got < seen + n) {
		long long pos = t->next_hdr + t->got;
		if (t->got == 0 && shared->len_flip == 2) {
			t->flipping = 1;
			shared->len_flip = 0;
		}
		t->h[t->got++] = (uint8_t)buf[pos - seen];
		if (t->got == 2 && t->flipping) {
			buf[pos - seen] ^= 0x02;
			t->flipping = 0;
			printf("flipped bit 25 of the length of a type %u frame header at byte "
			       "%lld\n",
			       t->h[0], t->next_hdr);
			fflush(stdout);
		}
		if (t->got == WIRE_HEADER_LEN) {
			t->next_hdr += WIRE_HEADER_LEN + (long long)be32_read(t->h + 1);
			t->got = 0;
		}
	}
}

static int listen_on(int port)
{
	struct sockaddr_in a = {0};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0) {
		perror("faultproxy: listen");
		exit(2);
	}
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

#define QUEUE_MAX (64LL << 20)
static long long queue_max = QUEUE_MAX;

/* bytes read at one time, due for writing DELAY_MS later */
typedef struct chunk {
	struct chunk *next;
	long long due_us;
	size_t len, off;
	char data[];
} chunk_t;

/* one direction of a connection */
typedef struct dir {
	int from, to;
	chunk_t *head, *tail;
	long long queued;
	int eof;
	volatile long long *count;
	long long link_free_us;  /* with a rate: when the link has sent what it holds */
	long long not_before_us; /* no byte leaves before (TCP's handshake) */
} dir_t;

static long long delay_us;
static long long rate_bytes_per_s;

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads what is there into a new chunk; 0 at end of stream or error. */
static int take(dir_t *d, volatile long long *flip_at, long long *seen, track_t *t)
{
	char buf[65536];
	ssize_t n = read(d->from, buf, sizeof(buf));
	chunk_t *c;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (n <= 0) {
		d->eof = 1;
		return n == 0;
	}
	if (flip_at != NULL && *flip_at >= *seen && *flip_at < *seen + n) {
		buf[*flip_at - *seen] ^= 0x10;
		*flip_at = -1;
		printf("flipped\n");
		fflush(stdout);
	}
	if (flip_at != NULL && shared->len_flip)
		track_frames(t, buf, *seen, n);
	if (flip_at != NULL && shared->cut_at >= 0 && shared->cut_at < *seen + n) {
		/* pass what comes before the cut, then end this connection */
		n = (ssize_t)(shared->cut_at - *seen);
		shared->cut_at = -1;
		d->eof = 1;
		printf("cut\n");
		fflush(stdout);
	}
	if (flip_at != NULL)
		*seen += n;
	__atomic_add_fetch(d->count, n, __ATOMIC_RELAXED);
	c = malloc(sizeof(*c) + (size_t)n);
	if (c == NULL)
		return 0;
	c->next = NULL;
	c->due_us = now_us();
	if (c->due_us < d->not_before_us)
		c->due_us = d->not_before_us;
	c->due_us += delay_us;
	if (rate_bytes_per_s > 0) {
		/* the chunk leaves once the link has carried it after what came before */
		if (d->link_free_us > c->due_us)
			c->due_us = d->link_free_us;
		c->due_us += (long long)n * 1000000 / rate_bytes_per_s;
		d->link_free_us = c->due_us;
	}
	c->len = (size_t)n;
	c->off = 0;
	memcpy(c->data, buf, (size_t)n);
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->queued += n;
	return 1;
}

/* Writes what is due without blocking; 0 on a write error. */
static int give(dir_t *d, long long now)
{
	while (d->head != NULL && d->head->due_us <= now) {
		chunk_t *c = d->head;
		ssize_t w = write(d->to, c->data + c->off, c->len - c->off);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR;
		c->off += (size_t)w;
		if (c->off < c->len)
			return 1;
		d->queued -= (long long)c->len;
		d->head = c->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(c);
	}
	return 1;
}

/* Forwards until either side closes (and what it sent has passed); flips
 * the bit at *flip_at (client to server) when it passes, then sets *flip_at
 * to -1. Non-blocking both ways, so neither side can wedge the other. */
static void relay(int client, int server, volatile long long *flip_at)
{
	/* the client's connect() returned at once; its SYN and SYN-ACK would
	 * have crossed the link first */
	dir_t d[2] = {{client, server, NULL, NULL, 0, 0, &shared->up, 0, now_us() + 2 * delay_us},
	              {server, client, NULL, NULL, 0, 0, &shared->down, 0, 0}};
	long long seen = 0;
	track_t t = {0};
	int one = 1;

	fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK);
	fcntl(server, F_SETFL, fcntl(server, F_GETFL) | O_NONBLOCK);
	/* a chunk leaves when it is due, as on a link: without this, Nagle's
	 * algorithm holds a small write until the peer's delayed ACK (tens of
	 * ms on loopback), which delays every replica's stream alike */
	setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (;;) {
		struct pollfd p[2] = {{client, 0, 0}, {server, 0, 0}};
		long long now = now_us();
		int timeout = -1;

		for (int i = 0; i < 2; i++) {
			if (d[i].eof && d[i].head == NULL)
				return;
			if (!d[i].eof && d[i].queued < queue_max)
				p[i].events |= POLLIN;
			if (d[i].head == NULL)
				continue;
			if (d[i].head->due_us <= now) {
				p[1 - i].events |= POLLOUT;
			} else {
				int ms = (int)((d[i].head->due_us - now + 999) / 1000);
				if (timeout < 0 || ms < timeout)
					timeout = ms;
			}
		}
		if (poll(p, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    (p[i].events & POLLIN) &&
			    !take(&d[i], i == 0 ? flip_at : NULL, &seen, &t))
				return;
		}
		now = now_us();
		for (int i = 0; i < 2; i++)
			if (!give(&d[i], now))
				return;
	}
}

int main(int argc, char **argv)
{
	int lfd, target;

	if (argc < 4 || argc > 6) {
		fprintf(stderr, "usage: faultproxy LISTEN_PORT TARGET_PORT FLIP_OFFSET|len|cut:N "
		                "[DELAY_MS [RATE_KBPS]]\n");
		return 2;
	}
	delay_us = argc >= 5 ? atoll(argv[4]) * 1000 : 0;
	rate_bytes_per_s = argc == 6 ? atoll(argv[5]) * 1000 : 0;
	if (rate_bytes_per_s > 0 && delay_us > 0) {
		/* 2 x bandwidth x round trip (2 x delay) */
		queue_max = rate_bytes_per_s * 4 * delay_us / 1000000;
		if (queue_max < (1LL << 20))
			queue_max = 1LL << 20;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	lfd = listen_on(atoi(argv[1]));
	target = atoi(argv[2]);
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
	              0);
	if (shared == MAP_FAILED)
		return 2;
	shared->cut_at = -1;
	if (strcmp(argv[3], "len") == 0) {
		shared->flip_at = -1;
		shared->len_flip = 1;
		signal(SIGUSR1, on_usr1);
	} else if (strncmp(argv[3], "cut:", 4) == 0) {
		shared->cut_at = atoll(argv[3] + 4);
		shared->flip_at = -1;
	} else {
		shared->flip_at = atoll(argv[3]);
	}
	signal(SIGCHLD, SIG_IGN); /* no zombies */
	for (;;) {
		int c = accept(lfd, NULL, NULL), s;
		if (c < 0)
			continue;
		if (fork() == 0) {
			/* one process per connection, so several may be open at once */
			signal(SIGTERM, SIG_DFL);
			close(lfd);
			s = connect_to(target);
			if (s >= 0) {
				relay(c, s, &shared->flip_at);
				close(s);
			}
			close(c);
			print_totals();
			_exit(0);
		}
		close(c);
	}
}
