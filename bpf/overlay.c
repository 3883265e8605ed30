// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Tunnel mode: two tc direct-action programs on each node's VXLAN device
 * (cilium_vxlan, "external"/collect-metadata mode, UDP 8472), loaded once
 * per node next to datapath.o and sharing all of its pinned maps (so their
 * drops land in the node's cilium_events and cilium_metrics, as the
 * datapath's do).
 *
 *   pod --lxc--> node routing --> cilium_vxlan
 *                                   tc egress:  cil_to_overlay
 *                                     tunnel key: remote = the destination's
 *                                     node (ipcache tunnel_endpoint),
 *                                     VNI = the SOURCE pod's identity
 *                                     (the node's own traffic: remote-node)
 *   ==== UDP 8472 on the underlay ====
 *                                 cilium_vxlan (peer node)
 *                                   tc ingress: cil_from_overlay
 *                                     VNI = host: DROP_INVALID_IDENTITY
 *                                     VNI -> skb->mark (identity mark)
 *   node routing --lxc--> pod        tc egress of lxc: cil_to_container
 *                                     believes the mark, not the ipcache
 *
 * This is why tunnel mode defeats identity confusion: the identity travels
 * with each packet, set by the sender's node from its own endpoint table, so
 * a stale ipcache on the receiver no longer decides who sent it.
 *
 * Every drop goes out through send_drop_notify (drop.h): a flow event with
 * the reason, observation point to-overlay / from-overlay and the VXLAN
 * device's ifindex, and a cilium_metrics count, as Cilium's bpf_overlay.c
 * reports its drops with send_drop_notify_error.
 *
 * Checked against Cilium's bpf_overlay.c (1.14 to main): of the reserved
 * identities a VNI can claim, only the host is refused ("any node
 * encapsulating will map any HOST_ID source to be presented as
 * REMOTE_NODE_ID"). World and remote-node pass, and policy judges them.
 * Not reproduced: Cilium swaps a remote-node VNI for the ipcache's identity
 * of the source (a shim for the kube-apiserver identity, which the lab does
 * not have); that would hand the decision back to the ipcache the tunnel is
 * there to bypass.
 */
#include "lib/common.h"
#include "lib/packet.h"
#include "lib/overlay.h"
#include "lib/drop.h"

/*
 * The sender's identity. A pod's packet was forwarded from its lxc veth, so
 * skb->ingress_ifindex names the endpoint in cilium_lxc (the identity the
 * node itself assigned; cil_from_container already refused spoofed source
 * addresses). Anything else (the node's own traffic) is looked up by source
 * address, and is "world" when unknown. The node's own host identity leaves
 * as remote-node, as Cilium's encapsulation does: to the receiver, another
 * node is never its own host.
 */
static __always_inline __u32 source_identity(struct __sk_buff *ctx, __be32 saddr)
{
	const struct remote_endpoint_info *info;
	const struct endpoint_info *ep;
	struct endpoint_key key = { .ifindex = ctx->ingress_ifindex };

	ep = bpf_map_lookup_elem(&cilium_lxc, &key);
	if (ep && ep->ipv4 == saddr && ep->sec_identity)
		return ep->sec_identity;
	info = ipcache_lookup4(saddr);
	if (info && info->sec_identity == IDENTITY_HOST)
		return IDENTITY_REMOTE_NODE;
	if (info && info->sec_identity)
		return info->sec_identity;
	return IDENTITY_WORLD;
}

/* The destination's identity for a flow event (0 when the ipcache has none). */
static __always_inline __u32 dst_identity(__be32 daddr)
{
	const struct remote_endpoint_info *info = ipcache_lookup4(daddr);

	return info ? info->sec_identity : 0;
}

static __always_inline void fill_flow(struct flow_event *ev, const struct pkt4 *p)
{
	ev->saddr = p->saddr;
	ev->daddr = p->daddr;
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->protocol = p->protocol;
	ev->tcp_flags = p->tcp_flags;
}

SEC("tc")
int cil_to_overlay(struct __sk_buff *ctx)
{
	const struct remote_endpoint_info *info;
	struct flow_event ev = {
		.obs_point = OBS_TO_OVERLAY,
		.ifindex = ctx->ifindex,
		.pkt_len = ctx->len,
	};
	struct bpf_tunnel_key key;
	struct pkt4 p = {};
	__be32 node_ip;
	int ret;

	/* IPv4-only lab; static neighbours, so no ARP here either. */
	if (eth_protocol(ctx) != ETH_P_IP) {
		ret = DROP_UNKNOWN_L3;
		goto drop;
	}
	ret = parse_ipv4(ctx, &p);
	fill_flow(&ev, &p);
	if (IS_ERR(ret))
		goto drop;
	ev.src_identity = source_identity(ctx, p.saddr);

	/* Cilium's encapsulation finds no tunnel endpoint: DROP_NO_TUNNEL_ENDPOINT. */
	info = ipcache_lookup4(p.daddr);
	if (info)
		ev.dst_identity = info->sec_identity;
	node_ip = tunnel_endpoint4(info);
	if (!node_ip) {
		ret = DROP_NO_TUNNEL_ENDPOINT;
		goto drop;
	}
	ev.remote_node_id = node_id_lookup4(node_ip);

	__builtin_memset(&key, 0, sizeof(key));
	key.tunnel_id = ev.src_identity & VXLAN_VNI_MASK;
	key.remote_ipv4 = bpf_ntohl(node_ip);	/* the helper wants host byte order */
	key.tunnel_ttl = OVERLAY_TUNNEL_TTL;
	/* Like Cilium: no outer UDP checksum (the inner packet has its own). */
	if (bpf_skb_set_tunnel_key(ctx, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0) {
		ret = DROP_WRITE_ERROR;
		goto drop;
	}
	return CTX_ACT_OK;
drop:
	return send_drop_notify(ctx, &ev, ret, DIR_EGRESS);
}

SEC("tc")
int cil_from_overlay(struct __sk_buff *ctx)
{
	struct flow_event ev = {
		.obs_point = OBS_FROM_OVERLAY,
		.ifindex = ctx->ifindex,
		.pkt_len = ctx->len,
	};
	struct bpf_tunnel_key key;
	struct pkt4 p = {};
	__u32 identity;
	__u16 proto;
	int ret;

	proto = eth_protocol(ctx);
	if (proto == ETH_P_IPV6) {
		ret = DROP_UNKNOWN_L3;	/* Cilium without IPv6 */
		goto drop;
	}
	if (proto != ETH_P_IP)
		return CTX_ACT_OK;	/* Cilium passes unknown traffic to the stack */
	ret = parse_ipv4(ctx, &p);
	fill_flow(&ev, &p);
	if (IS_ERR(ret))
		goto drop;
	ev.dst_identity = dst_identity(p.daddr);

	if (bpf_skb_get_tunnel_key(ctx, &key, sizeof(key), 0) < 0) {
		ret = DROP_NO_TUNNEL_KEY;	/* not from the collect-metadata device */
		goto drop;
	}
	identity = key.tunnel_id & VXLAN_VNI_MASK;
	ev.src_identity = identity;
	ev.remote_node_id = node_id_lookup4(bpf_htonl(key.remote_ipv4));

	/* A sending node presents its host as remote-node, so a VNI claiming
	 * the host is forged (or from a broken peer): the receiver's policy
	 * would take it for its own host (allow-localhost). */
	if (identity == IDENTITY_HOST) {
		ret = DROP_INVALID_IDENTITY;
		goto drop;
	}

	/* VNI 0 says nothing: leave the mark without the magic, and the
	 * receiver falls back to its ipcache, as in native routing. */
	ctx->mark = identity ? identity_to_mark(identity) : 0;
	return CTX_ACT_OK;
drop:
	return send_drop_notify(ctx, &ev, ret, DIR_INGRESS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
