// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * netns-setup: the per-namespace part of bringing a lab up (lab/compose/up.ts),
 * from one process. `ip` cannot switch namespaces inside a batch, so the
 * lab's pods otherwise cost one `ip -n POD -batch` process each; here one
 * process enters each namespace in turn (setns) and sends the same rtnetlink
 * requests `ip` would, through a socket opened there.
 *
 * Lines on stdin:
 *   ns NAME                        enter /run/netns/NAME
 *   sysctl PATH VALUE              write VALUE to /proc/sys/PATH (this namespace's)
 *   pod IFNAME ADDR GW GWMAC RANGE/LEN
 *                                  lab/core/batches.ts podLines, in order:
 *                                  lo up; IFNAME addrgenmode none; ADDR/32 on
 *                                  IFNAME; IFNAME up; GW lladdr GWMAC nud
 *                                  permanent; RANGE via GW dev IFNAME onlink
 * Exits 0 when every line worked; at the first failure, prints
 * "netns-setup: line N (ns NAME): what: reason" on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h> /* if_nametoindex; linux/if.h is left out: the two clash */
#include <sched.h>
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
static char ns_name[256] = "(none)";
static unsigned long line_no;

static void fail(const char *what, const char *reason)
{
	fprintf(stderr, "netns-setup: line %lu (ns %s): %s: %s\n", line_no, ns_name, what, reason);
	exit(1);
}

struct req {
	struct nlmsghdr h;
	char buf[512];
};

static void *tail(struct req *r)
{
	return (char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len);
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

static void link_up(int ifindex, const char *what)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct req r;

	start(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	talk(&r, what);
}

static void parse_v4(const char *text, struct in_addr *out, const char *what)
{
	if (inet_pton(AF_INET, text, out) != 1)
		fail(what, "not an IPv4 address");
}

static void pod(const char *ifname, const char *addr, const char *gw, const char *gwmac, const char *range)
{
	struct in_addr ip, gateway, dst;
	unsigned char mac[6];
	unsigned int m[6], len;
	char net[64], *slash;
	struct rtattr *spec, *inet6;
	struct req r;
	int ifindex, i;
	unsigned char mode = IN6_ADDR_GEN_MODE_NONE;
	__u32 oif;

	parse_v4(addr, &ip, "pod address");
	parse_v4(gw, &gateway, "gateway");
	if (sscanf(gwmac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		fail("gateway MAC", "not aa:bb:cc:dd:ee:ff");
	for (i = 0; i < 6; i++)
		mac[i] = (unsigned char)m[i];
	snprintf(net, sizeof(net), "%s", range);
	slash = strchr(net, '/');
	if (!slash || sscanf(slash + 1, "%u", &len) != 1 || len > 32)
		fail("range", "not ADDR/LEN");
	*slash = 0;
	parse_v4(net, &dst, "range");
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		fail(ifname, strerror(errno));
	oif = ifindex;

	link_up(1, "link set lo up"); /* lo is ifindex 1 in every namespace */

	{
		struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };

		start(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
		spec = attr(&r, IFLA_AF_SPEC | NLA_F_NESTED, NULL, 0);
		inet6 = attr(&r, AF_INET6 | NLA_F_NESTED, NULL, 0);
		attr(&r, IFLA_INET6_ADDR_GEN_MODE, &mode, sizeof(mode));
		nest_end(&r, inet6);
		nest_end(&r, spec);
		talk(&r, "link set addrgenmode none");
	}
	{
		struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = 32, .ifa_index = ifindex, .ifa_scope = RT_SCOPE_UNIVERSE };

		start(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
		attr(&r, IFA_LOCAL, &ip, sizeof(ip));
		attr(&r, IFA_ADDRESS, &ip, sizeof(ip));
		talk(&r, "addr add");
	}
	link_up(ifindex, "link set up");
	{
		struct ndmsg nd = { .ndm_family = AF_INET, .ndm_ifindex = ifindex, .ndm_state = NUD_PERMANENT };

		start(&r, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &nd, sizeof(nd));
		attr(&r, NDA_DST, &gateway, sizeof(gateway));
		attr(&r, NDA_LLADDR, mac, sizeof(mac));
		talk(&r, "neigh replace");
	}
	{
		struct rtmsg rt = {
			.rtm_family = AF_INET, .rtm_dst_len = len, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
			.rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST, .rtm_flags = RTNH_F_ONLINK,
		};

		start(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof(rt));
		attr(&r, RTA_DST, &dst, sizeof(dst));
		attr(&r, RTA_GATEWAY, &gateway, sizeof(gateway));
		attr(&r, RTA_OIF, &oif, sizeof(oif));
		talk(&r, "route add");
	}
}

int main(void)
{
	char line[1024];

	while (fgets(line, sizeof(line), stdin)) {
		char *w[7] = { 0 }, *save = NULL;
		int n = 0;

		line_no++;
		for (char *t = strtok_r(line, " \t\n", &save); t && n < 7; t = strtok_r(NULL, " \t\n", &save))
			w[n++] = t;
		if (n == 0)
			continue;
		if (strcmp(w[0], "ns") == 0 && n == 2)
			enter(w[1]);
		else if (strcmp(w[0], "sysctl") == 0 && n == 3)
			write_sysctl(w[1], w[2]);
		else if (strcmp(w[0], "pod") == 0 && n == 6) {
			if (nl < 0)
				fail("pod", "no namespace entered (ns NAME first)");
			pod(w[1], w[2], w[3], w[4], w[5]);
		} else
			fail(w[0], "expected: ns NAME | sysctl PATH VALUE | pod IFNAME ADDR GW GWMAC RANGE/LEN");
	}
	return 0;
}
