/*
 * echo: the pods' TCP/UDP echo server and client (started by
 * lab/apps/pod-apps.ts). C, not Node: the scenarios start ~50 clients per
 * demo, and a Node start costs ~0.2 CPU s here where this costs ~1 ms.
 * Built by `make -C bpf` into bpf/build/echo.
 *
 *   echo serve tcp|udp PORT
 *       "READY tcp PORT" once listening, then for every read (TCP) or
 *       datagram (UDP) one "RECV <peer ip>:<port> <text>" line (the text with
 *       surrounding whitespace cut), and the bytes are sent back.
 *   echo send tcp|udp HOST PORT TEXT [--timeout MS] [--count N]
 *       "ECHO <text>" per reply; exit 0 when every message came back, 1 on
 *       an error or at MS (default 5000; "echo: …" on stderr), 2 on bad usage.
 *       TCP: one connection, TEXT once, done when as many bytes came back.
 *       UDP has no retransmit: N datagrams (TEXT, or TEXT-0 … TEXT-<N-1>
 *       when N > 1) 100 ms apart, done when N came back.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define BUF_BYTES 65536
#define UDP_GAP_MS 100

static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("echo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void usage(void)
{
	die(2, "usage: echo serve tcp|udp PORT | echo send tcp|udp HOST PORT TEXT [--timeout MS] [--count N]");
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long number(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage();
	return v;
}

static int socket_for(int proto)
{
	int fd = socket(AF_INET, (proto == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, proto);

	if (fd < 0)
		die(1, "socket: %s", strerror(errno));
	return fd;
}

/* "RECV <peer> <text>", the text trimmed as the lab's readers expect. */
static void print_recv(const struct sockaddr_in *peer, const char *buf, size_t n)
{
	char addr[INET_ADDRSTRLEN];
	size_t start = 0;

	while (start < n && isspace((unsigned char)buf[start]))
		start++;
	while (n > start && isspace((unsigned char)buf[n - 1]))
		n--;
	inet_ntop(AF_INET, &peer->sin_addr, addr, sizeof(addr));
	printf("RECV %s:%u ", addr, ntohs(peer->sin_port));
	fwrite(buf + start, 1, n - start, stdout);
	putchar('\n');
}

static void send_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;	/* the peer is gone: so is its connection */
		}
		buf += w;
		n -= (size_t)w;
	}
}

static void serve_tcp(int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	struct sockaddr_in peers[MAX_CONNS + 1];
	struct pollfd fds[MAX_CONNS + 1];
	static char buf[BUF_BYTES];
	int one = 1, nfds = 1;
	int ls = socket_for(IPPROTO_TCP);

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(ls, 128) < 0)
		die(1, "listen on %d: %s", port, strerror(errno));
	printf("READY tcp %d\n", port);
	fds[0] = (struct pollfd){ .fd = ls, .events = POLLIN };
	for (;;) {
		if (poll(fds, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			die(1, "poll: %s", strerror(errno));
		}
		for (int i = nfds - 1; i >= 1; i--) {
			ssize_t n;

			if (!fds[i].revents)
				continue;
			n = recv(fds[i].fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(fds[i].fd);
				fds[i] = fds[nfds - 1];
				peers[i] = peers[nfds - 1];
				nfds--;
				continue;
			}
			print_recv(&peers[i], buf, (size_t)n);
			send_all(fds[i].fd, buf, (size_t)n);
		}
		if (fds[0].revents & POLLIN) {
			socklen_t len = sizeof(peers[nfds]);
			int fd = accept4(ls, (struct sockaddr *)&peers[nfds], &len, SOCK_CLOEXEC);

			if (fd < 0)
				continue;
			if (nfds > MAX_CONNS) {
				close(fd);
				continue;
			}
			fds[nfds++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
	}
}

static void serve_udp(int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	static char buf[BUF_BYTES];
	int fd = socket_for(IPPROTO_UDP);

	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die(1, "bind to %d: %s", port, strerror(errno));
	printf("READY udp %d\n", port);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len);

		if (n < 0)
			continue;
		print_recv(&peer, buf, (size_t)n);
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, len);
	}
}

/*
 * The client's whole run is bounded by one timer, connect() included: a SYN
 * dropped for authentication is retransmitted by the kernel after ~1 s, and
 * connect() returns once one gets through.
 */
static char timeout_line[64];

static void on_timeout(int sig)
{
	(void)sig;
	if (write(2, timeout_line, strlen(timeout_line)) < 0)
		_exit(1);
	_exit(1);
}

static void bound_run(long timeout_ms)
{
	struct itimerval t = { .it_value = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 } };

	snprintf(timeout_line, sizeof(timeout_line), "echo: timed out after %ld ms\n", timeout_ms);
	signal(SIGALRM, on_timeout);
	setitimer(ITIMER_REAL, &t, NULL);
}

static void send_tcp(const struct sockaddr_in *to, const char *host, int port, const char *text)
{
	size_t want = strlen(text), got = 0;
	char *buf = malloc(want + 1);
	int fd = socket_for(IPPROTO_TCP);

	if (!buf)
		die(1, "out of memory");
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0)
		die(1, "connect %s:%d: %s", host, port, strerror(errno));
	send_all(fd, text, want);
	while (got < want) {
		ssize_t n = recv(fd, buf + got, want - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(1, "read %s:%d: %s", host, port, strerror(errno));
		if (n == 0)
			die(1, "%s:%d closed the connection after %zu of %zu bytes", host, port, got, want);
		got += (size_t)n;
	}
	printf("ECHO %.*s\n", (int)got, buf);
	close(fd);
	exit(0);
}

static void send_udp(const struct sockaddr_in *to, const char *text, long count)
{
	long long next_send = now_ms();
	size_t size = strlen(text) + 24;
	char *msg = malloc(size);
	static char buf[BUF_BYTES];
	long sent = 0, echoed = 0;
	int fd = socket_for(IPPROTO_UDP);

	if (!msg)
		die(1, "out of memory");
	while (echoed < count) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long now = now_ms();
		int wait_ms = -1;
		ssize_t n;

		if (sent < count && now >= next_send) {
			int len = count > 1 ? snprintf(msg, size, "%s-%ld", text, sent) : snprintf(msg, size, "%s", text);

			sendto(fd, msg, (size_t)len, 0, (const struct sockaddr *)to, sizeof(*to));
			sent++;
			next_send = now + UDP_GAP_MS;
		}
		if (sent < count)
			wait_ms = (int)(next_send > now ? next_send - now : 0);
		if (poll(&p, 1, wait_ms) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			continue;	/* e.g. an ICMP port unreachable: wait on, as for a lost datagram */
		printf("ECHO %.*s\n", (int)n, buf);
		echoed++;
	}
	exit(0);
}

int main(int argc, char **argv)
{
	int proto;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	if (!strcmp(argv[2], "tcp"))
		proto = IPPROTO_TCP;
	else if (!strcmp(argv[2], "udp"))
		proto = IPPROTO_UDP;
	else
		die(2, "the protocol must be tcp or udp, not %s", argv[2]);

	if (!strcmp(argv[1], "serve")) {
		int port;

		if (argc != 4)
			usage();
		port = (int)number(argv[3], 1, 65535);
		if (proto == IPPROTO_TCP)
			serve_tcp(port);
		serve_udp(port);
	}
	if (!strcmp(argv[1], "send")) {
		struct sockaddr_in to = { .sin_family = AF_INET };
		long timeout_ms = 5000, count = 1;
		int port;

		if (argc < 6)
			usage();
		for (int i = 6; i < argc; i += 2) {
			if (i + 1 >= argc)
				usage();
			if (!strcmp(argv[i], "--timeout"))
				timeout_ms = number(argv[i + 1], 1, 3600000);
			else if (!strcmp(argv[i], "--count"))
				count = number(argv[i + 1], 1, 100000);
			else
				usage();
		}
		port = (int)number(argv[4], 1, 65535);
		to.sin_port = htons(port);
		if (inet_pton(AF_INET, argv[3], &to.sin_addr) != 1)
			die(2, "not an IPv4 address: %s", argv[3]);
		bound_run(timeout_ms);
		if (proto == IPPROTO_TCP)
			send_tcp(&to, argv[3], port, argv[5]);
		send_udp(&to, argv[5], count);
	}
	usage();
}
