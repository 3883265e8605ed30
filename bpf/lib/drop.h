/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the datapath reports: counters (cilium_metrics) and flow events
 * (cilium_events). Flow events go out for every drop and for the verdict on
 * each NEW connection, not for every forwarded packet, to keep the cost low
 * (Cilium's policy-verdict notifications follow the same rule).
 */
#pragma once

#include "maps.h"
#include "auth.h"

static __always_inline void update_metrics(__u32 len, __u8 dir, __u8 reason)
{
	struct metrics_key key = { .reason = reason, .dir = dir };
	struct metrics_value *value = bpf_map_lookup_elem(&cilium_metrics, &key);

	if (likely(value)) {
		/* Per-CPU value: no other CPU writes it. */
		value->packets += 1;
		value->bytes += len;
	} else {
		struct metrics_value first = { .packets = 1, .bytes = len };

		bpf_map_update_elem(&cilium_metrics, &key, &first, BPF_NOEXIST);
	}
}

static __always_inline void send_flow_event(struct __sk_buff *ctx, struct flow_event *ev)
{
	ev->timestamp = unix_time_ns();
	bpf_perf_event_output(ctx, &cilium_events, BPF_F_CURRENT_CPU, ev, sizeof(*ev));
}

/* The one drop exit of each program: count, report, drop. */
static __always_inline int send_drop_notify(struct __sk_buff *ctx, struct flow_event *ev, int reason, __u8 dir)
{
	ev->verdict = VERDICT_DROPPED;
	ev->drop_reason = (__u8)-reason;
	send_flow_event(ctx, ev);
	update_metrics(ctx->len, dir, (__u8)-reason);
	return CTX_ACT_DROP;
}

/* A NEW connection was allowed. */
static __always_inline void send_policy_verdict_notify(struct __sk_buff *ctx, struct flow_event *ev)
{
	ev->verdict = VERDICT_FORWARDED;
	ev->drop_reason = 0;
	send_flow_event(ctx, ev);
}
