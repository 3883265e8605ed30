// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcx-attach: attaches pinned tc programs to devices with tcx links
 * (kernel >= 6.6), the hook Cilium uses where the kernel has it. bpftool 7.1
 * and libbpf 1.1 cannot make tcx links, so this talks to bpf(2) directly.
 *
 * Run it inside the device's network namespace (nsenter --net=...): device
 * names resolve to that namespace's ifindexes. A link lives as long as
 * something holds it, so every link is pinned in bpffs; unpinning it (or
 * removing its folder) ends it, and deleting the device leaves it defunct
 * (attached to nothing) until then.
 *
 *   tcx-attach attach DEV ingress|egress PROG_PIN LINK_PIN
 *       attach the program pinned at PROG_PIN; if LINK_PIN already holds a
 *       live link on DEV's hook, swap its program in place (atomic, like
 *       `tc filter replace`), else pin a new link there (parent folders
 *       are created)
 *   tcx-attach detach LINK_PIN
 *       detach the link from its device now, then unpin it; no pin is fine
 *   tcx-attach query DEV ingress|egress
 *       print the ids of the programs on DEV's hook, in run order, on one line
 *   tcx-attach probe
 *       attach a pass-through program to lo ingress and let it go: exit 0
 *       when this kernel makes tcx links
 *   tcx-attach -
 *       read such commands from stdin, one per line; stop at the first error
 *
 * Errors go to stderr as "tcx-attach: <command>: <step>: <errno text>", exit 1.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Debian 12's <linux/bpf.h> (linux-libc-dev 6.1) predates tcx (6.6):
 * BPF_F_BEFORE arrived with it. The values are the kernel's UAPI enums
 * (bpftool btf dump file /sys/kernel/btf/vmlinux shows them).
 */
#ifndef BPF_F_BEFORE
#define BPF_TCX_INGRESS 46
#define BPF_TCX_EGRESS 47
#define BPF_LINK_TYPE_TCX 11
#endif

/*
 * struct bpf_link_info as far as a tcx link needs it: the per-type union
 * starts 8-aligned at offset 16 and holds { ifindex, attach_type } for tcx
 * (ifindex 0 once the device is gone). The kernel copies no more than we ask.
 */
struct tcx_link_info {
	__u32 type;
	__u32 id;
	__u32 prog_id;
	__u32 pad;
	__u32 ifindex;
	__u32 attach_type;
};

static const char *command = "";

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int fail(const char *step)
{
	fprintf(stderr, "tcx-attach: %s: %s: %s\n", command, step, strerror(errno));
	return -1;
}

static int obj_get(const char *path)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (__u64)(unsigned long)path;
	return sys_bpf(BPF_OBJ_GET, &attr);
}

static int obj_pin(int fd, const char *path)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (__u64)(unsigned long)path;
	attr.bpf_fd = fd;
	return sys_bpf(BPF_OBJ_PIN, &attr);
}

static int link_info(int fd, struct tcx_link_info *info)
{
	union bpf_attr attr;

	memset(info, 0, sizeof(*info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(*info);
	attr.info.info = (__u64)(unsigned long)info;
	return sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
}

static int link_detach(int fd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.link_detach.link_fd = fd;
	return sys_bpf(BPF_LINK_DETACH, &attr);
}

static int link_create(int prog_fd, unsigned int ifindex, __u32 attach_type)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = prog_fd;
	attr.link_create.target_ifindex = ifindex;
	attr.link_create.attach_type = attach_type;
	return sys_bpf(BPF_LINK_CREATE, &attr);
}

static int hook(const char *direction, __u32 *attach_type)
{
	if (strcmp(direction, "ingress") == 0)
		*attach_type = BPF_TCX_INGRESS;
	else if (strcmp(direction, "egress") == 0)
		*attach_type = BPF_TCX_EGRESS;
	else {
		fprintf(stderr, "tcx-attach: %s: direction must be ingress or egress, not \"%s\"\n", command, direction);
		return -1;
	}
	return 0;
}

/* The ifindex of `dev` in this process's network namespace. */
static int device(const char *dev, unsigned int *ifindex)
{
	char step[IF_NAMESIZE + 16];

	*ifindex = if_nametoindex(dev);
	if (*ifindex)
		return 0;
	snprintf(step, sizeof(step), "device %s", dev);
	return fail(step);
}

/* mkdir -p of the folder holding `path` (bpffs folders are plain mkdir). */
static int make_parents(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return fail("link pin");
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return fail("mkdir");
		*p = '/';
	}
	return 0;
}

/*
 * An existing live link on the same hook gets the new program in place.
 * Returns 1 when done that way, 0 when a new link is needed (no pin, or a
 * defunct or foreign link, which is detached and unpinned), -1 on error.
 */
static int update_pinned(const char *link_pin, int prog_fd, unsigned int ifindex, __u32 attach_type)
{
	struct tcx_link_info info;
	union bpf_attr attr;
	int fd, ret = 0;

	fd = obj_get(link_pin);
	if (fd < 0)
		return errno == ENOENT ? 0 : fail("open link pin");
	if (link_info(fd, &info)) {
		ret = fail("link info");
		goto out;
	}
	if (info.type == BPF_LINK_TYPE_TCX && info.ifindex == ifindex && info.attach_type == attach_type) {
		memset(&attr, 0, sizeof(attr));
		attr.link_update.link_fd = fd;
		attr.link_update.new_prog_fd = prog_fd;
		if (sys_bpf(BPF_LINK_UPDATE, &attr) == 0) {
			ret = 1;
			goto out;
		}
		if (errno != ENOLINK) {
			ret = fail("BPF_LINK_UPDATE");
			goto out;
		}
	}
	/* Defunct (its device was deleted) or on another hook: replace it. */
	if (info.ifindex)
		link_detach(fd);
	if (unlink(link_pin))
		ret = fail("unpin old link");
out:
	close(fd);
	return ret;
}

static int cmd_attach(const char *dev, const char *direction, const char *prog_pin, const char *link_pin)
{
	unsigned int ifindex;
	__u32 attach_type;
	int prog_fd, link_fd, ret = -1;

	if (hook(direction, &attach_type) || device(dev, &ifindex))
		return -1;
	prog_fd = obj_get(prog_pin);
	if (prog_fd < 0)
		return fail("open program pin");
	ret = update_pinned(link_pin, prog_fd, ifindex, attach_type);
	if (ret != 0)
		goto out;
	ret = -1;
	if (make_parents(link_pin))
		goto out;
	link_fd = link_create(prog_fd, ifindex, attach_type);
	if (link_fd < 0) {
		fail("BPF_LINK_CREATE");
		goto out;
	}
	/* Unpinned, the link would end with this process. */
	if (obj_pin(link_fd, link_pin))
		fail("pin link");
	else
		ret = 0;
	close(link_fd);
out:
	close(prog_fd);
	return ret < 0 ? -1 : 0;
}

static int cmd_detach(const char *link_pin)
{
	int fd = obj_get(link_pin);

	if (fd < 0)
		return errno == ENOENT ? 0 : fail("open link pin");
	/*
	 * Unpinning alone frees the link only after an RCU grace period and a
	 * work item: detach first, so the hook is empty when we return.
	 * A defunct link (device gone) has nothing to detach from.
	 */
	if (link_detach(fd) && errno != ENOLINK && errno != ENOENT) {
		close(fd);
		return fail("BPF_LINK_DETACH");
	}
	close(fd);
	return unlink(link_pin) ? fail("unpin link") : 0;
}

static int cmd_query(const char *dev, const char *direction)
{
	__u32 ids[64];
	unsigned int ifindex;
	__u32 attach_type;
	union bpf_attr attr;

	if (hook(direction, &attach_type) || device(dev, &ifindex))
		return -1;
	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = ifindex;
	attr.query.attach_type = attach_type;
	attr.query.prog_ids = (__u64)(unsigned long)ids;
	attr.query.prog_cnt = sizeof(ids) / sizeof(ids[0]);
	if (sys_bpf(BPF_PROG_QUERY, &attr))
		return fail("BPF_PROG_QUERY");
	for (__u32 i = 0; i < attr.query.prog_cnt; i++)
		printf("%s%u", i ? " " : "", ids[i]);
	printf("\n");
	fflush(stdout);
	return 0;
}

static int cmd_probe(void)
{
	/* r0 = -1 (TCX_NEXT: carry on as if nothing were attached); exit */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = -1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;
	unsigned int ifindex;
	int prog_fd, link_fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
	attr.insns = (__u64)(unsigned long)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (__u64)(unsigned long)"GPL";
	prog_fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (prog_fd < 0)
		return fail("BPF_PROG_LOAD");
	if (device("lo", &ifindex)) {
		close(prog_fd);
		return -1;
	}
	link_fd = link_create(prog_fd, ifindex, BPF_TCX_INGRESS);
	close(prog_fd);
	if (link_fd < 0)
		return fail("BPF_LINK_CREATE");
	close(link_fd);	/* unpinned: the link ends here */
	printf("tcx links work\n");
	return 0;
}

static int dispatch(int argc, char **argv)
{
	command = argv[0];
	if (strcmp(argv[0], "attach") == 0 && argc == 5)
		return cmd_attach(argv[1], argv[2], argv[3], argv[4]);
	if (strcmp(argv[0], "detach") == 0 && argc == 2)
		return cmd_detach(argv[1]);
	if (strcmp(argv[0], "query") == 0 && argc == 3)
		return cmd_query(argv[1], argv[2]);
	if (strcmp(argv[0], "probe") == 0 && argc == 1)
		return cmd_probe();
	fprintf(stderr, "tcx-attach: bad command \"%s\" with %d argument(s); usage: attach DEV ingress|egress PROG_PIN LINK_PIN | detach LINK_PIN | query DEV ingress|egress | probe | -\n",
		argv[0], argc - 1);
	return -1;
}

/* One command per stdin line, words split on blanks (pins hold no blanks). */
static int batch(void)
{
	char line[8192];

	while (fgets(line, sizeof(line), stdin)) {
		char *words[8];
		int n = 0;

		for (char *w = strtok(line, " \t\r\n"); w; w = strtok(NULL, " \t\r\n")) {
			if (n == (int)(sizeof(words) / sizeof(words[0]))) {
				fprintf(stderr, "tcx-attach: too many words on one line\n");
				return -1;
			}
			words[n++] = w;
		}
		if (n > 0 && dispatch(n, words))
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "-") == 0)
		return batch() ? 1 : 0;
	if (argc < 2) {
		fprintf(stderr, "usage: tcx-attach attach DEV ingress|egress PROG_PIN LINK_PIN | detach LINK_PIN | query DEV ingress|egress | probe | -\n");
		return 2;
	}
	return dispatch(argc - 1, argv + 1) ? 1 : 0;
}
