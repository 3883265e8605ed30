/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Signals to the node agent over cilium_signals (a perf array). */
#pragma once

#include "maps.h"

/* Tells the agent which identity pair to authenticate. Not rate limited:
 * the agent de-duplicates and backs off (1 s per key), as Cilium's does. */
static __always_inline void send_signal_auth_required(struct __sk_buff *ctx, const struct auth_key *key)
{
	struct signal_msg msg = {
		.signal_nr = SIGNAL_AUTH_REQUIRED,
		.auth = *key,
	};

	bpf_perf_event_output(ctx, &cilium_signals, BPF_F_CURRENT_CPU, &msg, sizeof(msg));
}
