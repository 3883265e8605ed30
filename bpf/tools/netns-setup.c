// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * netns-setup: the kernel build of `up` (lab/compose/up.ts) from one
 * process. `ip` cannot switch namespaces inside a batch, so a lab otherwise
 * costs one `ip -n NS -batch` process per namespace; here one process
 * enters each namespace in turn (setns) and sends the same rtnetlink
 * requests `ip` would, through a socket opened there.
 *
 * Lines on stdin: `ns NAME` (enter /run/netns/NAME), `sysctl PATH VALUE`
 * (write /proc/sys/PATH in this namespace), and the subset of `ip -batch`
 * lines that lab/core/batches.ts writes, with ip's meaning:
 *   netns add NAME
 *   link add NAME [address MAC] type bridge
 *   link add NAME [address MAC] type veth peer name PEER [address MAC] [netns NS]
 *   link set DEV [addrgenmode none] [master BRIDGE] [up]
 *   addr add ADDR/LEN dev DEV
 *   route add DST[/LEN] [via GW] dev DEV [onlink]
 *   neigh replace ADDR lladdr MAC dev DEV nud permanent
 * Exits 0 when every line worked; at the first failure, prints
 * "netns-setup: line N (ns NAME): LINE: reason" on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h> /* if_nametoindex; linux/if.h is left out: the two clash */
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IN6_ADDR_GEN_MODE_NONE
#define IN6_ADDR_GEN_MODE_NONE 1
#endif

static int nl = -1;
static unsigned int seq;
static char ns_name[256] = "it started in";
static unsigned long line_no;
static char line_text[1024];

/* `what`: the part that failed, when it is not the line's request itself. */
static void fail(const char *what, const char *reason)
{
	if (what && *what)
		fprintf(stderr, "netns-setup: line %lu (ns %s): %s: %s: %s\n", line_no, ns_name, line_text, what, reason);
	else
		fprintf(stderr, "netns-setup: line %lu (ns %s): %s: %s\n", line_no, ns_name, line_text, reason);
	exit(1);
}

struct req {
	struct nlmsghdr h;
	char buf[512];
};

static void *tail(struct req *r)
{
	return (char *)r + NLMSG_ALIGN(r->h.nlmsg_len); /* r, not &r->h: the request spans both fields */
}

static struct rtattr *attr(struct req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = tail(r);

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void nest_end(struct req *r, struct rtattr *a)
{
	a->rta_len = (char *)tail(r) - (char *)a;
}

static void start(struct req *r, unsigned short type, unsigned short flags, const void *hdr, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_LENGTH(len);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	r->h.nlmsg_seq = ++seq;
	memcpy(NLMSG_DATA(&r->h), hdr, len);
}

/* Sends one request and waits for its acknowledgement. */
static void talk(struct req *r, const char *what)
{
	char buf[4096];
	ssize_t n;

	if (send(nl, &r->h, r->h.nlmsg_len, 0) < 0)
		fail(what, strerror(errno));
	for (;;) {
		struct nlmsghdr *h;

		n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail(what, strerror(errno));
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_seq != r->h.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			if (e->error)
				fail(what, strerror(-e->error));
			return;
		}
	}
}

static void enter(const char *name)
{
	char path[300];
	int fd;

	snprintf(ns_name, sizeof(ns_name), "%s", name);
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open namespace", strerror(errno));
	if (setns(fd, CLONE_NEWNET) < 0)
		fail("setns", strerror(errno));
	close(fd);
	if (nl >= 0)
		close(nl);
	/* A netlink socket talks to the namespace it was made in. */
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0)
		fail("netlink socket", strerror(errno));
}

static void write_sysctl(const char *path, const char *value)
{
	char file[300];
	int fd;

	snprintf(file, sizeof(file), "/proc/sys/%s", path);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		fail(file, strerror(errno));
	close(fd);
}

static void parse_v4(const char *text, struct in_addr *out, const char *what)
{
	if (inet_pton(AF_INET, text, out) != 1)
		fail(what, "not an IPv4 address");
}

/* ADDR or ADDR/LEN; a bare address is a /32, as for ip. */
static unsigned int parse_prefix(const char *text, struct in_addr *out, const char *what)
{
	char net[64], *slash;
	unsigned int len = 32;

	snprintf(net, sizeof(net), "%s", text);
	slash = strchr(net, '/');
	if (slash) {
		char *end;

		*slash = 0;
		len = strtoul(slash + 1, &end, 10);
		if (*end || end == slash + 1 || len > 32)
			fail(what, "not ADDR/LEN");
	}
	parse_v4(net, out, what);
	return len;
}

static void parse_mac(const char *text, unsigned char mac[6])
{
	unsigned int m[6];
	char extra;

	if (sscanf(text, "%x:%x:%x:%x:%x:%x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &extra) != 6)
		fail(text, "not a MAC address (aa:bb:cc:dd:ee:ff)");
	for (int i = 0; i < 6; i++) {
		if (m[i] > 0xff)
			fail(text, "not a MAC address (aa:bb:cc:dd:ee:ff)");
		mac[i] = (unsigned char)m[i];
	}
}

static int ifindex_of(const char *dev)
{
	int ifindex = if_nametoindex(dev);

	if (!ifindex)
		fail(dev, strerror(errno));
	return ifindex;
}

static int open_netns(const char *name)
{
	char path[300];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail(path, strerror(errno));
	return fd;
}

/* The words of a line, and a cursor over them. */
struct words {
	char *w[24];
	int n, at;
};

static const char *next_word(struct words *ws, const char *what)
{
	if (ws->at >= ws->n)
		fail(what, "missing");
	return ws->w[ws->at++];
}

static int next_is(struct words *ws, const char *word)
{
	if (ws->at < ws->n && strcmp(ws->w[ws->at], word) == 0) {
		ws->at++;
		return 1;
	}
	return 0;
}

static void expect_end(struct words *ws)
{
	if (ws->at < ws->n)
		fail(ws->w[ws->at], "unexpected word (this helper knows only the lines lab/core/batches.ts writes)");
}

/*
 * `ip netns add`: a file under /run/netns (a shared mount, so that other
 * mount namespaces see it), a new network namespace, and a bind mount of
 * it on the file; then back to the namespace this process was in.
 */
static void netns_add(const char *name)
{
	char path[300];
	int back, fd;

	if (strchr(name, '/') || !*name)
		fail(name, "not a namespace name");
	if (mkdir("/run/netns", 0755) < 0 && errno != EEXIST)
		fail("/run/netns", strerror(errno));
	if (mount("", "/run/netns", "none", MS_SHARED | MS_REC, NULL) < 0) {
		/* Not a mount point yet: make it one (a bind mount on itself), as ip does. */
		if (errno != EINVAL || mount("/run/netns", "/run/netns", "none", MS_BIND | MS_REC, NULL) < 0 ||
		    mount("", "/run/netns", "none", MS_SHARED | MS_REC, NULL) < 0)
			fail("/run/netns", strerror(errno));
	}
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		fail(path, strerror(errno));
	close(fd);
	back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (back < 0)
		fail("/proc/self/ns/net", strerror(errno));
	if (unshare(CLONE_NEWNET) < 0 || mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) < 0) {
		int err = errno;

		setns(back, CLONE_NEWNET);
		unlink(path);
		fail("", strerror(err));
	}
	if (setns(back, CLONE_NEWNET) < 0)
		fail("setns back", strerror(errno));
	close(back);
}

/* link add NAME [address MAC] type bridge|veth [peer name PEER [address MAC] [netns NS]] */
static void link_add(struct words *ws)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	unsigned char mac[6], peer_mac[6];
	const char *name = next_word(ws, "link name"), *kind, *peer = NULL;
	int has_mac = 0, has_peer_mac = 0, peer_ns = -1;
	struct rtattr *info, *data, *peer_attr;
	struct req r;

	if (next_is(ws, "address")) {
		parse_mac(next_word(ws, "address"), mac);
		has_mac = 1;
	}
	if (!next_is(ws, "type"))
		fail("type", "missing");
	kind = next_word(ws, "type");
	if (strcmp(kind, "veth") == 0) {
		if (!next_is(ws, "peer") || !next_is(ws, "name"))
			fail("peer name", "missing");
		peer = next_word(ws, "peer name");
		if (next_is(ws, "address")) {
			parse_mac(next_word(ws, "peer address"), peer_mac);
			has_peer_mac = 1;
		}
		if (next_is(ws, "netns"))
			peer_ns = open_netns(next_word(ws, "netns"));
	} else if (strcmp(kind, "bridge") != 0)
		fail(kind, "only bridge and veth links");
	expect_end(ws);

	start(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
	if (has_mac)
		attr(&r, IFLA_ADDRESS, mac, sizeof(mac));
	info = attr(&r, IFLA_LINKINFO | NLA_F_NESTED, NULL, 0);
	attr(&r, IFLA_INFO_KIND, kind, strlen(kind));
	if (peer) {
		data = attr(&r, IFLA_INFO_DATA | NLA_F_NESTED, NULL, 0);
		/* The peer's attributes follow an ifinfomsg of its own. */
		peer_attr = attr(&r, VETH_INFO_PEER | NLA_F_NESTED, &ifi, sizeof(ifi));
		attr(&r, IFLA_IFNAME, peer, strlen(peer) + 1);
		if (has_peer_mac)
			attr(&r, IFLA_ADDRESS, peer_mac, sizeof(peer_mac));
		if (peer_ns >= 0)
			attr(&r, IFLA_NET_NS_FD, &peer_ns, sizeof(peer_ns));
		nest_end(&r, peer_attr);
		nest_end(&r, data);
	}
	nest_end(&r, info);
	talk(&r, "");
	if (peer_ns >= 0)
		close(peer_ns);
}

/* link set DEV [addrgenmode none] [master BRIDGE] [up]: one request, as ip sends. */
static void link_set(struct words *ws)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	const char *dev = next_word(ws, "device");
	int genmode = 0, master = 0;
	struct req r;

	ifi.ifi_index = ifindex_of(dev);
	while (ws->at < ws->n) {
		if (next_is(ws, "up")) {
			ifi.ifi_flags |= IFF_UP;
			ifi.ifi_change |= IFF_UP;
		} else if (next_is(ws, "addrgenmode")) {
			if (strcmp(next_word(ws, "addrgenmode"), "none") != 0)
				fail("addrgenmode", "only none");
			genmode = 1;
		} else if (next_is(ws, "master"))
			master = ifindex_of(next_word(ws, "master"));
		else
			expect_end(ws);
	}
	start(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	if (master)
		attr(&r, IFLA_MASTER, &master, sizeof(master));
	if (genmode) {
		unsigned char mode = IN6_ADDR_GEN_MODE_NONE;
		struct rtattr *spec = attr(&r, IFLA_AF_SPEC | NLA_F_NESTED, NULL, 0);
		struct rtattr *inet6 = attr(&r, AF_INET6 | NLA_F_NESTED, NULL, 0);

		attr(&r, IFLA_INET6_ADDR_GEN_MODE, &mode, sizeof(mode));
		nest_end(&r, inet6);
		nest_end(&r, spec);
	}
	talk(&r, "");
}

/* addr add ADDR/LEN dev DEV: local and address the same (no peer), global scope. */
static void addr_add(struct words *ws)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_scope = RT_SCOPE_UNIVERSE };
	struct in_addr ip;
	struct req r;

	ifa.ifa_prefixlen = parse_prefix(next_word(ws, "address"), &ip, "address");
	if (!next_is(ws, "dev"))
		fail("dev", "missing");
	ifa.ifa_index = ifindex_of(next_word(ws, "device"));
	expect_end(ws);
	start(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
	attr(&r, IFA_LOCAL, &ip, sizeof(ip));
	attr(&r, IFA_ADDRESS, &ip, sizeof(ip));
	talk(&r, "");
}

/* route add DST[/LEN] [via GW] dev DEV [onlink]: without a gateway, link scope (ip's default). */
static void route_add(struct words *ws)
{
	struct rtmsg rt = {
		.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
		.rtm_scope = RT_SCOPE_LINK, .rtm_type = RTN_UNICAST,
	};
	struct in_addr dst, gw;
	int has_gw = 0;
	__u32 oif;
	struct req r;

	rt.rtm_dst_len = parse_prefix(next_word(ws, "destination"), &dst, "destination");
	if (next_is(ws, "via")) {
		parse_v4(next_word(ws, "gateway"), &gw, "gateway");
		has_gw = 1;
		rt.rtm_scope = RT_SCOPE_UNIVERSE;
	}
	if (!next_is(ws, "dev"))
		fail("dev", "missing");
	oif = ifindex_of(next_word(ws, "device"));
	if (next_is(ws, "onlink"))
		rt.rtm_flags |= RTNH_F_ONLINK;
	expect_end(ws);
	start(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof(rt));
	attr(&r, RTA_DST, &dst, sizeof(dst));
	if (has_gw)
		attr(&r, RTA_GATEWAY, &gw, sizeof(gw));
	attr(&r, RTA_OIF, &oif, sizeof(oif));
	talk(&r, "");
}

/* neigh replace ADDR lladdr MAC dev DEV nud permanent */
static void neigh_replace(struct words *ws)
{
	struct ndmsg nd = { .ndm_family = AF_INET, .ndm_state = NUD_PERMANENT };
	unsigned char mac[6];
	struct in_addr ip;
	struct req r;

	parse_v4(next_word(ws, "address"), &ip, "address");
	if (!next_is(ws, "lladdr"))
		fail("lladdr", "missing");
	parse_mac(next_word(ws, "lladdr"), mac);
	if (!next_is(ws, "dev"))
		fail("dev", "missing");
	nd.ndm_ifindex = ifindex_of(next_word(ws, "device"));
	if (!next_is(ws, "nud") || !next_is(ws, "permanent"))
		fail("nud permanent", "missing");
	expect_end(ws);
	start(&r, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &nd, sizeof(nd));
	attr(&r, NDA_DST, &ip, sizeof(ip));
	attr(&r, NDA_LLADDR, mac, sizeof(mac));
	talk(&r, "");
}

static int is(struct words *ws, const char *a, const char *b)
{
	if (ws->n >= 2 && strcmp(ws->w[0], a) == 0 && strcmp(ws->w[1], b) == 0) {
		ws->at = 2;
		return 1;
	}
	return 0;
}

int main(void)
{
	char line[1024];

	/* Until the first `ns`: the namespace it was started in. */
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0)
		fail("netlink socket", strerror(errno));
	while (fgets(line, sizeof(line), stdin)) {
		struct words ws = { .n = 0 };
		char *save = NULL;

		line_no++;
		line[strcspn(line, "\n")] = 0;
		snprintf(line_text, sizeof(line_text), "%s", line);
		for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
			if (ws.n == (int)(sizeof(ws.w) / sizeof(ws.w[0])))
				fail("", "too many words");
			ws.w[ws.n++] = t;
		}
		if (ws.n == 0)
			continue;
		if (strcmp(ws.w[0], "ns") == 0 && ws.n == 2)
			enter(ws.w[1]);
		else if (strcmp(ws.w[0], "sysctl") == 0 && ws.n == 3)
			write_sysctl(ws.w[1], ws.w[2]);
		else if (is(&ws, "netns", "add") && ws.n == 3)
			netns_add(ws.w[2]);
		else if (is(&ws, "link", "add"))
			link_add(&ws);
		else if (is(&ws, "link", "set"))
			link_set(&ws);
		else if (is(&ws, "addr", "add"))
			addr_add(&ws);
		else if (is(&ws, "route", "add"))
			route_add(&ws);
		else if (is(&ws, "neigh", "replace"))
			neigh_replace(&ws);
		else
			fail("", "expected: ns NAME | sysctl PATH VALUE | netns add | link add | link set | addr add | route add | neigh replace");
	}
	if (ferror(stdin))
		fail("stdin", strerror(errno));
	return 0;
}
