/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Mutual-auth enforcement: is this identity pair in cilium_auth_map, and
 * not expired? Cilium's bpf/lib/auth.h does the same lookup.
 */
#pragma once

#include "maps.h"
#include "signal.h"

/* Wall-clock time in Cilium's auth units (Unix-epoch ns >> 9). BPF only has
 * the monotonic clock, so the loader stores realtime - monotonic in
 * RUNTIME_CONFIG_UTIME_OFFSET (Cilium's "utime" does the same). */
static __always_inline __u64 unix_time_ns(void)
{
	return bpf_ktime_get_ns() + runtime_config(RUNTIME_CONFIG_UTIME_OFFSET);
}

static __always_inline __u64 utime_now(void)
{
	return unix_time_ns() >> AUTH_EXPIRATION_SHIFT;
}

/*
 * CTX_ACT_OK if (local, remote, node, type) was authenticated and has not
 * expired; otherwise signal the agent and drop. The first packet of a flow
 * is lost this way; TCP recovers when it retransmits the SYN (~1 s later),
 * by which time the agent has written the entry.
 */
static __always_inline int auth_lookup(struct __sk_buff *ctx, __u32 local_id, __u32 remote_id,
				       __u16 remote_node_id, __u8 auth_type)
{
	struct auth_key key = {
		.local_sec_label = local_id,
		.remote_sec_label = remote_id,
		.remote_node_id = remote_node_id,
		.auth_type = auth_type,
	};
	struct auth_info *auth = bpf_map_lookup_elem(&cilium_auth_map, &key);

	if (auth && utime_now() < auth->expiration)
		return CTX_ACT_OK;

	send_signal_auth_required(ctx, &key);
	return DROP_POLICY_AUTH_REQUIRED;
}
