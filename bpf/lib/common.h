/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, return codes and small helpers every other header uses. */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "generated.h"

/* tc direct-action verdicts. Drop reasons (DROP_*) are negative, so
 * IS_ERR() tells a verdict from a reason, as in Cilium. */
#define CTX_ACT_OK	TC_ACT_OK
#define CTX_ACT_DROP	TC_ACT_SHOT
#define IS_ERR(x)	((x) < 0)

/* Metrics reason 0 counts forwarded packets (Cilium's REASON_FORWARDED). */
#define REASON_FORWARDED 0

#define NSEC_PER_SEC 1000000000ULL

#ifndef likely
#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#endif
