/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Parsing: the few header fields policy and conntrack need. */
#pragma once

#include <linux/ip.h>
#include "common.h"

/* What the datapath knows about an IPv4 packet. Ports are in host byte
 * order; for ICMP echo the identifier stands in for a port (request:
 * sport, reply: dport) so a reply's reversed tuple finds the request's
 * conntrack entry. */
struct pkt4 {
	__be32 saddr;
	__be32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 protocol;
	__u8 tcp_flags;
};

#define IP_OFFSET_MASK	0x1fff	/* fragment offset bits of frag_off */
#define ICMP_ECHOREPLY	0
#define ICMP_ECHO	8

/* The EtherType, host byte order; 0 if the frame is too short. */
static __always_inline __u16 eth_protocol(struct __sk_buff *ctx)
{
	__be16 proto;

	if (bpf_skb_load_bytes(ctx, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0)
		return 0;
	return bpf_ntohs(proto);
}

/*
 * Fills *p from the IPv4 header after the Ethernet header. bpf_skb_load_bytes
 * (rather than direct packet access) keeps the variable-length IP header
 * simple for the verifier.
 */
static __always_inline int parse_ipv4(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct iphdr ip;
	__u32 l4;

	if (bpf_skb_load_bytes(ctx, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return DROP_INVALID;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_INVALID;

	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->protocol = ip.protocol;

	/* A later fragment has no L4 header: it is tracked with ports 0. */
	if (bpf_ntohs(ip.frag_off) & IP_OFFSET_MASK)
		return 0;

	l4 = ETH_HLEN + ip.ihl * 4;
	switch (ip.protocol) {
	case IPPROTO_TCP: {
		/* 0: sport, 2: dport, 13: flags (CWR ECE URG ACK PSH RST SYN FIN) */
		__u8 hdr[14];

		if (bpf_skb_load_bytes(ctx, l4, hdr, sizeof(hdr)) < 0)
			return DROP_INVALID;
		p->sport = (hdr[0] << 8) | hdr[1];
		p->dport = (hdr[2] << 8) | hdr[3];
		p->tcp_flags = hdr[13] & 0x3f;
		break;
	}
	case IPPROTO_UDP: {
		__u8 hdr[4];

		if (bpf_skb_load_bytes(ctx, l4, hdr, sizeof(hdr)) < 0)
			return DROP_INVALID;
		p->sport = (hdr[0] << 8) | hdr[1];
		p->dport = (hdr[2] << 8) | hdr[3];
		break;
	}
	case IPPROTO_ICMP: {
		/* 0: type, 1: code, 2: checksum, 4: identifier */
		__u8 hdr[6];

		if (bpf_skb_load_bytes(ctx, l4, hdr, sizeof(hdr)) < 0)
			return DROP_INVALID;
		if (hdr[0] == ICMP_ECHO)
			p->sport = (hdr[4] << 8) | hdr[5];
		else if (hdr[0] == ICMP_ECHOREPLY)
			p->dport = (hdr[4] << 8) | hdr[5];
		break;
	}
	default:
		break;
	}
	return 0;
}
