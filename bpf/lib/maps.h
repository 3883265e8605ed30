/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the datapath. Names are Cilium's; sizes and layouts come from
 * generated.h (table: lab/abi/layouts.ts).
 *
 * No map has a `pinning` attribute: the loader runs
 *   bpftool prog loadall datapath.o <progs dir> type classifier pinmaps <maps dir>
 * once per node, so each node gets its own set of maps, shared by the two
 * programs and by every pod veth of that node.
 */
#pragma once

#include "common.h"

/* IP prefix -> identity (+ the node that hosts it). LPM tries must be
 * created with BPF_F_NO_PREALLOC. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, CILIUM_IPCACHE_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_ipcache SEC(".maps");

/* Node IP -> node ID, the ID that goes into auth_key.remote_node_id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct node_key);
	__type(value, struct node_value);
	__uint(max_entries, CILIUM_NODE_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_node_map SEC(".maps");

/* lxc veth ifindex -> endpoint. Per-endpoint facts live here rather than in
 * compile-time constants (Cilium compiles one object per endpoint), so one
 * object per node serves all of its pods. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, CILIUM_LXC_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_lxc SEC(".maps");

/* (endpoint, peer identity, dport, protocol, direction) -> verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, CILIUM_POLICY_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_policy SEC(".maps");

/* Authenticated identity pairs, written by the node agent after its
 * handshake. Same type, size and flags as Cilium's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct auth_key);
	__type(value, struct auth_info);
	__uint(max_entries, CILIUM_AUTH_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_auth_map SEC(".maps");

/* IPv4 conntrack. LRU: a full table evicts old connections rather than
 * refusing new ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_key);
	__type(value, struct ct_entry);
	__uint(max_entries, CILIUM_CT4_MAX_ENTRIES);
} cilium_ct4 SEC(".maps");

/* Per-CPU counters, so no atomics are needed on the hot path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(max_entries, CILIUM_METRICS_MAX_ENTRIES);
} cilium_metrics SEC(".maps");

/* RUNTIME_CONFIG_* slots written by the loader (BPF has no wall clock). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, CILIUM_RUNTIME_CONFIG_MAX_ENTRIES);
} cilium_runtime_config SEC(".maps");

/* Perf arrays: libbpf sizes them to one slot per CPU. A record is lost
 * unless a reader has put its perf fd into the slot of the CPU that runs
 * the program (bpf/build/perf-reader does this for every CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} cilium_signals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} cilium_events SEC(".maps");

static __always_inline __u64 runtime_config(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&cilium_runtime_config, &slot);

	return value ? *value : 0;
}
