// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Same-node socket acceleration, as Cilium had it until 1.13 (bpf/sockops/):
 * two programs, loaded once per node.
 *
 *   cil_sock_ops  sock_ops, on the node's cgroup (every pod process of the
 *                 node runs in it). When a TCP socket becomes established
 *                 and both of its ends are pods of this node, it goes into
 *                 the cilium_sock_ops sockhash.
 *   cil_sk_msg    sk_msg, on that sockhash (msg_verdict): runs on every
 *                 sendmsg of a socket in the hash. If the peer's socket is
 *                 in the hash too, the data is put straight onto the peer's
 *                 receive queue (bpf_msg_redirect_hash, BPF_F_INGRESS):
 *                 no skb, no IP, no veth, no tc.
 *
 *      pod A (netns a)                         pod B (netns b)
 *      send() -> cil_sk_msg --redirect--> B's socket receive queue
 *         \                                        ^
 *          `- (no peer in the hash) TCP/IP -> lxc-a -> tc -> lxc-b
 *
 * The handshake and the FIN still go through TCP/IP (and so through the tc
 * datapath and its policy): only the payload is short-circuited. This is
 * what the sockmap scenario shows on the veths, and it is also why tc-level
 * policy and auth never see the payload of an accelerated connection.
 *
 * IPv4 only, including IPv4-mapped IPv6 sockets (see is_v4_mapped).
 *
 * Both programs only count and never drop: cil_sk_msg returns SK_PASS
 * whatever happens, and the helper's result decides between redirect and
 * the normal path.
 */
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_endian.h>

#include "lib/sockmap.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/*
 * An AF_INET6 socket talking to an IPv4 peer (::ffff:a.b.c.d): what a
 * dual-stack listener accepts, e.g. iperf3's default `-s` on "::". Its
 * local_ip4/remote_ip4 hold the IPv4 addresses, so it is handled as IPv4,
 * as Cilium's bpf_sock_ops_ipv6() did. Without this the accepted socket
 * never enters the hash: the sender's sk_msg then runs on every write, finds
 * no peer and passes, which is pure overhead (a first 1-s iperf3 trial
 * here, before this check: 0 redirects, 0.51x and 0.77x the throughput).
 */
static __always_inline bool is_v4_mapped(const __u32 *ip6)
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0x0000ffff);
}

/* sock_ops and sk_msg hand remote_port over in network byte order in the
 * upper 16 bits of a u32 (on little endian); read it as a u32 and shift,
 * as Cilium does (a 16-bit load of the field is refused on older kernels). */
static __always_inline __be16 remote_port_be(__u32 remote_port)
{
	return (__be16)(remote_port >> 16);
}

/* local_port is in host byte order. */
static __always_inline __be16 local_port_be(__u32 local_port)
{
	return bpf_htons((__u16)local_port);
}

static __always_inline struct sockmap_pod *local_pod(__be32 ip)
{
	return bpf_map_lookup_elem(&sockmap_pods, &ip);
}

/*
 * An established IPv4 socket: if both ends are pods of this node, store it
 * under its own tuple and namespace cookie, and record the cookie as its
 * pod's (the peer needs it to build this socket's key).
 */
static __always_inline void sock_ops_established4(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_netns_cookie(skops);
	struct sockmap_pod *self, *peer;
	struct sock_key key = {};
	long ret;

	self = local_pod(skops->local_ip4);
	peer = local_pod(skops->remote_ip4);
	if (!self || !peer) {
		sockmap_count(SOCKMAP_SOCK_SKIPPED, 0);
		return;
	}
	/* First socket of this pod: learn its namespace. Later sockets must
	 * come from the same namespace, or two namespaces would share keys. */
	if (!self->netns_cookie)
		self->netns_cookie = cookie;
	else if (self->netns_cookie != cookie) {
		sockmap_count(SOCKMAP_SOCK_NETNS_MISMATCH, 0);
		return;
	}

	key.netns_cookie = cookie;
	key.sip4 = skops->local_ip4;
	key.dip4 = skops->remote_ip4;
	key.sport = local_port_be(skops->local_port);
	key.dport = remote_port_be(skops->remote_port);
	key.family = SOCK_KEY_FAMILY_IPV4;

	ret = bpf_sock_hash_update(skops, &cilium_sock_ops, &key, BPF_NOEXIST);
	sockmap_count(ret == 0 ? SOCKMAP_SOCK_ADDED : SOCKMAP_SOCK_ADD_FAILED, 0);
}

SEC("sockops")
int cil_sock_ops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:	/* connect() completed */
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:	/* accept()ed socket ready */
		if (skops->family == AF_INET ||
		    (skops->family == AF_INET6 && is_v4_mapped(skops->remote_ip6)))
			sock_ops_established4(skops);
		break;
	default:
		break;
	}
	return 1;
}

SEC("sk_msg")
int cil_sk_msg(struct sk_msg_md *msg)
{
	struct sockmap_pod *peer;
	struct sock_key key = {};
	long ret = SK_DROP;

	if (msg->family != AF_INET &&
	    !(msg->family == AF_INET6 && is_v4_mapped(msg->remote_ip6)))
		goto pass;
	peer = local_pod(msg->remote_ip4);
	if (!peer || !peer->netns_cookie)
		goto pass;

	/* The peer's socket, as the peer sees itself: our tuple reversed. */
	key.netns_cookie = peer->netns_cookie;
	key.sip4 = msg->remote_ip4;
	key.dip4 = msg->local_ip4;
	key.sport = remote_port_be(msg->remote_port);
	key.dport = local_port_be(msg->local_port);
	key.family = SOCK_KEY_FAMILY_IPV4;

	ret = bpf_msg_redirect_hash(msg, &cilium_sock_ops, &key, BPF_F_INGRESS);
pass:
	sockmap_count(ret == SK_PASS ? SOCKMAP_MSG_REDIRECTED : SOCKMAP_MSG_PASSED, msg->size);
	return SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
