/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Tunnel mode (bpf/overlay.c): the VXLAN constants, the two datapath maps
 * the overlay programs read, and the identity <-> skb->mark encoding.
 *
 * Why the maps are declared again instead of including maps.h: libbpf
 * creates every map an object declares. overlay.o is loaded next to a
 * node's datapath.o with
 *   bpftool prog loadall overlay.o <node>/overlay/progs type classifier \
 *     map name cilium_ipcache pinned <node>/maps/cilium_ipcache \
 *     map name cilium_lxc pinned <node>/maps/cilium_lxc
 * so it must declare exactly the maps it reuses, each with the type, sizes
 * and flags of maps.h (libbpf refuses an incompatible pinned map).
 */
#pragma once

#include "common.h"

/* Cilium's VXLAN port (not IANA's 4789). */
#define OVERLAY_VXLAN_PORT	8472
/* The VNI is 24 bits: cluster identities fit, node-local ones (1<<24) do not. */
#define OVERLAY_VNI_MASK	0xffffff
/* Outer TTL of encapsulated packets (Cilium: IPDEFTTL). */
#define OVERLAY_TUNNEL_TTL	64

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, CILIUM_IPCACHE_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, CILIUM_LXC_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_lxc SEC(".maps");

/* Same lookup as identity.h's ipcache_lookup4 (which pulls in every map). */
static __always_inline const struct remote_endpoint_info *overlay_ipcache_lookup4(__be32 addr)
{
	struct ipcache_key key;

	__builtin_memset(&key, 0, sizeof(key));	/* not from .rodata: no extra map */
	key.prefixlen = IPCACHE_PREFIX_BITS_BEFORE_IP + 32;
	key.family = ENDPOINT_KEY_IPV4;
	__builtin_memcpy(key.ip, &addr, sizeof(addr));
	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

/*
 * The encoding identity_from_mark() (identity.h) decodes, Cilium's
 * set_identity_mark():
 *
 *   bits 31..16  identity bits 15..0
 *   bits 11..8   MARK_MAGIC_IDENTITY (0xF)
 *   bits  7..0   identity bits 23..16
 */
static __always_inline __u32 identity_to_mark(__u32 identity)
{
	return ((identity & 0xffff) << 16) | MARK_MAGIC_IDENTITY | ((identity >> 16) & 0xff);
}
