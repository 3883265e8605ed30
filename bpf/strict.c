// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * WireGuard strict mode (Cilium's --encryption-strict-mode-cidr): one tc
 * direct-action program at tc EGRESS of each node's underlay device (eth0),
 * loaded once per node next to datapath.o and sharing ALL of its pinned maps
 * (so its drops land in the node's cilium_events and cilium_metrics, exactly
 * as the datapath's do):
 *
 *   pod --lxc--> node routing --> wg<hash> (wireguard-go) --UDP 51871--> eth0   passes
 *   pod --lxc--> node routing ------------------------------------------> eth0   strict:
 *                                     tc egress: cil_to_netdev_strict           DROP 195
 *
 * A packet is "unencrypted pod traffic to a remote node" (Cilium's
 * strict_allow() in bpf/lib/wireguard.h) when
 *   - source and destination are both in the strict CIDR (the lab's pod
 *     range, written by the loader into strict_config), and
 *   - the destination's ipcache entry has a tunnel endpoint (a pod of another
 *     node), and
 *   - the source's ipcache entry has none (a pod of this node).
 * WireGuard's own packets (UDP 51871) and the agents' 4250 traffic carry node
 * IPs, outside the pod range, and pass. So does everything that is not IPv4.
 *
 * Tunnel mode with WireGuard (VXLAN inside WireGuard, lab/tunnel/encapsulate.ts):
 * a VXLAN packet (UDP 8472) reaching eth0 missed the WireGuard device, and its
 * outer addresses are node IPs; the same test then applies to the pod packet
 * inside it, so a failed steering drops with 195 too instead of leaking the
 * inner packet (and its VNI) in plaintext.
 *
 * Observation point: the lab's layouts have no "to-network" (Cilium's
 * TRACE_TO_NETWORK), and strict.c adds none; the event reuses
 * OBS_FROM_ENDPOINT (the packet is leaving a pod), with ifindex = eth0's so
 * it is told apart from cil_from_container's drops (ifindex = an lxc veth).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/packet.h"
#include "lib/identity.h"
#include "lib/drop.h"
#include "lib/generated_strict.h"	/* struct strict_config and its map, the only one strict.o does not share */

#define STRICT_OBS_POINT	OBS_FROM_ENDPOINT

static __always_inline bool in_cidr(__be32 addr, const struct strict_config *cfg)
{
	return (addr & cfg->mask) == cfg->net;
}

/* UDP (8) and VXLAN (8) headers between the outer IPv4 header and the inner Ethernet frame. */
#define VXLAN_ENCAP_HLEN	16

/*
 * The IPv4 packet inside a VXLAN packet: addresses, protocol, ports and
 * TCP flags, as parse_ipv4() gives them for an outer packet. Non-IPv4
 * inner frames return DROP_UNKNOWN_L3 (not ours to judge).
 */
static __always_inline int parse_vxlan_inner4(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct iphdr outer, ip;
	__be16 proto;
	__u8 l4[14];
	__u32 off;

	if (bpf_skb_load_bytes(ctx, ETH_HLEN, &outer, sizeof(outer)) < 0)
		return DROP_INVALID;
	off = ETH_HLEN + outer.ihl * 4 + VXLAN_ENCAP_HLEN;
	if (bpf_skb_load_bytes(ctx, off + offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0)
		return DROP_INVALID;
	if (proto != bpf_htons(ETH_P_IP))
		return DROP_UNKNOWN_L3;
	off += ETH_HLEN;
	if (bpf_skb_load_bytes(ctx, off, &ip, sizeof(ip)) < 0)
		return DROP_INVALID;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_INVALID;
	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->protocol = ip.protocol;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	if (bpf_ntohs(ip.frag_off) & IP_OFFSET_MASK)
		return 0;
	off += ip.ihl * 4;
	if (ip.protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(ctx, off, l4, 14) < 0)
			return DROP_INVALID;
		p->tcp_flags = l4[13] & 0x3f;
	} else if (ip.protocol == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(ctx, off, l4, 4) < 0)
			return DROP_INVALID;
	} else {
		return 0;
	}
	p->sport = (l4[0] << 8) | l4[1];
	p->dport = (l4[2] << 8) | l4[3];
	return 0;
}

SEC("tc")
int cil_to_netdev_strict(struct __sk_buff *ctx)
{
	const struct remote_endpoint_info *src, *dst;
	const struct strict_config *cfg;
	struct pkt4 p = {};
	__be32 node_ip;
	__u32 slot = 0;

	if (eth_protocol(ctx) != ETH_P_IP)
		return CTX_ACT_OK;
	cfg = bpf_map_lookup_elem(&strict_config, &slot);
	if (!cfg || !cfg->mask)
		return CTX_ACT_OK;
	if (IS_ERR(parse_ipv4(ctx, &p)))
		return CTX_ACT_OK;	/* not ours to judge; the node's own stack built it */
	/* A tunnel packet on eth0: judge the pod packet it carries. */
	if (p.protocol == IPPROTO_UDP && p.dport == VXLAN_PORT && IS_ERR(parse_vxlan_inner4(ctx, &p)))
		return CTX_ACT_OK;
	if (!in_cidr(p.saddr, cfg) || !in_cidr(p.daddr, cfg))
		return CTX_ACT_OK;

	dst = ipcache_lookup4(p.daddr);
	node_ip = tunnel_endpoint4(dst);
	if (!node_ip)
		return CTX_ACT_OK;	/* not a pod of another node */
	src = ipcache_lookup4(p.saddr);
	if (tunnel_endpoint4(src))
		return CTX_ACT_OK;	/* not a pod of this node */

	{
		struct flow_event ev = {
			.obs_point = STRICT_OBS_POINT,
			.ifindex = ctx->ifindex,
			.pkt_len = ctx->len,
			.saddr = p.saddr,
			.daddr = p.daddr,
			.sport = p.sport,
			.dport = p.dport,
			.protocol = p.protocol,
			.tcp_flags = p.tcp_flags,
			.src_identity = src && src->sec_identity ? src->sec_identity : IDENTITY_WORLD,
			.dst_identity = dst->sec_identity ? dst->sec_identity : IDENTITY_WORLD,
			.remote_node_id = node_id_lookup4(node_ip),
		};

		return send_drop_notify(ctx, &ev, DROP_UNENCRYPTED_TRAFFIC, DIR_EGRESS);
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
