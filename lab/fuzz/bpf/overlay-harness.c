// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF_PROG_RUN harness for fuzzing bpf/overlay.c (lab/fuzz/overlay.ts),
 * built at run time against bpf/ with the datapath's maps reused:
 *
 *   from_overlay_with_vni  gives the skb a tunnel key whose VNI is
 *                          skb->priority, sent by the node whose IPv4
 *                          address (host order) is skb->cb[0], as a
 *                          collect-metadata VXLAN device does on receive,
 *                          then tail-calls the node's real cil_from_overlay
 *                          (slot 0 of harness_progs).
 *                          BPF_PROG_RUN cannot pass tunnel metadata in.
 *   to_overlay_key         runs overlay.c's cil_to_overlay (this object's
 *                          copy of the same source, as a function) and then
 *                          reads back the tunnel key it set: skb->mark = VNI,
 *                          skb->priority = remote IPv4 (host order),
 *                          cb[0] = TTL, for ctx_out. BPF_PROG_RUN's ctx_out
 *                          has no tunnel fields, so this is the only way to
 *                          see the key without traffic.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/packet.h"
#include "lib/identity.h"
#include "lib/overlay.h"
#include "lib/drop.h"

/* overlay.c's programs become plain functions of this object (its license
 * string a plain variable). */
#undef SEC
#define SEC(name) __attribute__((unused))
#define _license overlay_c_license
#include "overlay.c"
#undef _license
#undef SEC
#define SEC(name) __attribute__((section(name), used))

/* Return codes no tc verdict uses: the harness itself failed. */
#define HARNESS_SET_KEY_FAILED	0x7e01
#define HARNESS_NO_TAIL_CALL	0x7e02
#define HARNESS_GET_KEY_FAILED	0x7e03

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1);
} harness_progs SEC(".maps");

SEC("tc")
int from_overlay_with_vni(struct __sk_buff *ctx)
{
	struct bpf_tunnel_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.tunnel_id = ctx->priority;
	/* A received key's remote is the packet's outer source: what
	 * set_tunnel_key takes as the local address. */
	key.local_ipv4 = ctx->cb[0];
	key.remote_ipv4 = 0xac1e000a;
	key.tunnel_ttl = OVERLAY_TUNNEL_TTL;
	if (bpf_skb_set_tunnel_key(ctx, &key, sizeof(key), 0) < 0)
		return HARNESS_SET_KEY_FAILED;
	bpf_tail_call(ctx, &harness_progs, 0);
	return HARNESS_NO_TAIL_CALL;
}

SEC("tc")
int to_overlay_key(struct __sk_buff *ctx)
{
	struct bpf_tunnel_key key;
	int ret = cil_to_overlay(ctx);

	if (ret != CTX_ACT_OK)
		return ret;
	__builtin_memset(&key, 0, sizeof(key));
	if (bpf_skb_get_tunnel_key(ctx, &key, sizeof(key), 0) < 0)
		return HARNESS_GET_KEY_FAILED;
	ctx->mark = key.tunnel_id;
	/* get_tunnel_key reads a received key: the destination that
	 * set_tunnel_key wrote comes back as the local address. */
	ctx->priority = key.local_ipv4;
	ctx->cb[0] = key.tunnel_ttl;
	return ret;
}

char _license[] SEC("license") = "Dual BSD/GPL";
