// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * map-batch: the subset of `bpftool -j batch file -` that the node agent's
 * long-lived map writer uses (lab/datapath/map-writer.ts), answered in
 * microseconds: each pinned map is opened once and kept open, and a line is
 * one bpf(2) call, where bpftool opens the pin again and builds its JSON
 * writer for every line (about 0.5 ms here, on the path from a finished
 * handshake to its auth entry). The agent's map syncs dump and write through
 * it too, with no process started per sync (six per sync cost it 100 ms
 * idle and seconds on a busy machine).
 *
 *   map update pinned PATH key hex XX.. value hex XX..
 *   map delete pinned PATH key hex XX..
 *   map dump pinned PATH                 (maps with one value per key;
 *                                         opened for the dump only)
 *   link list                            (not bpftool's: this namespace's
 *                                         interfaces and their ifindexes)
 *
 * One line in, one JSON object out, as bpftool prints it:
 *   {"command":"map update …","output":null,"done_unix_us":N}
 *                                        (not bpftool's: CLOCK_REALTIME when
 *                                         the kernel had taken the change,
 *                                         for mtless bench auth)
 *   {"command":"map dump …","output":[{"key":["0x0a",…],"value":["0x01",…]},…]}
 *   {"command":"link list","output":[{"ifname":"lxc-a","ifindex":5},…]}
 *   {"command":"…","output":{"error":"…"}}   and then it exits (status 1),
 * since bpftool also ends a batch at its first failing command.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_BYTES 512
#define MAX_PINS 16

static struct pin {
	char *path;
	int fd;
	ino_t ino;
	__u32 type, key_size, value_size;
} pins[MAX_PINS];

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* Opens a pinned map into *p (fd, type, sizes); -1 (errno set) if it cannot. */
static int open_map(const char *path, struct pin *p)
{
	struct bpf_map_info info;
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (unsigned long)path;
	fd = sys_bpf(BPF_OBJ_GET, &attr);
	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (unsigned long)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) {
		close(fd);
		return -1;
	}
	p->fd = fd;
	p->type = info.type;
	p->key_size = info.key_size;
	p->value_size = info.value_size;
	return 0;
}

/*
 * The pinned map, opened on first use and kept, with its key and value
 * sizes; NULL (errno set) if it cannot be. A pin replaced since (a reloaded
 * datapath pins a new map) has a new inode: it is opened again.
 */
static struct pin *pin_of(const char *path)
{
	struct stat st;
	int i;

	if (stat(path, &st) < 0)
		return NULL;
	for (i = 0; i < MAX_PINS && pins[i].path; i++) {
		if (strcmp(pins[i].path, path) != 0)
			continue;
		if (pins[i].ino == st.st_ino)
			return &pins[i];
		close(pins[i].fd);
		free(pins[i].path);
		pins[i].path = NULL;
		break;
	}
	if (i == MAX_PINS) {
		errno = EMFILE;
		return NULL;
	}
	if (open_map(path, &pins[i]) < 0)
		return NULL;
	pins[i].path = strdup(path);
	pins[i].ino = st.st_ino;
	return &pins[i];
}

/* "hex" then two-digit bytes, up to the next word that is not one. */
static int parse_hex(char **save, unsigned char *out, char **next)
{
	char *w = strtok_r(NULL, " \t\n", save);
	int n = 0;

	if (!w || strcmp(w, "hex") != 0)
		return -1;
	while ((w = strtok_r(NULL, " \t\n", save))) {
		char *end;
		unsigned long b;

		if (strlen(w) != 2 || n == MAX_BYTES)
			break;
		b = strtoul(w, &end, 16);
		if (*end)
			break;
		out[n++] = (unsigned char)b;
	}
	*next = w;
	return n;
}

/* The command as a JSON string: it holds only words, spaces and hex digits, but escape anyway. */
static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s && *s != '\n'; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

/* When the last update or delete returned (Unix µs: exact in a JSON number), 0 if none since the last answer. */
static long long done_unix_us;

static int answer(const char *line, const char *error)
{
	printf("{\"command\":");
	print_json_string(line);
	if (error) {
		printf(",\"output\":{\"error\":");
		print_json_string(error);
		printf("}}\n");
	} else if (done_unix_us) {
		printf(",\"output\":null,\"done_unix_us\":%lld}\n", done_unix_us);
	} else {
		printf(",\"output\":null}\n");
	}
	done_unix_us = 0;
	fflush(stdout);
	return error ? 1 : 0;
}

static void print_bytes(const unsigned char *b, __u32 n)
{
	__u32 i;

	putchar('[');
	for (i = 0; i < n; i++)
		printf("%s\"0x%02x\"", i ? "," : "", b[i]);
	putchar(']');
}

static int per_cpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/*
 * Every entry, as bpftool -j prints them (without BTF's "formatted"). The
 * entries are read first and printed after, so that a failure mid-way is
 * an error answer, never half an array. An entry deleted between its key
 * and its lookup is skipped, as bpftool does.
 */
static const char *dump(const char *command, struct pin *pin)
{
	static char err[256];
	unsigned char key[MAX_BYTES], next[MAX_BYTES];
	unsigned char *entries = NULL;
	size_t n = 0, cap = 0, size = (size_t)pin->key_size + pin->value_size, i;
	union bpf_attr attr;
	int have_key = 0;

	if (per_cpu(pin->type))
		return "map dump: per-CPU maps are not supported (use bpftool)";
	for (;;) {
		memset(&attr, 0, sizeof(attr));
		attr.map_fd = pin->fd;
		attr.key = have_key ? (unsigned long)key : 0;
		attr.next_key = (unsigned long)next;
		if (sys_bpf(BPF_MAP_GET_NEXT_KEY, &attr) < 0) {
			if (errno == ENOENT)
				break;
			free(entries);
			snprintf(err, sizeof(err), "map dump: next key: %s", strerror(errno));
			return err;
		}
		memcpy(key, next, pin->key_size);
		have_key = 1;
		if (n == cap) {
			unsigned char *grown = realloc(entries, (cap = cap ? 2 * cap : 64) * size);

			if (!grown) {
				free(entries);
				return "map dump: out of memory";
			}
			entries = grown;
		}
		memcpy(entries + n * size, key, pin->key_size);
		memset(&attr, 0, sizeof(attr));
		attr.map_fd = pin->fd;
		attr.key = (unsigned long)key;
		attr.value = (unsigned long)(entries + n * size + pin->key_size);
		if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) == 0)
			n++;
		else if (errno != ENOENT) {
			free(entries);
			snprintf(err, sizeof(err), "map dump: lookup: %s", strerror(errno));
			return err;
		}
	}
	printf("{\"command\":");
	print_json_string(command);
	printf(",\"output\":[");
	for (i = 0; i < n; i++) {
		printf("%s{\"key\":", i ? "," : "");
		print_bytes(entries + i * size, pin->key_size);
		printf(",\"value\":");
		print_bytes(entries + i * size + pin->key_size, pin->value_size);
		putchar('}');
	}
	printf("]}\n");
	fflush(stdout);
	free(entries);
	return NULL;
}

/* This namespace's interfaces (the helper runs in the node's), where the agent would start `ip link`. */
static const char *link_list(const char *command)
{
	struct if_nameindex *list = if_nameindex(), *l;

	if (!list)
		return "link list: if_nameindex failed";
	printf("{\"command\":");
	print_json_string(command);
	printf(",\"output\":[");
	for (l = list; l->if_index; l++) {
		printf("%s{\"ifname\":", l == list ? "" : ",");
		print_json_string(l->if_name);
		printf(",\"ifindex\":%u}", l->if_index);
	}
	printf("]}\n");
	fflush(stdout);
	if_freenameindex(list);
	return NULL;
}

/*
 * Runs one line. An update or delete is answered by main; a dump or a
 * link list prints its own answer (*printed set) unless it fails.
 */
static const char *apply(char *line, const char *command, int *printed)
{
	static char err[256];
	unsigned char key[MAX_BYTES], value[MAX_BYTES];
	char *save, *next, *w[4];
	union bpf_attr attr;
	struct pin *pin;
	int i, klen, vlen = 0, update;

	w[0] = strtok_r(line, " \t\n", &save);
	for (i = 1; i < 4; i++)
		w[i] = strtok_r(NULL, " \t\n", &save);
	if (w[0] && w[1] && !w[2] && strcmp(w[0], "link") == 0 && strcmp(w[1], "list") == 0) {
		const char *e = link_list(command);

		*printed = !e;
		return e;
	}
	if (!w[3] || strcmp(w[0], "map") != 0 || strcmp(w[2], "pinned") != 0)
		return "expected: map update|delete|dump pinned PATH .., or link list";
	if (strcmp(w[1], "dump") == 0) {
		struct pin once = { 0 };
		const char *e;

		if (strtok_r(NULL, " \t\n", &save))
			return "unexpected words after the path";
		/* Opened for this dump only: a reader never keeps a map alive after its pin is gone. */
		if (open_map(w[3], &once) < 0) {
			snprintf(err, sizeof(err), "bpf obj get (%s): %s", w[3], strerror(errno));
			return err;
		}
		if (once.key_size > MAX_BYTES || once.value_size > MAX_BYTES)
			e = "map dump: keys and values of at most 512 bytes";
		else
			e = dump(command, &once);
		close(once.fd);
		*printed = !e;
		return e;
	}
	update = strcmp(w[1], "update") == 0;
	if (!update && strcmp(w[1], "delete") != 0)
		return "only map update, map delete and map dump are supported";
	next = strtok_r(NULL, " \t\n", &save);
	if (!next || strcmp(next, "key") != 0 || (klen = parse_hex(&save, key, &next)) <= 0)
		return "expected: key hex XX..";
	if (update && (!next || strcmp(next, "value") != 0 || (vlen = parse_hex(&save, value, &next)) <= 0))
		return "expected: value hex XX..";
	if (next)
		return "unexpected words after the key or value";
	pin = pin_of(w[3]);
	if (!pin) {
		snprintf(err, sizeof(err), "bpf obj get (%s): %s", w[3], strerror(errno));
		return err;
	}
	/* The kernel reads exactly the map's sizes from our buffers: a shorter key or value must not pass. */
	if ((__u32)klen != pin->key_size || (update && (__u32)vlen != pin->value_size)) {
		snprintf(err, sizeof(err), "key has %d bytes, value %d: the map takes %u and %u", klen, vlen, pin->key_size, pin->value_size);
		return err;
	}
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = pin->fd;
	attr.key = (unsigned long)key;
	if (update) {
		attr.value = (unsigned long)value;
		attr.flags = BPF_ANY;
	}
	if (sys_bpf(update ? BPF_MAP_UPDATE_ELEM : BPF_MAP_DELETE_ELEM, &attr) < 0) {
		snprintf(err, sizeof(err), update ? "update failed: %s" : "delete failed: %s", strerror(errno));
		return err;
	}
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		done_unix_us = (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
	}
	return NULL;
}

int main(void)
{
	char line[8192], copy[8192];

	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == '\n')
			continue;
		int printed = 0;
		const char *error;

		memcpy(copy, line, sizeof(line));
		error = apply(line, copy, &printed);
		if (!printed && answer(copy, error))
			return 1;
	}
	return 0;
}
