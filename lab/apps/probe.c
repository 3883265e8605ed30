/*
 * probe: a pod app that keeps trying new TCP connections, for exposure
 * windows (started by lab/apps/pod-apps.ts; built by `make -C bpf` into
 * bpf/build/probe). One new connection every --interval ms (not waiting for
 * the previous one), at most --count of them and none started after
 * --duration ms. Each attempt sends TEXT-<i> and waits for the echo, at most
 * --attempt-timeout ms: below TCP's initial RTO (1 s), so a dropped SYN is
 * never retransmitted and every attempt is exactly one SYN on the wire.
 *
 *   probe HOST PORT TEXT [--interval MS] [--count N] [--duration MS] [--attempt-timeout MS]
 *         [--stop-after-failures K] [--sequential] [--wait-for-address MS]
 *
 * --sequential: each attempt starts --interval ms after the previous one
 * finished (timed connections one after the other, in one process).
 *
 * --stop-after-failures K: once some attempt succeeded, K failed attempts in a
 * row (by attempt number) end the probing early: the window has closed.
 *
 * SIGTERM ends the probing: no attempt starts after it, the ones under way
 * finish, and the output closes as usual (exit 0), so that a caller can end
 * the probe on a signal of its own (the window seen to close).
 *
 * --wait-for-address MS: print {"ready":true} at once, then wait (at most MS)
 * until the namespace has an IPv4 address other than loopback, and only then
 * start probing, with --duration counted from there. So the probe can be
 * started in a pod's namespace before the pod exists.
 *
 * Prints one JSON line per finished attempt (startedAt: Unix ms; ms: the
 * attempt's duration; error: why it failed, as "connect ECONNREFUSED
 * 10.244.1.2:8080", "read ECONNRESET …", "timeout" or "closed"):
 *   {"attempt":3,"sport":41234,"startedAt":1718000000123.456,"ok":true,"ms":2.10}
 * then {"done":true,"attempts":N,"ok":K}. Exit 0 (whatever the outcomes),
 * 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADDRESS_POLL_MS 2

enum state { CONNECTING, READING, DONE };

struct attempt {
	int fd;
	enum state state;
	double t0;		/* monotonic ms */
	double started_at;	/* Unix ms */
	double deadline;	/* monotonic ms */
	unsigned sport;
	char payload[128];
	size_t want, got;
	char buf[128];
};

static struct {
	struct sockaddr_in to;
	const char *host, *text;
	long port, interval, count, duration, attempt_timeout, stop_after_failures, wait_for_address;
	bool sequential;
} opt = { .interval = 50, .count = 20, .duration = 1000, .attempt_timeout = 400 };

static struct attempt *attempts;
static signed char *outcome;	/* -1 unknown, 0 failed, 1 ok, by attempt number */
static long started, finished, ok_count;
static bool closed;
static double begin, next_tick = -1;	/* monotonic ms; -1: no tick scheduled */
static volatile sig_atomic_t terminated;

static double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static void usage(const char *why)
{
	fprintf(stderr, "probe: %s\nusage: probe HOST PORT TEXT [--interval MS] [--count N] [--duration MS] [--attempt-timeout MS] "
		"[--stop-after-failures K] [--sequential] [--wait-for-address MS]\n", why);
	exit(2);
}

static long number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = s ? strtol(s, &end, 10) : 0;
	if (!s || errno || end == s || *end)
		usage("options take whole numbers");
	return v;
}

/* Some attempt succeeded, and the last K attempts (all finished) failed. */
static bool window_closed(void)
{
	long last = -1, run = 0;

	if (opt.stop_after_failures <= 0)
		return false;
	for (long i = 0; i < started; i++)
		if (outcome[i] == 1)
			last = i;
	if (last < 0)
		return false;
	for (long i = last + 1; i < started && outcome[i] == 0; i++)
		run++;
	return run >= opt.stop_after_failures;
}

static void end(void)
{
	printf("{\"done\":true,\"attempts\":%ld,\"ok\":%ld}\n", started, ok_count);
	exit(0);
}

static void finish(struct attempt *a, long i, bool ok, const char *error)
{
	if (a->state == DONE)
		return;
	a->state = DONE;
	close(a->fd);
	if (ok)
		ok_count++;
	outcome[i] = ok;
	printf("{\"attempt\":%ld", i);
	if (a->sport)
		printf(",\"sport\":%u", a->sport);
	printf(",\"startedAt\":%.3f,\"ok\":%s,\"ms\":%.2f", a->started_at, ok ? "true" : "false", now_ms() - a->t0);
	if (error)
		printf(",\"error\":\"%s\"", error);
	printf("}\n");
	if (++finished == started && closed)
		end();
	else if (opt.sequential)
		next_tick = now_ms() + opt.interval;
}

/* A failed socket call, named as Node names it ("connect ECONNREFUSED 10.244.1.2:8080"). */
static void fail_errno(struct attempt *a, long i, const char *call, int err)
{
	char why[96];

	snprintf(why, sizeof(why), "%s %s %s:%ld", call, strerrorname_np(err) ?: "EUNKNOWN", opt.host, opt.port);
	finish(a, i, false, why);
}

static void start_attempt(long i)
{
	struct attempt *a = &attempts[i];
	struct sockaddr_in local;
	socklen_t len = sizeof(local);

	a->t0 = now_ms();
	a->started_at = clock_ms(CLOCK_REALTIME);
	a->deadline = a->t0 + opt.attempt_timeout;
	a->want = (size_t)snprintf(a->payload, sizeof(a->payload), "%s-%ld", opt.text, i);
	a->state = CONNECTING;
	a->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->fd < 0) {
		fail_errno(a, i, "socket", errno);
		return;
	}
	if (connect(a->fd, (struct sockaddr *)&opt.to, sizeof(opt.to)) < 0 && errno != EINPROGRESS) {
		int err = errno;

		if (getsockname(a->fd, (struct sockaddr *)&local, &len) == 0)
			a->sport = ntohs(local.sin_port);
		fail_errno(a, i, "connect", err);
		return;
	}
	/* The local port is known from the connect() call on, also for a SYN that gets no answer. */
	if (getsockname(a->fd, (struct sockaddr *)&local, &len) == 0)
		a->sport = ntohs(local.sin_port);
}

static void tick(void)
{
	next_tick = -1;
	if (closed || started >= opt.count || now_ms() - begin >= opt.duration || window_closed()) {
		closed = true;
		if (finished == started)
			end();
		return;
	}
	started++;
	start_attempt(started - 1);
	if (!opt.sequential && !closed)
		next_tick = begin + started * opt.interval;
}

static void on_ready(struct attempt *a, long i, short revents)
{
	if (a->state == CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			fail_errno(a, i, "connect", err);
			return;
		}
		if (send(a->fd, a->payload, a->want, MSG_NOSIGNAL) < 0) {
			fail_errno(a, i, "write", errno);
			return;
		}
		a->state = READING;
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t n = recv(a->fd, a->buf + a->got, sizeof(a->buf) - a->got, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			fail_errno(a, i, "read", errno);
			return;
		}
		if (n == 0) {
			finish(a, i, false, "closed");
			return;
		}
		a->got += (size_t)n;
		if (a->got >= a->want || a->got == sizeof(a->buf))
			finish(a, i, a->got == a->want && !memcmp(a->buf, a->payload, a->want), NULL);
	}
}

static bool has_address(void)
{
	struct ifaddrs *list, *ifa;
	bool found = false;

	if (getifaddrs(&list) < 0)
		return false;
	for (ifa = list; ifa; ifa = ifa->ifa_next)
		if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET && !(ifa->ifa_flags & IFF_LOOPBACK))
			found = true;
	freeifaddrs(list);
	return found;
}

static void on_term(int sig)
{
	(void)sig;
	terminated = 1;
}

/* After SIGTERM: no attempt starts any more; the output closes once the ones under way finish. */
static void take_term(void)
{
	if (!terminated)
		return;
	terminated = 0;
	closed = true;
	next_tick = -1;
	if (finished == started)
		end();
}

static void loop(void)
{
	struct pollfd *fds = calloc((size_t)opt.count, sizeof(*fds));
	long *which = calloc((size_t)opt.count, sizeof(*which));
	sigset_t blocked, during_poll;

	if (!fds || !which)
		usage("out of memory");
	/* SIGTERM is only taken inside ppoll, so none is missed between a check and the wait. */
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigprocmask(SIG_BLOCK, &blocked, &during_poll);
	sigdelset(&during_poll, SIGTERM);
	begin = now_ms();
	take_term();
	tick();
	for (;;) {
		double now = now_ms(), wake = next_tick;
		struct timespec timeout, *tp = NULL;
		int nfds = 0;

		for (long i = 0; i < started; i++) {
			struct attempt *a = &attempts[i];

			if (a->state == DONE)
				continue;
			if (a->deadline <= now) {
				finish(a, i, false, "timeout");
				continue;
			}
			if (wake < 0 || a->deadline < wake)
				wake = a->deadline;
			fds[nfds] = (struct pollfd){ .fd = a->fd, .events = a->state == CONNECTING ? POLLOUT : POLLIN };
			which[nfds++] = i;
		}
		if (next_tick >= 0 && next_tick <= now) {
			tick();
			continue;
		}
		if (wake >= 0) {
			double left = wake > now ? wake - now : 0;

			timeout.tv_sec = (time_t)(left / 1e3);
			timeout.tv_nsec = (long)((left - timeout.tv_sec * 1e3) * 1e6);
			tp = &timeout;
		}
		if (ppoll(fds, (nfds_t)nfds, tp, &during_poll) < 0 && errno != EINTR)
			usage("poll failed");
		take_term();
		for (int k = 0; k < nfds; k++)
			if (fds[k].revents)
				on_ready(&attempts[which[k]], which[k], fds[k].revents);
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4)
		usage("expected HOST PORT TEXT");
	opt.host = argv[1];
	opt.port = number(argv[2]);
	opt.text = argv[3];
	for (int i = 4; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--sequential"))
			opt.sequential = true;
		else if (!strcmp(o, "--interval"))
			opt.interval = number(argv[++i]);
		else if (!strcmp(o, "--count"))
			opt.count = number(argv[++i]);
		else if (!strcmp(o, "--duration"))
			opt.duration = number(argv[++i]);
		else if (!strcmp(o, "--attempt-timeout"))
			opt.attempt_timeout = number(argv[++i]);
		else if (!strcmp(o, "--stop-after-failures"))
			opt.stop_after_failures = number(argv[++i]);
		else if (!strcmp(o, "--wait-for-address"))
			opt.wait_for_address = number(argv[++i]);
		else
			usage("unknown option");
	}
	if (opt.port <= 0 || opt.port > 65535)
		usage("PORT must be 1-65535");
	if (!(opt.interval > 0 && opt.count > 0 && opt.duration > 0 && opt.attempt_timeout > 0))
		usage("interval, count, duration and attempt-timeout must be positive");
	if (strlen(opt.text) > 100)
		usage("TEXT is at most 100 bytes");
	opt.to = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
	if (inet_pton(AF_INET, opt.host, &opt.to.sin_addr) != 1)
		usage("HOST must be an IPv4 address");
	attempts = calloc((size_t)opt.count, sizeof(*attempts));
	outcome = malloc((size_t)opt.count);
	if (!attempts || !outcome)
		usage("out of memory");
	memset(outcome, -1, (size_t)opt.count);
	signal(SIGTERM, on_term);

	if (opt.wait_for_address > 0) {
		double waited = now_ms();

		printf("{\"ready\":true}\n");
		while (!has_address()) {
			if (terminated)
				end();
			if (now_ms() - waited > opt.wait_for_address) {
				fprintf(stderr, "probe: no IPv4 address in this namespace after %ld ms\n", opt.wait_for_address);
				exit(2);
			}
			usleep(ADDRESS_POLL_MS * 1000);
		}
	}
	loop();
}
