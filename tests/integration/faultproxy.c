/*
 * faultproxy.c — a TCP proxy for integration tests that damages the stream
 * on purpose: it forwards 127.0.0.1:LISTEN to 127.0.0.1:TARGET and, on the
 * first connection only, flips one bit of the client-to-server bytes at
 * offset N. Later connections pass untouched, so a resend must succeed.
 *
 *   faultproxy LISTEN_PORT TARGET_PORT FLIP_OFFSET
 *
 * It prints "flipped" on stdout when it did. Test-only; not installed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
static void relay(int client, int server, long long *flip_at)
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
			if (write_all(server, buf, (size_t)n) != 0)
				return;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(server, buf, sizeof(buf));
			if (n <= 0 || write_all(client, buf, (size_t)n) != 0)
				return;
		}
	}
}

int main(int argc, char **argv)
{
	int lfd, target;
	long long flip_at;

	if (argc != 4) {
		fprintf(stderr, "usage: faultproxy LISTEN_PORT TARGET_PORT FLIP_OFFSET\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(atoi(argv[1]));
	target = atoi(argv[2]);
	flip_at = atoll(argv[3]);
	for (;;) {
		int c = accept(lfd, NULL, NULL), s;
		if (c < 0)
			continue;
		s = connect_to(target);
		if (s >= 0) {
			relay(c, s, &flip_at);
			close(s);
		}
		close(c);
	}
}
