/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy lookup. Semantics as in Cilium: an endpoint selected by any ingress
 * (egress) rule is default-deny in that direction, so with the enforced flag
 * set only what cilium_policy allows passes; without it everything does.
 *
 * Lookup order, first hit wins (0 is the wildcard):
 *
 *   1. peer identity, protocol, port   exact L4 rule
 *   2. peer identity, protocol, any    port wildcard
 *   3. peer identity, any,      any    protocol wildcard (L3-only rule)
 *   4. any,           protocol, port   identity wildcard (L4-only rule)
 *   5. any,           protocol, any
 *   6. any,           any,      any    allow-all
 *
 * Because the first hit wins, the compiler (lab/policy/compile.ts) copies an
 * auth requirement of a broader entry into the narrower entries it covers,
 * as Cilium derives auth types; otherwise a port rule could bypass an
 * L3 rule's "authentication: required".
 */
#pragma once

#include "maps.h"
#include "packet.h"

static __always_inline struct policy_entry *
policy_lookup(__u32 ifindex, __u32 peer, __u16 dport, __u8 protocol, __u8 dir)
{
	struct policy_key key = {
		.ep_ifindex = ifindex,
		.direction = dir,
	};
	/* {identity, protocol, port} of the six lookups, in order. */
	const __u32 ids[6] = { peer, peer, peer, 0, 0, 0 };
	const __u8 protos[6] = { protocol, protocol, 0, protocol, protocol, 0 };
	const __u16 ports[6] = { dport, 0, 0, dport, 0, 0 };
	struct policy_entry *entry;

#pragma unroll
	for (int i = 0; i < 6; i++) {
		key.sec_label = ids[i];
		key.protocol = protos[i];
		key.dport = ports[i];
		entry = bpf_map_lookup_elem(&cilium_policy, &key);
		if (entry)
			return entry;
	}
	return NULL;
}

static __always_inline __u8 enforced_flag(__u8 dir)
{
	return dir == DIR_EGRESS ? EP_F_EGRESS_ENFORCED : EP_F_INGRESS_ENFORCED;
}

/* CTX_ACT_OK with *auth_type set (0 = no auth needed), or a drop reason. */
static __always_inline int policy_can_access(const struct endpoint_info *ep, __u32 ifindex, __u32 peer,
					     const struct pkt4 *p, __u8 dir, __u32 len, __u8 *auth_type)
{
	struct policy_entry *entry;

	*auth_type = AUTH_TYPE_DISABLED;
	if (!(ep->flags & enforced_flag(dir)))
		return CTX_ACT_OK;

	entry = policy_lookup(ifindex, peer, p->dport, p->protocol, dir);
	if (!entry)
		return DROP_POLICY;
	__sync_fetch_and_add(&entry->packets, 1);
	__sync_fetch_and_add(&entry->bytes, len);
	if (entry->flags & POLICY_F_DENY)
		return DROP_POLICY_DENY;
	*auth_type = entry->auth_type & ~AUTH_TYPE_EXPLICIT;
	return CTX_ACT_OK;
}
