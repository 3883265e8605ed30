/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Same-node socket acceleration (Cilium <= 1.13 "sockmap", merbridge): the
 * structs bpf/sockmap.c shares with user space, its counters and its maps.
 * User space mirrors these layouts in lab/sockmap/layout.ts; the kernel test
 * tests/kernel/sockmap-load.test.ts fails when the two drift (it reads the
 * sizes back from the object's BTF).
 *
 * Like the tc datapath, the object has no `pinning` attribute: the loader runs
 *   bpftool prog loadall sockmap.o <node>/sockmap/progs pinmaps <node>/sockmap/maps
 * once per node, so every node has its own sockhash.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/*
 * Sockhash key: one established socket, as it sees itself.
 *
 *    0               8       12      16  18  20 21  24
 *   +---------------+-------+-------+---+---+--+---+
 *   | netns_cookie  | sip4  | dip4  |sp |dp |f |pad|
 *   +---------------+-------+-------+---+---+--+---+
 *     u64 (host)     be32    be32   be16 be16 u8
 *
 * sip4/sport are the socket's own address and port, dip4/dport its peer's.
 * Each socket is stored under its own tuple and its own namespace's cookie.
 * The sender finds its peer by reversing its tuple (the peer's sip is the
 * sender's dip) and taking the peer's cookie from sockmap_pods (learned from
 * the peer's own sock_ops run). Cilium stores the reversed tuple instead and
 * has no cookie; it needs none as long as pod IPs are unique, but 4-tuples
 * do repeat across namespaces (two pods each talking to 127.0.0.1:x, or two
 * labs reusing 10.244.0.0/16), and the cookie keeps such sockets apart.
 */
struct sock_key {
	__u64 netns_cookie;
	__be32 sip4;
	__be32 dip4;
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 pad[3];
};

/* SOCK_KEY_FAMILY_IPV4 is Cilium's ENDPOINT_KEY_IPV4. */
#define SOCK_KEY_FAMILY_IPV4	1

/*
 * sockmap_pods value: one pod of this node, keyed by its IPv4 address (be32).
 * User space writes the entry with netns_cookie 0 ("not learned yet"); the
 * first socket the pod establishes fills in its namespace's cookie.
 */
struct sockmap_pod {
	__u64 netns_cookie;
};

/* sockmap_metrics slots (a per-CPU array of struct sockmap_metric). */
enum {
	/* sk_msg: handed to the peer socket's receive queue (the stack is skipped). */
	SOCKMAP_MSG_REDIRECTED = 0,
	/* sk_msg: no peer socket in the hash; sent through TCP/IP as usual. */
	SOCKMAP_MSG_PASSED = 1,
	/* sock_ops: an established socket between two local pods, added. */
	SOCKMAP_SOCK_ADDED = 2,
	/* sock_ops: an established socket whose peer is not a local pod. */
	SOCKMAP_SOCK_SKIPPED = 3,
	/* sock_ops: bpf_sock_hash_update refused (e.g. map full). */
	SOCKMAP_SOCK_ADD_FAILED = 4,
	/* sock_ops: the socket claims a pod IP learned in another namespace. */
	SOCKMAP_SOCK_NETNS_MISMATCH = 5,
	SOCKMAP_METRICS_MAX,
};

/* Messages (or sockets) and bytes. bytes is 0 for the socket slots. */
struct sockmap_metric {
	__u64 count;
	__u64 bytes;
};

#define SOCKMAP_SOCKHASH_MAX_ENTRIES	65535
#define SOCKMAP_PODS_MAX_ENTRIES	1024

/* Cilium's name for its sockhash. The value is declared __u64: a lookup
 * from user space returns the socket's cookie, which only an 8-byte value
 * can hold (tried with __u32: redirects work, but every value of
 * `bpftool map dump` reads "No space left on device", "Found 0 elements"). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__type(key, struct sock_key);
	__type(value, __u64);
	__uint(max_entries, SOCKMAP_SOCKHASH_MAX_ENTRIES);
} cilium_sock_ops SEC(".maps");

/* This node's pods: "is the peer local?" and its namespace's cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct sockmap_pod);
	__uint(max_entries, SOCKMAP_PODS_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sockmap_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sockmap_metric);
	__uint(max_entries, SOCKMAP_METRICS_MAX);
} sockmap_metrics SEC(".maps");

static __always_inline void sockmap_count(__u32 slot, __u64 bytes)
{
	struct sockmap_metric *m = bpf_map_lookup_elem(&sockmap_metrics, &slot);

	if (m) {
		m->count++;
		m->bytes += bytes;
	}
}
