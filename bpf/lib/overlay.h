/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Tunnel mode (bpf/overlay.c): the tunnel TTL and the identity <->
 * skb->mark encoding. The maps come from maps.h: overlay.o is loaded next to
 * a node's datapath.o reusing every one of its pinned maps
 * (loadSharingMaps in lab/datapath/load.ts), as strict.o is.
 */
#pragma once

#include "common.h"
#include "maps.h"
#include "identity.h"

/* The wire's numbers (VXLAN_PORT, VXLAN_VNI_MASK) come from generated.h. */
/* Outer TTL of encapsulated packets (Cilium: IPDEFTTL). */
#define OVERLAY_TUNNEL_TTL	64

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
