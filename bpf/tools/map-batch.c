// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * map-batch: the subset of `bpftool -j batch file -` that the node agent's
 * long-lived map writer uses (lab/datapath/map-writer.ts), answered in
 * microseconds: each pinned map is opened once and kept open, and a line is
 * one bpf(2) call, where bpftool opens the pin again and builds its JSON
 * writer for every line (about 0.5 ms here, on the path from a finished
 * handshake to its auth entry).
 *
 *   map update pinned PATH key hex XX.. value hex XX..
 *   map delete pinned PATH key hex XX..
 *
 * One line in, one JSON object out, as bpftool prints it:
 *   {"command":"map update …","output":null}
 *   {"command":"…","output":{"error":"…"}}   and then it exits (status 1),
 * since bpftool also ends a batch at its first failing command.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_BYTES 512
#define MAX_PINS 16

static struct pin {
	char *path;
	int fd;
	ino_t ino;
	__u32 key_size, value_size;
} pins[MAX_PINS];

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/*
 * The pinned map, opened on first use and kept, with its key and value
 * sizes; NULL (errno set) if it cannot be. A pin replaced since (a reloaded
 * datapath pins a new map) has a new inode: it is opened again.
 */
static struct pin *pin_of(const char *path)
{
	struct bpf_map_info info;
	union bpf_attr attr;
	struct stat st;
	int i, fd;

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
	memset(&attr, 0, sizeof(attr));
	attr.pathname = (unsigned long)path;
	fd = sys_bpf(BPF_OBJ_GET, &attr);
	if (fd < 0)
		return NULL;
	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (unsigned long)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) {
		close(fd);
		return NULL;
	}
	pins[i].path = strdup(path);
	pins[i].fd = fd;
	pins[i].ino = st.st_ino;
	pins[i].key_size = info.key_size;
	pins[i].value_size = info.value_size;
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

static int answer(const char *line, const char *error)
{
	printf("{\"command\":");
	print_json_string(line);
	if (error) {
		printf(",\"output\":{\"error\":");
		print_json_string(error);
		printf("}}\n");
	} else {
		printf(",\"output\":null}\n");
	}
	fflush(stdout);
	return error ? 1 : 0;
}

static const char *apply(char *line)
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
	if (!w[3] || strcmp(w[0], "map") != 0 || strcmp(w[2], "pinned") != 0)
		return "expected: map update|delete pinned PATH key hex ..";
	update = strcmp(w[1], "update") == 0;
	if (!update && strcmp(w[1], "delete") != 0)
		return "only map update and map delete are supported";
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
	return NULL;
}

int main(void)
{
	char line[8192], copy[8192];

	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == '\n')
			continue;
		memcpy(copy, line, sizeof(line));
		if (answer(copy, apply(line)))
			return 1;
	}
	return 0;
}
