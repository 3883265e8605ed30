/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Same-node socket acceleration (Cilium <= 1.13 "sockmap", merbridge): what
 * bpf/sockmap.c shares with user space (struct sock_key, sockmap_pod,
 * sockmap_metric, the metric slots, the three maps) is generated into
 * generated_sockmap.h from the table in lab/abi/layouts.ts, the same table
 * lab/abi/generated.ts comes from; tests/kernel/sockmap-load.test.ts also
 * compares the table with the object's BTF.
 *
 * Like the tc datapath, the object has no `pinning` attribute: the loader runs
 *   bpftool prog loadall sockmap.o <node>/sockmap/progs pinmaps <node>/sockmap/maps
 * once per node, so every node has its own sockhash.
 *
 * Sockhash keys (struct sock_key): each socket is stored under its own tuple
 * (sip4/sport its own address and port, dip4/dport its peer's) and its own
 * namespace's cookie. The sender finds its peer by reversing its tuple (the
 * peer's sip is the sender's dip) and taking the peer's cookie from
 * sockmap_pods (learned from the peer's own sock_ops run). Cilium stores the
 * reversed tuple instead and has no cookie; it needs none as long as pod IPs
 * are unique, but 4-tuples do repeat across namespaces (two pods each
 * talking to 127.0.0.1:x, or two labs reusing 10.244.0.0/16), and the cookie
 * keeps such sockets apart.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "generated_sockmap.h"

static __always_inline void sockmap_count(__u32 slot, __u64 bytes)
{
	struct sockmap_metric *m = bpf_map_lookup_elem(&sockmap_metrics, &slot);

	if (m) {
		m->count++;
		m->bytes += bytes;
	}
}
