/*
 * sockmap-app: a TCP echo pair for the sockmap scenario, steppable from
 * outside so that policy can change between two messages of one connection
 * (started through spawnInPod: pod namespace + node cgroup; built by
 * `make -C bpf` into bpf/build/sockmap-app, argv from appArgv() in app.ts).
 *
 *   sockmap-app serve PORT [--host ADDR]
 *       listens on ADDR (default 0.0.0.0; "::" is dual-stack, so IPv4 peers
 *       get IPv4-mapped AF_INET6 sockets); "READY <port>"; per connection
 *       "ACCEPT <peer>:<port>"; one "RECV <n> <text>" per read, echoed back
 *       with one write; at the peer's FIN "EOF <total bytes>", then a FIN back
 *   sockmap-app send HOST PORT [--step] [--timeout MS] [--hold] MSG…
 *       "CONNECTED <local port>"; per message one write, "SENT <msg>", then
 *       "ECHO <msg>" when its echo is complete or "NOECHO <msg>" after MS
 *       (default 3000); echoes that come later print "LATE <text>". With
 *       --step, every message after the first waits for SIGUSR2 ("WAIT"
 *       first; a SIGUSR2 that comes while nothing waits is dropped). Then the
 *       client closes ("CLOSED" once the server's FIN is in), or with --hold
 *       waits for SIGUSR2 first. An error prints "ERROR <why>" and exits 1.
 *
 * Messages must not contain newlines (one line per event). Each message is
 * one write(), i.e. one sendmsg and one run of the sk_msg program.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define BUF_BYTES 65536
#define LATE_TAIL 200

static void usage(void)
{
	fprintf(stderr, "usage: sockmap-app serve PORT [--host ADDR] | sockmap-app send HOST PORT [--step] [--hold] [--timeout MS] MSG…\n");
	exit(2);
}

static void error_exit(const char *what)
{
	printf("ERROR %s: %s\n", what, strerror(errno));
	exit(1);
}

static long number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = s ? strtol(s, &end, 10) : 0;
	if (!s || errno || end == s || *end || v <= 0)
		usage();
	return v;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* "10.244.0.3:41000", or "::ffff:10.244.0.3:41000" for an IPv4-mapped peer (as Node prints them). */
static void print_peer(const struct sockaddr_storage *peer)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned port;

	if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;

		inet_ntop(AF_INET6, &p->sin6_addr, addr, sizeof(addr));
		port = ntohs(p->sin6_port);
	} else {
		const struct sockaddr_in *p = (const struct sockaddr_in *)peer;

		inet_ntop(AF_INET, &p->sin_addr, addr, sizeof(addr));
		port = ntohs(p->sin_port);
	}
	printf("ACCEPT %s:%u\n", addr, port);
}

static void serve(const char *host, long port)
{
	struct sockaddr_storage local = {};
	struct pollfd fds[MAX_CONNS + 1];
	unsigned long long total[MAX_CONNS + 1];
	static char buf[BUF_BYTES];
	int one = 1, zero = 0, nfds = 1, ls;
	socklen_t len;

	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&local;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			usage();
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&local;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			usage();
		len = sizeof(*a);
	}
	ls = socket(local.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0)
		error_exit("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (local.ss_family == AF_INET6)
		setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(ls, (struct sockaddr *)&local, len) < 0 || listen(ls, 128) < 0)
		error_exit("listen");
	printf("READY %ld\n", port);
	fds[0] = (struct pollfd){ .fd = ls, .events = POLLIN };
	for (;;) {
		if (poll(fds, (nfds_t)nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			error_exit("poll");
		}
		for (int i = nfds - 1; i >= 1; i--) {
			ssize_t n;

			if (!fds[i].revents)
				continue;
			n = recv(fds[i].fd, buf, sizeof(buf), 0);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n > 0) {
				total[i] += (unsigned long long)n;
				printf("RECV %zd %.*s\n", n, (int)n, buf);
				/* One write, as the Node app did: each echo is one sendmsg. */
				if (send(fds[i].fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
					printf("ERROR %s\n", strerror(errno));
				continue;
			}
			if (n == 0) {
				printf("EOF %llu\n", total[i]);
				shutdown(fds[i].fd, SHUT_WR);
			} else {
				printf("ERROR %s\n", strerror(errno));
			}
			close(fds[i].fd);
			fds[i] = fds[nfds - 1];
			total[i] = total[nfds - 1];
			nfds--;
		}
		if (fds[0].revents & POLLIN) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			int fd = accept4(ls, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);

			if (fd < 0)
				continue;
			if (nfds > MAX_CONNS) {
				close(fd);
				continue;
			}
			print_peer(&peer);
			total[nfds] = 0;
			fds[nfds++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
	}
}

/* The client: its socket, what came back, and SIGUSR2 as a file descriptor. */
static struct {
	int fd, sigfd;
	char *received;
	size_t received_len, expected;
	bool eof;
	/* After a NOECHO: print LATE when the echoes catch up. */
	bool watch_late;
} c;

/*
 * Waits until `done()` holds, a SIGUSR2 comes (when `want_signal`), or the
 * deadline (-1: none). Reads the socket all along. Returns true when the
 * condition or the signal came, false at the deadline.
 */
static bool wait_until(bool (*done)(void), bool want_signal, long long deadline)
{
	for (;;) {
		struct pollfd fds[2] = { { .fd = c.sigfd, .events = POLLIN }, { .fd = c.fd, .events = c.eof ? 0 : POLLIN } };
		long long now = now_ms();
		int r;

		if (done && done())
			return true;
		if (deadline >= 0 && now >= deadline)
			return false;
		r = poll(fds, 2, deadline < 0 ? -1 : (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			error_exit("poll");
		if (r <= 0)
			continue;
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(c.sigfd, &si, sizeof(si)) == sizeof(si) && want_signal)
				return true;
		}
		if (fds[1].revents) {
			char buf[BUF_BYTES];
			ssize_t n = recv(c.fd, buf, sizeof(buf), 0);

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0)
				error_exit("read");
			if (n == 0) {
				c.eof = true;
				continue;
			}
			c.received = realloc(c.received, c.received_len + (size_t)n);
			if (!c.received)
				error_exit("realloc");
			memcpy(c.received + c.received_len, buf, (size_t)n);
			c.received_len += (size_t)n;
			if (c.watch_late && c.received_len >= c.expected) {
				size_t tail = c.received_len < LATE_TAIL ? c.received_len : LATE_TAIL;

				printf("LATE %.*s\n", (int)tail, c.received + c.received_len - tail);
			}
		}
	}
}

static bool echo_complete(void)
{
	return c.received_len >= c.expected;
}

static bool at_eof(void)
{
	return c.eof;
}

static void wait_for_signal(void)
{
	printf("WAIT\n");
	wait_until(NULL, true, -1);
}

static void send_messages(const char *host, long port, char **msgs, int n, bool step, bool hold, long timeout_ms)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in local;
	socklen_t len = sizeof(local);
	sigset_t usr2;

	/* SIGUSR2 is read from a descriptor, so one that comes mid-write is not lost or fatal. */
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	c.sigfd = signalfd(-1, &usr2, SFD_CLOEXEC);
	if (c.sigfd < 0)
		error_exit("signalfd");
	if (inet_pton(AF_INET, host, &to.sin_addr) != 1)
		usage();
	c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c.fd < 0)
		error_exit("socket");
	if (connect(c.fd, (struct sockaddr *)&to, sizeof(to)) < 0)
		error_exit("connect");
	getsockname(c.fd, (struct sockaddr *)&local, &len);
	printf("CONNECTED %u\n", ntohs(local.sin_port));
	for (int i = 0; i < n; i++) {
		size_t size = strlen(msgs[i]);

		if (step && i > 0)
			wait_for_signal();
		c.watch_late = false;
		c.expected += size;
		if (send(c.fd, msgs[i], size, MSG_NOSIGNAL) < 0)
			error_exit("write");
		printf("SENT %s\n", msgs[i]);
		if (wait_until(echo_complete, false, now_ms() + timeout_ms)) {
			printf("ECHO %s\n", msgs[i]);
		} else {
			printf("NOECHO %s\n", msgs[i]);
			c.watch_late = true;
		}
	}
	if (hold)
		wait_for_signal();
	shutdown(c.fd, SHUT_WR);
	wait_until(at_eof, false, -1);
	close(c.fd);
	printf("CLOSED\n");
	exit(0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "serve")) {
		const char *host = "0.0.0.0";

		if (argc == 5 && !strcmp(argv[3], "--host"))
			host = argv[4];
		else if (argc != 3)
			usage();
		serve(host, number(argv[2]));
	}
	if (argc >= 3 && !strcmp(argv[1], "send")) {
		bool step = false, hold = false;
		long timeout_ms = 3000;
		char *pos[argc];
		int npos = 0;

		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--step"))
				step = true;
			else if (!strcmp(argv[i], "--hold"))
				hold = true;
			else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
				timeout_ms = number(argv[++i]);
			else
				pos[npos++] = argv[i];
		}
		if (npos < 3)
			usage();
		send_messages(pos[0], number(pos[1]), pos + 2, npos - 2, step, hold, timeout_ms);
	}
	usage();
}
