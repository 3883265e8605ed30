/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Who is who: endpoints (cilium_lxc), addresses (cilium_ipcache), nodes
 * (cilium_node_map). */
#pragma once

#include "maps.h"

static __always_inline const struct endpoint_info *endpoint_lookup(__u32 ifindex)
{
	struct endpoint_key key = { .ifindex = ifindex };

	return bpf_map_lookup_elem(&cilium_lxc, &key);
}

/* Longest-prefix match on an IPv4 address. The prefix length counts the
 * 32 bits of cluster_id/pad/family before the address (see ipcache_key). */
static __always_inline const struct remote_endpoint_info *ipcache_lookup4(__be32 addr)
{
	struct ipcache_key key;

	/* Field by field: a constant initializer would make clang copy the key
	 * from .rodata, which costs the object an extra (global data) map. */
	__builtin_memset(&key, 0, sizeof(key));
	key.prefixlen = IPCACHE_PREFIX_BITS_BEFORE_IP + 32;
	key.family = ENDPOINT_KEY_IPV4;
	__builtin_memcpy(key.ip, &addr, sizeof(addr));
	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

/* The IPv4 node hosting this address, or 0 when it is on this node (no
 * tunnel endpoint) or unknown. */
static __always_inline __be32 tunnel_endpoint4(const struct remote_endpoint_info *info)
{
	__be32 node_ip = 0;

	if (info && (info->flags & IPCACHE_F_HAS_TUNNEL_EP) && !(info->flags & IPCACHE_F_IPV6_TUNNEL_EP))
		__builtin_memcpy(&node_ip, info->tunnel_endpoint, sizeof(node_ip));
	return node_ip;
}

/* Node ID of a node IP; 0 for "no IP" (this node) and for an unknown IP,
 * which the auth path turns into DROP_NO_NODE_ID. */
static __always_inline __u16 node_id_lookup4(__be32 node_ip)
{
	struct node_value *value;
	struct node_key key;

	if (!node_ip)
		return 0;
	__builtin_memset(&key, 0, sizeof(key));	/* not from .rodata, as above */
	key.family = ENDPOINT_KEY_IPV4;
	__builtin_memcpy(key.ip, &node_ip, sizeof(node_ip));
	value = bpf_map_lookup_elem(&cilium_node_map, &key);
	return value ? value->id : 0;
}

/*
 * A tunnel program (VXLAN in tunnel mode) can hand the source identity it
 * read from the VNI to cil_to_container in skb->mark, with Cilium's
 * encoding, so the receiver need not trust its ipcache:
 *
 *   bits 31..16  identity bits 15..0
 *   bits 11..8   MARK_MAGIC_IDENTITY (0xF)
 *   bits  7..0   identity bits 23..16
 *
 * Returns 0 when the mark carries no identity.
 */
static __always_inline __u32 identity_from_mark(__u32 mark)
{
	if ((mark & MARK_MAGIC_HOST_MASK) != MARK_MAGIC_IDENTITY)
		return 0;
	return ((mark & 0xff) << 16) | (mark >> 16);
}
