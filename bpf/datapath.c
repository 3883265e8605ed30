// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The lab's pod datapath: two tc direct-action programs, loaded once per node
 * and attached to every pod veth (lxc-...) of that node.
 *
 *            pod netns              |               node netns
 *   eth0 <===========================> lxc-<pod>
 *                                   |     tc ingress: cil_from_container
 *                                   |        (pod -> world, egress policy)
 *                                   |     tc egress:  cil_to_container
 *                                   |        (world -> pod, ingress policy)
 *
 * Per packet, both programs:
 *   1. find the endpoint by skb->ifindex (cilium_lxc) and parse IPv4;
 *   2. ask conntrack: replies pass; so do established connections with
 *      POLICY_MODE_CONNECTION, or in a direction the endpoint does not
 *      enforce (policy could neither deny them nor ask for auth);
 *   3. otherwise find the peer's identity and node in cilium_ipcache /
 *      cilium_node_map (only now: the fast path of step 2 needs neither);
 *   4. ask policy (cilium_policy); if the matching entry wants
 *      authentication, ask cilium_auth_map (miss/expired: signal + drop 189);
 *   5. create the conntrack entry of a NEW connection and report the verdict.
 * Every drop leaves through one exit, send_drop_notify(), as in Cilium.
 *
 * Why per-packet by default: Cilium evaluates policy (and auth) for every
 * packet that is not a reply (bpf_lxc.c handles CT_NEW and CT_ESTABLISHED
 * alike), so deleting or expiring an auth entry cuts established
 * connections at their next packet. POLICY_MODE_CONNECTION decides once
 * per connection instead.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/packet.h"
#include "lib/identity.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/auth.h"
#include "lib/drop.h"

/* What is known about the other end of the packet. */
struct peer {
	__u32 identity;
	/* Node hosting the peer; 0 if it is on this node. */
	__be32 node_ip;
	/* The peer's address is in the ipcache (see the ingress auth rule). */
	bool known;
};

/* What conntrack said about the packet (step 2). */
struct ct_state {
	__u64 now;
	struct ct_entry *entry;
	int status;
};

/*
 * Step 2, shared by both directions, before anything is looked up about the
 * peer: true when conntrack alone lets the packet pass (its entry
 * refreshed). Most packets end here, without the ipcache (an LPM trie) and
 * node map lookups. `dir` is the traffic direction seen from the endpoint:
 * DIR_EGRESS in cil_from_container, DIR_INGRESS in cil_to_container.
 */
static __always_inline bool ct_passes(struct __sk_buff *ctx, const struct endpoint_info *ep,
				      const struct pkt4 *p, __u8 dir, struct ct_state *ct,
				      struct flow_event *ev)
{
	ct->now = bpf_ktime_get_ns();
	ct->status = ct_lookup4(p, dir, ct->now, &ct->entry);
	ev->ct_status = ct->status;
	if (ct->status == CT_REPLY ||
	    (ct->status == CT_ESTABLISHED &&
	     (!(ep->flags & enforced_flag(dir)) ||
	      runtime_config(RUNTIME_CONFIG_POLICY_MODE) == POLICY_MODE_CONNECTION))) {
		if (ct->entry)
			ct_refresh(ct->entry, p, ctx->len, ct->now);
		return true;
	}
	return false;
}

/* Steps 4-5, once the peer is known (step 3). */
static __always_inline int enforce_policy(struct __sk_buff *ctx, const struct endpoint_info *ep,
					  const struct pkt4 *p, const struct peer *peer, __u8 dir,
					  const struct ct_state *cts, struct flow_event *ev)
{
	struct ct_entry *entry = cts->entry;
	__u64 now = cts->now;
	__u8 auth_type = 0;
	int ct = cts->status, ret;

	ret = policy_can_access(ep, ctx->ifindex, peer->identity, p, dir, ctx->len, &auth_type);
	ev->auth_type = auth_type;
	if (IS_ERR(ret))
		return ret;

	if (auth_type != AUTH_TYPE_DISABLED) {
		/* Like Cilium's ingress path: with no ipcache entry for the
		 * source there is no peer to authenticate, so no signal. */
		if (!peer->known)
			return DROP_POLICY_AUTH_REQUIRED;
		/* The peer's node must have an ID to key the auth entry. */
		if (peer->node_ip && !ev->remote_node_id)
			return DROP_NO_NODE_ID;
		ret = auth_lookup(ctx, ep->sec_identity, peer->identity, ev->remote_node_id, auth_type);
		if (IS_ERR(ret))
			return ret;
	}

	if (ct == CT_ESTABLISHED) {
		if (entry)
			ct_refresh(entry, p, ctx->len, now);
		return CTX_ACT_OK;
	}

	ret = ct_create4(p, dir, ctx->len, now, peer->identity, ev->remote_node_id, auth_type);
	if (IS_ERR(ret))
		return ret;
	send_policy_verdict_notify(ctx, ev);
	return CTX_ACT_OK;
}

static __always_inline void event_from_packet(struct flow_event *ev, const struct pkt4 *p)
{
	ev->saddr = p->saddr;
	ev->daddr = p->daddr;
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->protocol = p->protocol;
	ev->tcp_flags = p->tcp_flags;
}

/* Packets leaving the pod: the pod is the source, the peer the destination. */
static __always_inline int handle_from_container(struct __sk_buff *ctx, struct flow_event *ev)
{
	const struct remote_endpoint_info *info;
	const struct endpoint_info *ep;
	struct ct_state ct;
	struct pkt4 p = {};
	struct peer peer;
	__u16 proto;
	int ret;

	proto = eth_protocol(ctx);
	if (proto == ETH_P_ARP)
		return CTX_ACT_OK;	/* the kernel answers ARP; not subject to policy */

	ep = endpoint_lookup(ctx->ifindex);
	if (!ep)
		return DROP_NO_CONFIG;
	ev->src_identity = ep->sec_identity;
	if (proto != ETH_P_IP)
		return DROP_UNKNOWN_L3;

	ret = parse_ipv4(ctx, &p);
	if (IS_ERR(ret))
		return ret;
	event_from_packet(ev, &p);

	/* A pod may only send from its own address (anti-spoofing). */
	if (p.saddr != ep->ipv4)
		return DROP_INVALID_SIP;

	if (ct_passes(ctx, ep, &p, DIR_EGRESS, &ct, ev))
		return CTX_ACT_OK;

	info = ipcache_lookup4(p.daddr);
	peer.identity = info && info->sec_identity ? info->sec_identity : IDENTITY_WORLD;
	peer.node_ip = tunnel_endpoint4(info);
	peer.known = true;	/* unknown destinations are "world" */
	ev->dst_identity = peer.identity;
	ev->remote_node_id = node_id_lookup4(peer.node_ip);

	return enforce_policy(ctx, ep, &p, &peer, DIR_EGRESS, &ct, ev);
}

/* Packets entering the pod: the peer is the source, the pod the destination. */
static __always_inline int handle_to_container(struct __sk_buff *ctx, struct flow_event *ev)
{
	const struct remote_endpoint_info *info;
	const struct endpoint_info *ep;
	struct ct_state ct;
	struct pkt4 p = {};
	struct peer peer;
	__u32 mark_identity;
	__u16 proto;
	int ret;

	proto = eth_protocol(ctx);
	if (proto == ETH_P_ARP)
		return CTX_ACT_OK;

	ep = endpoint_lookup(ctx->ifindex);
	if (!ep)
		return DROP_NO_CONFIG;
	ev->dst_identity = ep->sec_identity;
	if (proto != ETH_P_IP)
		return DROP_UNKNOWN_L3;

	ret = parse_ipv4(ctx, &p);
	if (IS_ERR(ret))
		return ret;
	event_from_packet(ev, &p);

	if (ct_passes(ctx, ep, &p, DIR_INGRESS, &ct, ev))
		return CTX_ACT_OK;

	/*
	 * The source identity comes from this node's ipcache: in native routing
	 * nothing in the packet says who sent it, so a stale entry is believed
	 * (the identity-confusion window). A tunnel program may instead vouch
	 * for the identity in skb->mark (identity_from_mark()).
	 */
	info = ipcache_lookup4(p.saddr);
	mark_identity = identity_from_mark(ctx->mark);
	if (mark_identity)
		peer.identity = mark_identity;
	else
		peer.identity = info && info->sec_identity ? info->sec_identity : IDENTITY_WORLD;
	peer.node_ip = tunnel_endpoint4(info);
	peer.known = info != NULL;
	ev->src_identity = peer.identity;
	ev->remote_node_id = node_id_lookup4(peer.node_ip);

	return enforce_policy(ctx, ep, &p, &peer, DIR_INGRESS, &ct, ev);
}

SEC("tc")
int cil_from_container(struct __sk_buff *ctx)
{
	struct flow_event ev = {
		.obs_point = OBS_FROM_ENDPOINT,
		.ifindex = ctx->ifindex,
		.pkt_len = ctx->len,
	};
	int ret = handle_from_container(ctx, &ev);

	if (IS_ERR(ret))
		return send_drop_notify(ctx, &ev, ret, DIR_EGRESS);
	update_metrics(ctx->len, DIR_EGRESS, REASON_FORWARDED);
	return ret;
}

SEC("tc")
int cil_to_container(struct __sk_buff *ctx)
{
	struct flow_event ev = {
		.obs_point = OBS_TO_ENDPOINT,
		.ifindex = ctx->ifindex,
		.pkt_len = ctx->len,
	};
	int ret = handle_to_container(ctx, &ev);

	if (IS_ERR(ret))
		return send_drop_notify(ctx, &ev, ret, DIR_INGRESS);
	update_metrics(ctx->len, DIR_INGRESS, REASON_FORWARDED);
	return ret;
}

/* The kernel lets only GPL-compatible programs call bpf_perf_event_output
 * (a GPL-only helper); bpf/ is dual licensed for that reason. */
char _license[] SEC("license") = "Dual BSD/GPL";
