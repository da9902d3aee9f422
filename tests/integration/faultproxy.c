/*
 * faultproxy.c — a TCP proxy for integration tests that damages the stream
 * on purpose: it forwards 127.0.0.1:LISTEN to 127.0.0.1:TARGET and, on the
 * first connection only, flips one bit of the client-to-server bytes at
 * offset N. Later connections pass untouched, so a resend must succeed.
 *
 *   faultproxy LISTEN_PORT TARGET_PORT FLIP_OFFSET
 *
 * It prints "flipped" on stdout when it did, and "bytes up=N down=M" (all
 * connections so far) whenever a connection ends and on SIGTERM, so that
 * benchmarks can count what crossed the wire. A negative offset flips
 * nothing. Test-only; not installed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* shared between the forked connection handlers */
typedef struct shared {
	volatile long long up, down;
	volatile long long flip_at;
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

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Forwards until either side closes; flips the bit at *flip_at (client to
 * server) when it passes, then sets *flip_at to -1. */
static void relay(int client, int server, volatile long long *flip_at)
{
	struct pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
	long long seen = 0;
	char buf[65536];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(client, buf, sizeof(buf));
			if (n <= 0)
				return;
			if (*flip_at >= seen && *flip_at < seen + n) {
				buf[*flip_at - seen] ^= 0x10;
				*flip_at = -1;
				printf("flipped\n");
				fflush(stdout);
			}
			seen += n;
			__atomic_add_fetch(&shared->up, n, __ATOMIC_RELAXED);
			if (write_all(server, buf, (size_t)n) != 0)
				return;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(server, buf, sizeof(buf));
			if (n <= 0 || write_all(client, buf, (size_t)n) != 0)
				return;
			__atomic_add_fetch(&shared->down, n, __ATOMIC_RELAXED);
		}
	}
}

int main(int argc, char **argv)
{
	int lfd, target;

	if (argc != 4) {
		fprintf(stderr, "usage: faultproxy LISTEN_PORT TARGET_PORT FLIP_OFFSET\n");
		return 2;
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
	shared->flip_at = atoll(argv[3]);
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
