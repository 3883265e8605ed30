// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Tunnel mode: two tc direct-action programs on each node's VXLAN device
 * (cilium_vxlan, "external"/collect-metadata mode, UDP 8472), loaded once
 * per node next to datapath.o and sharing its cilium_ipcache and cilium_lxc.
 *
 *   pod --lxc--> node routing --> cilium_vxlan
 *                                   tc egress:  cil_to_overlay
 *                                     tunnel key: remote = the destination's
 *                                     node (ipcache tunnel_endpoint),
 *                                     VNI = the SOURCE pod's identity
 *   ==== UDP 8472 on the underlay ====
 *                                 cilium_vxlan (peer node)
 *                                   tc ingress: cil_from_overlay
 *                                     VNI -> skb->mark (identity mark)
 *   node routing --lxc--> pod        tc egress of lxc: cil_to_container
 *                                     believes the mark, not the ipcache
 *
 * This is why tunnel mode defeats identity confusion: the identity travels
 * with each packet, set by the sender's node from its own endpoint table, so
 * a stale ipcache on the receiver no longer decides who sent it.
 */
#include "lib/common.h"
#include "lib/packet.h"
#include "lib/overlay.h"

/*
 * The sender's identity. A pod's packet was forwarded from its lxc veth, so
 * skb->ingress_ifindex names the endpoint in cilium_lxc (the identity the
 * node itself assigned; cil_from_container already refused spoofed source
 * addresses). Anything else (the node's own traffic) is looked up by source
 * address, and is "world" when unknown.
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
	if (info && info->sec_identity)
		return info->sec_identity;
	return IDENTITY_WORLD;
}

SEC("tc")
int cil_to_overlay(struct __sk_buff *ctx)
{
	const struct remote_endpoint_info *info;
	struct bpf_tunnel_key key;
	struct pkt4 p = {};
	__be32 node_ip = 0;

	if (eth_protocol(ctx) != ETH_P_IP)
		return CTX_ACT_DROP;	/* IPv4-only lab; static neighbours, so no ARP here */
	if (IS_ERR(parse_ipv4(ctx, &p)))
		return CTX_ACT_DROP;

	/* Cilium: no tunnel endpoint for the destination -> DROP_NO_TUNNEL_ENDPOINT. */
	info = ipcache_lookup4(p.daddr);
	if (!info || !(info->flags & IPCACHE_F_HAS_TUNNEL_EP) || (info->flags & IPCACHE_F_IPV6_TUNNEL_EP))
		return CTX_ACT_DROP;
	__builtin_memcpy(&node_ip, info->tunnel_endpoint, sizeof(node_ip));
	if (!node_ip)
		return CTX_ACT_DROP;

	__builtin_memset(&key, 0, sizeof(key));
	key.tunnel_id = source_identity(ctx, p.saddr) & VXLAN_VNI_MASK;
	key.remote_ipv4 = bpf_ntohl(node_ip);	/* the helper wants host byte order */
	key.tunnel_ttl = OVERLAY_TUNNEL_TTL;
	/* Like Cilium: no outer UDP checksum (the inner packet has its own). */
	if (bpf_skb_set_tunnel_key(ctx, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return CTX_ACT_DROP;
	return CTX_ACT_OK;
}

SEC("tc")
int cil_from_overlay(struct __sk_buff *ctx)
{
	struct bpf_tunnel_key key;
	__u32 identity;

	if (bpf_skb_get_tunnel_key(ctx, &key, sizeof(key), 0) < 0)
		return CTX_ACT_DROP;	/* not from the collect-metadata device */

	/* VNI 0 says nothing: leave the mark without the magic, and the
	 * receiver falls back to its ipcache, as in native routing. */
	identity = key.tunnel_id & VXLAN_VNI_MASK;
	ctx->mark = identity ? identity_to_mark(identity) : 0;
	return CTX_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
