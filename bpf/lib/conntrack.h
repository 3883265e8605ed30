/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking, so that policy is decided when a connection is set
 * up and replies pass without an allow rule of their own.
 *
 * One table per node (cilium_ct4). A key is the tuple as the packet carries
 * it plus a scope: cil_from_container makes DIR_EGRESS entries for
 * connections the pod opens, cil_to_container DIR_INGRESS entries for
 * connections opened towards it. For a packet seen in direction D:
 *
 *   forward tuple, scope D          found -> CT_ESTABLISHED
 *   reversed tuple, the other scope found -> CT_REPLY
 *   neither                               -> CT_NEW
 *
 * Two pods on one node make both entries of a connection in the same table
 * (the client's egress, the server's ingress), which is what lets each side
 * recognise the other's replies.
 */
#pragma once

#include "maps.h"
#include "packet.h"

static __always_inline __u8 other_dir(__u8 dir)
{
	return dir == DIR_EGRESS ? DIR_INGRESS : DIR_EGRESS;
}

static __always_inline void ct_key4(struct ct4_key *key, const struct pkt4 *p, __u8 scope, bool reverse)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->saddr = reverse ? p->daddr : p->saddr;
	key->daddr = reverse ? p->saddr : p->daddr;
	key->sport = reverse ? p->dport : p->sport;
	key->dport = reverse ? p->sport : p->dport;
	key->protocol = p->protocol;
	key->scope = scope;
}

/* Cilium's timeouts: a TCP connection lives 6 h once its handshake is done,
 * 60 s before that, 10 s after FIN/RST; anything else 60 s. */
static __always_inline __u64 ct_lifetime_ns(__u8 protocol, __u8 seen_flags)
{
	if (protocol != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP_S * NSEC_PER_SEC;
	if (seen_flags & (TCP_F_FIN | TCP_F_RST))
		return CT_CLOSE_TIMEOUT_S * NSEC_PER_SEC;
	if (!(seen_flags & TCP_F_ACK))
		return CT_SYN_TIMEOUT_S * NSEC_PER_SEC;
	return CT_LIFETIME_TCP_S * NSEC_PER_SEC;
}

/* An expired entry may linger in the LRU table: treat it as absent. */
static __always_inline struct ct_entry *ct_lookup_live(const struct ct4_key *key, __u64 now)
{
	struct ct_entry *entry = bpf_map_lookup_elem(&cilium_ct4, key);

	return entry && entry->expires > now ? entry : NULL;
}

static __always_inline int ct_lookup4(const struct pkt4 *p, __u8 dir, __u64 now, struct ct_entry **entry)
{
	struct ct4_key key;

	ct_key4(&key, p, dir, false);
	*entry = ct_lookup_live(&key, now);
	if (*entry)
		return CT_ESTABLISHED;
	ct_key4(&key, p, other_dir(dir), true);
	*entry = ct_lookup_live(&key, now);
	if (*entry)
		return CT_REPLY;
	return CT_NEW;
}

/*
 * Every packet of a connection extends its life. An entry is read by the
 * CPUs of both directions, so each write moves its cache line between
 * them: by default an entry is only rewritten when its TCP flags change or
 * its deadline would move by CT_REFRESH_MIN_NS (Cilium keeps lifetimes in
 * whole seconds), and packets are not counted. RUNTIME_CONFIG_CT_ACCOUNTING
 * counts every packet and refreshes on each, as Cilium built with
 * CONNTRACK_ACCOUNTING does. Plain (racy) writes of flags and deadline are
 * fine: two CPUs refreshing at once write nearly the same values.
 */
static __always_inline void ct_refresh(struct ct_entry *entry, const struct pkt4 *p, __u32 len, __u64 now)
{
	__u8 seen = entry->tcp_flags | p->tcp_flags;
	__u64 expires = now + ct_lifetime_ns(p->protocol, seen);

	if (runtime_config(RUNTIME_CONFIG_CT_ACCOUNTING)) {
		__sync_fetch_and_add(&entry->packets, 1);
		__sync_fetch_and_add(&entry->bytes, len);
	} else if (seen == entry->tcp_flags && expires - entry->expires < CT_REFRESH_MIN_NS) {
		return;
	}
	entry->tcp_flags = seen;
	entry->expires = expires;
}

static __always_inline int ct_create4(const struct pkt4 *p, __u8 dir, __u32 len, __u64 now,
				      __u32 peer_identity, __u16 remote_node_id, __u8 auth_type)
{
	struct ct4_key key;
	struct ct_entry entry = {
		.expires = now + ct_lifetime_ns(p->protocol, p->tcp_flags),
		.created = now,
		.packets = 1,
		.bytes = len,
		.peer_identity = peer_identity,
		.remote_node_id = remote_node_id,
		.tcp_flags = p->tcp_flags,
		.auth_type = auth_type,
	};

	ct_key4(&key, p, dir, false);
	if (bpf_map_update_elem(&cilium_ct4, &key, &entry, BPF_ANY) < 0)
		return DROP_CT_CREATE_FAILED;
	return 0;
}
