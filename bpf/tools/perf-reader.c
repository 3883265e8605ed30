// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * perf-reader: reads a pinned BPF perf event array (cilium_signals,
 * cilium_events) and prints each record on one line, the moment it arrives
 * (lab/datapath/events.ts). It replaces `bpftool -j map event_pipe`, which
 * wrote each record through unbuffered stdio as dozens of small writes of
 * one growing JSON array, so the agent's Node loop woke several times per
 * record and parsed it character by character.
 *
 *   perf-reader PIN [BATCH_MS]
 *
 * With BATCH_MS, the kernel wakes the reader only when a buffer is half
 * full, and the reader looks every BATCH_MS regardless: records arrive up
 * to BATCH_MS late, in batches, and a packet's flow record no longer wakes
 * a reader (and the Node process behind it) at the moment its drop's
 * signal wakes the agent. For flow records (cilium_events), which the
 * relay holds for its sort window anyway; never for signals. As with any
 * wake-up, a batch is printed buffer by buffer: records of different CPUs
 * come CPU by CPU, not in time order (the relay sorts by timestamp).
 *
 * Output, one write(2) per batch of records:
 *   ready                  once every CPU's buffer is in the array
 *   CPU HEX                a record: its CPU and its bytes (padded, as the
 *                          kernel hands them: a 16-byte message is 20 bytes)
 *   CPU lost N             the kernel dropped N records: the buffer was full
 * Errors go to stderr, and the status is 1.
 *
 * As with bpftool, one reader per array: each reader puts its own perf fds
 * into the array's per-CPU slots, and the kernel clears them when this
 * process's map fd is closed (it exits).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Data pages per CPU (a power of two); bpftool's event_pipe uses 16. */
#define RING_PAGES 16
#define MAX_CPUS 256
/* Output is flushed when this much is queued, and after each poll wake-up. */
#define OUT_BYTES (64 * 1024)

struct ring {
	int cpu;
	int fd;
	struct perf_event_mmap_page *meta;
	unsigned char *data;
	size_t size;
};

static struct ring rings[MAX_CPUS];
static int nrings;
static size_t page_size;
/* 0: wake on every record; else the poll period of BATCH_MS. */
static int batch_ms;

static char out[OUT_BYTES + 1024];
static size_t out_len;

static volatile sig_atomic_t stopping;

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void die(const char *what)
{
	fprintf(stderr, "perf-reader: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Writes everything queued; a closed stdout ends the reader quietly. */
static void flush_out(void)
{
	size_t done = 0;

	while (done < out_len) {
		ssize_t n = write(STDOUT_FILENO, out + done, out_len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			exit(errno == EPIPE ? 0 : 1);
		}
		done += (size_t)n;
	}
	out_len = 0;
}

static void emit(const char *text, size_t len)
{
	if (out_len + len > sizeof(out))
		flush_out();
	memcpy(out + out_len, text, len);
	out_len += len;
}

static const char HEX[] = "0123456789abcdef";

static void emit_sample(int cpu, const unsigned char *bytes, uint32_t len)
{
	char head[32];
	int n = snprintf(head, sizeof(head), "%d ", cpu);

	emit(head, (size_t)n);
	for (uint32_t i = 0; i < len; i++) {
		char pair[2] = { HEX[bytes[i] >> 4], HEX[bytes[i] & 15] };

		emit(pair, 2);
	}
	emit("\n", 1);
	if (out_len >= OUT_BYTES)
		flush_out();
}

/* The CPUs that exist, as the kernel numbers them (the array's slot per CPU). */
static int possible_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n < 1 ? 1 : n > MAX_CPUS ? MAX_CPUS : (int)n;
}

static void open_ring(int map_fd, int cpu)
{
	struct perf_event_attr attr;
	union bpf_attr battr;
	struct ring *r = &rings[nrings];
	void *base;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_BPF_OUTPUT;
	attr.sample_type = PERF_SAMPLE_RAW;
	attr.sample_period = 1;
	if (batch_ms > 0) {
		attr.watermark = 1;
		attr.wakeup_watermark = (RING_PAGES * page_size) / 2;
	} else {
		attr.wakeup_events = 1; /* wake on every record: the agent waits on the first one */
	}
	fd = syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		if (errno == ENODEV || errno == EINVAL)
			return; /* a CPU that is not online: no slot to fill */
		die("perf_event_open");
	}
	base = mmap(NULL, (RING_PAGES + 1) * page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		die("mmap of a perf buffer");
	if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0)
		die("PERF_EVENT_IOC_ENABLE");

	memset(&battr, 0, sizeof(battr));
	__u32 key = (__u32)cpu;
	__u32 value = (__u32)fd;
	battr.map_fd = (__u32)map_fd;
	battr.key = (unsigned long)&key;
	battr.value = (unsigned long)&value;
	battr.flags = BPF_ANY;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &battr) < 0)
		die("putting a perf buffer into the array");

	r->cpu = cpu;
	r->fd = fd;
	r->meta = base;
	r->data = (unsigned char *)base + page_size;
	r->size = RING_PAGES * page_size;
	nrings++;
}

/* Copies n bytes at ring offset `at`, which may wrap around the end. */
static void ring_copy(const struct ring *r, uint64_t at, void *dst, size_t n)
{
	size_t off = (size_t)(at % r->size);
	size_t first = r->size - off < n ? r->size - off : n;

	memcpy(dst, r->data + off, first);
	memcpy((unsigned char *)dst + first, r->data, n - first);
}

/* Prints every whole record in the ring and hands the space back. */
static void drain(struct ring *r)
{
	static unsigned char record[65536]; /* a record's size is a u16 */
	uint64_t head = __atomic_load_n(&r->meta->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = r->meta->data_tail;

	while (tail < head) {
		struct perf_event_header h;

		ring_copy(r, tail, &h, sizeof(h));
		if (h.size < sizeof(h))
			break; /* cannot happen with a sane kernel; stop rather than read garbage */
		ring_copy(r, tail, record, h.size);
		if (h.type == PERF_RECORD_SAMPLE) {
			uint32_t len;

			memcpy(&len, record + sizeof(h), sizeof(len));
			if (sizeof(h) + sizeof(len) + len <= h.size)
				emit_sample(r->cpu, record + sizeof(h) + sizeof(len), len);
		} else if (h.type == PERF_RECORD_LOST) {
			uint64_t lost;
			char line[64];
			int n;

			/* struct { header; u64 id; u64 lost; } */
			memcpy(&lost, record + sizeof(h) + sizeof(uint64_t), sizeof(lost));
			n = snprintf(line, sizeof(line), "%d lost %llu\n", r->cpu, (unsigned long long)lost);
			emit(line, (size_t)n);
		}
		tail += h.size;
	}
	__atomic_store_n(&r->meta->data_tail, tail, __ATOMIC_RELEASE);
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

int main(int argc, char **argv)
{
	struct pollfd fds[MAX_CPUS];
	struct sigaction sa;
	union bpf_attr attr;
	int map_fd, ncpus;

	if (argc < 2 || argc > 3 || (argc == 3 && (atoi(argv[2]) < 1 || atoi(argv[2]) > 10000))) {
		fprintf(stderr, "usage: perf-reader PIN [BATCH_MS] (a pinned BPF_MAP_TYPE_PERF_EVENT_ARRAY; BATCH_MS 1..10000)\n");
		return 2;
	}
	if (argc == 3)
		batch_ms = atoi(argv[2]);
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (unsigned long)argv[1];
	map_fd = sys_bpf(BPF_OBJ_GET, &attr);
	if (map_fd < 0) {
		fprintf(stderr, "perf-reader: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	ncpus = possible_cpus();
	for (int cpu = 0; cpu < ncpus; cpu++)
		open_ring(map_fd, cpu);
	if (nrings == 0) {
		fprintf(stderr, "perf-reader: no CPU accepted a perf buffer\n");
		return 1;
	}
	for (int i = 0; i < nrings; i++)
		fds[i] = (struct pollfd){ .fd = rings[i].fd, .events = POLLIN };
	emit("ready\n", 6);
	flush_out();

	while (!stopping) {
		int n = poll(fds, (nfds_t)nrings, batch_ms > 0 ? batch_ms : -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (int i = 0; i < nrings; i++)
			if (fds[i].revents || batch_ms > 0)
				drain(&rings[i]);
		flush_out();
	}
	/* Records already in the buffers when asked to stop are still printed. */
	for (int i = 0; i < nrings; i++)
		drain(&rings[i]);
	flush_out();
	return 0;
}
