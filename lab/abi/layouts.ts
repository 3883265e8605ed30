// THE ONE SOURCE OF TRUTH for everything the BPF objects of bpf/ and the wire
// share with user space: struct layouts (map keys/values, perf records),
// numeric codes (drop reasons, signals, identities, verdicts, metric slots …),
// maps and program names of each object (datapath.c, overlay.c, strict.c,
// sockmap.c), and the wire's numbers (ports, IP protocols, the VNI mask).
// `scripts/gen-layouts.ts` turns this table into bpf/lib/generated.h,
// bpf/lib/generated_strict.h, bpf/lib/generated_sockmap.h and
// lab/abi/generated.ts; tests/unit/datapath-layouts.test.ts fails when those
// drift from it.
//
// Numbers that exist in Cilium keep Cilium's values (bpf/lib/common.h,
// pkg/monitor/api/drop.go, api/v1/flow/flow.proto) and are never renumbered.
// Layouts copy Cilium's where the lab reproduces Cilium's exact bytes
// (auth_key, auth_info, ipcache key/value, node map, signal_msg); the others
// are the lab's own and say so.
//
// Rules the generator enforces: every struct is naturally aligned with its
// padding written out as explicit `pad` fields (hash keys must have no
// uninitialised holes, or equal keys would hash differently), and the
// declared `size` must match the computed one.

// ---- struct layouts -----------------------------------------------------------

export type ScalarType = 'u8' | 'u16' | 'u32' | 'u64' | 's64';

export type FieldType =
  | ScalarType
  /** An IPv4 address as it is on the wire (C `__be32`); TS sees "10.0.0.1". */
  | 'ipv4'
  /** A 16-bit number in network byte order (C `__be16`, e.g. a port as a socket holds it); TS sees its value. */
  | 'be16'
  /** `__u8 name[n]`; TS sees a Buffer. */
  | { bytes: number }
  /** A struct defined earlier in STRUCTS. */
  | { struct: string }
  /** Explicit padding: always written as zeros, absent from the TS type. */
  | { pad: number };

export interface Field {
  /** snake_case, as in C; the TS name is its camelCase. */
  name: string;
  type: FieldType;
  doc?: string;
}

export interface StructLayout {
  /** C struct name (snake_case). */
  name: string;
  doc: string;
  /** Expected size in bytes; the generator fails if the fields disagree. */
  size: number;
  fields: Field[];
}

const pad = (name: string, bytes: number): Field => ({ name, type: { pad: bytes } });

export const STRUCTS: StructLayout[] = [
  {
    name: 'ipcache_key',
    doc: "Key of cilium_ipcache (LPM trie), Cilium's layout. prefixlen counts the bits that follow it: 32 for cluster_id/pad/family, then the IP prefix (a /32 IPv4 address has prefixlen 64). IPv4 addresses use the first 4 bytes of ip.",
    size: 24,
    fields: [
      { name: 'prefixlen', type: 'u32', doc: 'LPM prefix length in bits, counted from cluster_id' },
      { name: 'cluster_id', type: 'u16' },
      pad('pad', 1),
      { name: 'family', type: 'u8', doc: 'ENDPOINT_KEY_IPV4 / ENDPOINT_KEY_IPV6' },
      { name: 'ip', type: { bytes: 16 }, doc: 'network byte order; IPv4 in bytes 0..3' },
    ],
  },
  {
    name: 'remote_endpoint_info',
    doc: "Value of cilium_ipcache, Cilium's layout: the identity of an address and, for a pod on another node, that node's IP (the tunnel endpoint). A pod on this node has no tunnel endpoint.",
    size: 24,
    fields: [
      { name: 'sec_identity', type: 'u32' },
      { name: 'tunnel_endpoint', type: { bytes: 16 }, doc: 'node IP, network byte order; IPv4 in bytes 0..3' },
      pad('pad', 2),
      { name: 'key', type: 'u8', doc: 'IPsec key index (unused by the lab)' },
      { name: 'flags', type: 'u8', doc: 'IPCACHE_F_*' },
    ],
  },
  {
    name: 'node_key',
    doc: "Key of cilium_node_map, Cilium's layout: a node IP.",
    size: 20,
    fields: [
      pad('pad1', 2),
      pad('pad2', 1),
      { name: 'family', type: 'u8', doc: 'ENDPOINT_KEY_IPV4 / ENDPOINT_KEY_IPV6' },
      { name: 'ip', type: { bytes: 16 }, doc: 'network byte order; IPv4 in bytes 0..3' },
    ],
  },
  {
    name: 'node_value',
    doc: "Value of cilium_node_map, Cilium's layout: the node's ID as used in auth_key.remote_node_id (0 = this node).",
    size: 4,
    fields: [
      { name: 'id', type: 'u16' },
      { name: 'spi', type: 'u8', doc: 'IPsec SPI (unused by the lab)' },
      pad('pad', 1),
    ],
  },
  {
    name: 'endpoint_key',
    doc: "Key of cilium_lxc (the lab's layout): the ifindex of the node-side pod veth (lxc-…), which is skb->ifindex in both tc programs.",
    size: 4,
    fields: [{ name: 'ifindex', type: 'u32' }],
  },
  {
    name: 'endpoint_info',
    doc: "Value of cilium_lxc (the lab's layout): per-endpoint facts, so one loaded object serves every pod veth of its node.",
    size: 12,
    fields: [
      { name: 'sec_identity', type: 'u32' },
      { name: 'ipv4', type: 'ipv4', doc: 'the only source address the pod may use' },
      { name: 'flags', type: 'u8', doc: 'EP_F_*' },
      pad('pad', 3),
    ],
  },
  {
    name: 'policy_key',
    doc: "Key of cilium_policy (the lab's layout; Cilium keeps one policy map per endpoint, the lab one per node keyed by endpoint). 0 in sec_label, dport or protocol is a wildcard, looked up in the order documented in bpf/lib/policy.h.",
    size: 12,
    fields: [
      { name: 'ep_ifindex', type: 'u32', doc: 'the endpoint this entry belongs to' },
      { name: 'sec_label', type: 'u32', doc: 'peer identity, 0 = any' },
      { name: 'dport', type: 'u16', doc: 'host byte order, 0 = any' },
      { name: 'protocol', type: 'u8', doc: 'IPPROTO_*, 0 = any' },
      { name: 'direction', type: 'u8', doc: 'DIR_INGRESS / DIR_EGRESS' },
    ],
  },
  {
    name: 'policy_entry',
    doc: 'Value of cilium_policy: allow or deny, the auth type to require, and hit counters (like `cilium bpf policy get`).',
    size: 24,
    fields: [
      { name: 'flags', type: 'u8', doc: 'POLICY_F_*' },
      { name: 'auth_type', type: 'u8', doc: 'AUTH_TYPE_* | AUTH_TYPE_EXPLICIT (bit 7)' },
      pad('pad1', 2),
      pad('pad2', 4),
      { name: 'packets', type: 'u64' },
      { name: 'bytes', type: 'u64' },
    ],
  },
  {
    name: 'auth_key',
    doc: "Key of cilium_auth_map, Cilium's exact 12 bytes. remote_node_id 0 means the peer is on this node.",
    size: 12,
    fields: [
      { name: 'local_sec_label', type: 'u32' },
      { name: 'remote_sec_label', type: 'u32' },
      { name: 'remote_node_id', type: 'u16' },
      { name: 'auth_type', type: 'u8' },
      pad('pad', 1),
    ],
  },
  {
    name: 'auth_info',
    doc: "Value of cilium_auth_map, Cilium's layout: expiration in Unix-epoch nanoseconds >> 9 (units of 512 ns).",
    size: 8,
    fields: [{ name: 'expiration', type: 'u64' }],
  },
  {
    name: 'ct4_key',
    doc: "Key of cilium_ct4 (the lab's layout): a 5-tuple as the packet carries it, plus the scope (DIR_EGRESS entries are made by cil_from_container, DIR_INGRESS by cil_to_container). For ICMP echo the identifier stands in for a port.",
    size: 16,
    fields: [
      { name: 'saddr', type: 'ipv4' },
      { name: 'daddr', type: 'ipv4' },
      { name: 'sport', type: 'u16', doc: 'host byte order' },
      { name: 'dport', type: 'u16', doc: 'host byte order' },
      { name: 'protocol', type: 'u8' },
      { name: 'scope', type: 'u8', doc: 'DIR_INGRESS / DIR_EGRESS' },
      pad('pad', 2),
    ],
  },
  {
    name: 'ct_entry',
    doc: 'Value of cilium_ct4: lifetime (refreshed on use, at most once a second unless its flags change) and what the policy decided when the connection was set up.',
    size: 40,
    fields: [
      { name: 'expires', type: 'u64', doc: 'bpf_ktime_get_ns() deadline; past it the entry counts as absent' },
      { name: 'created', type: 'u64', doc: 'bpf_ktime_get_ns() at setup' },
      { name: 'packets', type: 'u64', doc: 'both directions; after the first, counted only with RUNTIME_CONFIG_CT_ACCOUNTING on' },
      { name: 'bytes', type: 'u64', doc: 'likewise' },
      { name: 'peer_identity', type: 'u32', doc: 'identity of the other end at setup' },
      { name: 'remote_node_id', type: 'u16', doc: 'node of the other end at setup (0 = this node)' },
      { name: 'tcp_flags', type: 'u8', doc: 'every TCP flag seen so far' },
      { name: 'auth_type', type: 'u8', doc: 'auth type the policy required at setup (0 = none)' },
    ],
  },
  {
    name: 'metrics_key',
    doc: "Key of cilium_metrics (Cilium's idea, the lab's layout): reason 0 counts forwarded packets, others are drop reasons.",
    size: 4,
    fields: [
      { name: 'reason', type: 'u8' },
      { name: 'dir', type: 'u8', doc: 'DIR_INGRESS / DIR_EGRESS' },
      pad('pad', 2),
    ],
  },
  {
    name: 'metrics_value',
    doc: 'Value of cilium_metrics (per CPU; user space sums the CPUs).',
    size: 16,
    fields: [
      { name: 'packets', type: 'u64' },
      { name: 'bytes', type: 'u64' },
    ],
  },
  {
    name: 'signal_msg',
    doc: "Record of cilium_signals, Cilium's layout (its union of proto/auth reduced to the auth member, the only one the lab sends).",
    size: 16,
    fields: [
      { name: 'signal_nr', type: 'u32', doc: 'SIGNAL_*' },
      { name: 'auth', type: { struct: 'auth_key' } },
    ],
  },
  {
    name: 'flow_event',
    doc: 'Record of cilium_events (the lab\'s layout, carrying what Hubble shows): one per drop, and one per allowed NEW connection.',
    size: 48,
    fields: [
      { name: 'timestamp', type: 'u64', doc: 'Unix-epoch ns (bpf_ktime_get_ns + the loader\'s clock offset)' },
      { name: 'src_identity', type: 'u32' },
      { name: 'dst_identity', type: 'u32' },
      { name: 'saddr', type: 'ipv4' },
      { name: 'daddr', type: 'ipv4' },
      { name: 'sport', type: 'u16', doc: 'host byte order' },
      { name: 'dport', type: 'u16', doc: 'host byte order' },
      { name: 'protocol', type: 'u8' },
      { name: 'tcp_flags', type: 'u8', doc: 'TCP_F_* of this packet' },
      { name: 'verdict', type: 'u8', doc: 'VERDICT_*' },
      { name: 'drop_reason', type: 'u8', doc: 'DROP_* as a positive number, 0 when forwarded' },
      { name: 'obs_point', type: 'u8', doc: 'OBS_* (Cilium trace point)' },
      { name: 'auth_type', type: 'u8', doc: 'auth type the policy asked for (0 = none)' },
      { name: 'remote_node_id', type: 'u16', doc: 'node of the peer (0 = this node)' },
      { name: 'ifindex', type: 'u32', doc: 'device of the program: an lxc veth (datapath.c), eth0 (strict.c), cilium_vxlan (overlay.c)' },
      { name: 'pkt_len', type: 'u32' },
      { name: 'ct_status', type: 'u8', doc: 'CT_*' },
      pad('pad', 3),
    ],
  },
];

// ---- numeric codes --------------------------------------------------------------

export interface Constant {
  /** C macro and TS const name. */
  name: string;
  value: number;
  /** Human text (Cilium's own words where Cilium has the code). */
  text?: string;
  doc?: string;
  /**
   * The kernel's headers define it already (e.g. linux/in.h's IPPROTO_TCP):
   * the generated C includes that header and asserts the value instead of
   * defining it again.
   */
  kernel?: string;
  /** Its name in a protobuf enum of Hubble's flow.proto (e.g. DropReason's AUTH_REQUIRED), as flow JSON spells it. */
  enumName?: string;
}

export interface ConstantGroup {
  /** TS name of the code → text table, if `text` is set on the constants. */
  name: string;
  doc: string;
  constants: Constant[];
  /** TS name of the code → enumName table, if `enumName` is set on the constants. */
  enumTable?: string;
}

export const DROP_REASONS: ConstantGroup = {
  name: 'DROP_REASON_TEXT',
  /** enumName: flow.proto's DropReason, as Hubble's flow JSON spells drop_reason_desc. */
  enumTable: 'DROP_REASON_DESC',
  doc: "Cilium's drop reasons (pkg/monitor/api/drop.go); never renumbered. In C they are negative, as in Cilium (helpers return them, the entry point turns -ret into the reason); events and metrics carry the positive number.",
  constants: [
    { name: 'DROP_INVALID_SIP', value: 132, enumName: 'INVALID_SOURCE_IP', text: 'Invalid source ip', doc: "the pod used an address that is not its own" },
    { name: 'DROP_POLICY', value: 133, enumName: 'POLICY_DENIED', text: 'Policy denied' },
    { name: 'DROP_INVALID', value: 134, enumName: 'INVALID_PACKET_DROPPED', text: 'Invalid packet' },
    { name: 'DROP_UNKNOWN_L3', value: 139, enumName: 'UNSUPPORTED_L3_PROTOCOL', text: 'Unsupported L3 protocol', doc: 'the lab is IPv4-only' },
    { name: 'DROP_WRITE_ERROR', value: 141, enumName: 'ERROR_WRITING_TO_PACKET', text: 'Error writing to packet', doc: 'overlay.c: bpf_skb_set_tunnel_key refused' },
    { name: 'DROP_NO_TUNNEL_KEY', value: 147, enumName: 'ERROR_RETRIEVING_TUNNEL_KEY', text: 'Error retrieving tunnel key', doc: 'overlay.c: a packet at cil_from_overlay without tunnel metadata' },
    { name: 'DROP_CT_CREATE_FAILED', value: 155, enumName: 'CT_MAP_INSERTION_FAILED', text: 'CT: Map insertion failed' },
    { name: 'DROP_NO_TUNNEL_ENDPOINT', value: 160, enumName: 'NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT', text: 'No tunnel/encapsulation endpoint (datapath BUG!)', doc: 'overlay.c: the destination has no tunnel endpoint in the ipcache' },
    { name: 'DROP_NO_CONFIG', value: 165, enumName: 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION', text: 'No configuration available to perform policy decision', doc: 'the lxc ifindex has no cilium_lxc entry' },
    { name: 'DROP_INVALID_IDENTITY', value: 171, enumName: 'INVALID_IDENTITY', text: 'Invalid identity', doc: 'overlay.c: a VNI that claims the host identity (a sending node presents its host as remote-node)' },
    { name: 'DROP_POLICY_DENY', value: 181, enumName: 'POLICY_DENY', text: 'Policy denied by denylist' },
    { name: 'DROP_POLICY_AUTH_REQUIRED', value: 189, enumName: 'AUTH_REQUIRED', text: 'Authentication required' },
    { name: 'DROP_UNENCRYPTED_TRAFFIC', value: 195, enumName: 'UNENCRYPTED_TRAFFIC', text: 'Traffic is unencrypted', doc: 'strict encryption mode (not produced by datapath.c)' },
    { name: 'DROP_NO_NODE_ID', value: 197, enumName: 'NO_NODE_ID', text: 'No node ID found' },
  ],
};

export const CONSTANT_GROUPS: ConstantGroup[] = [
  DROP_REASONS,
  {
    name: 'SIGNAL_TEXT',
    doc: "Signal numbers of cilium_signals (Cilium's bpf/lib/signal.h).",
    constants: [
      { name: 'SIGNAL_NAT_FILL_UP', value: 0, text: 'nat fill up' },
      { name: 'SIGNAL_CT_FILL_UP', value: 1, text: 'ct fill up' },
      { name: 'SIGNAL_AUTH_REQUIRED', value: 2, text: 'auth required' },
    ],
  },
  {
    name: 'AUTH_TYPE_TEXT',
    doc: "Auth types (Cilium's pkg/policy/types AuthType).",
    constants: [
      { name: 'AUTH_TYPE_DISABLED', value: 0, text: 'disabled' },
      { name: 'AUTH_TYPE_SPIRE', value: 1, text: 'spire' },
      { name: 'AUTH_TYPE_ALWAYS_FAIL', value: 2, text: 'test-always-fail' },
    ],
  },
  {
    name: 'RESERVED_IDENTITY_TEXT',
    doc: "Cilium's reserved identities (1-255); cluster identities start at IDENTITY_MIN_CLUSTER.",
    constants: [
      { name: 'IDENTITY_HOST', value: 1, text: 'reserved:host' },
      { name: 'IDENTITY_WORLD', value: 2, text: 'reserved:world' },
      { name: 'IDENTITY_UNMANAGED', value: 3, text: 'reserved:unmanaged' },
      { name: 'IDENTITY_HEALTH', value: 4, text: 'reserved:health' },
      { name: 'IDENTITY_INIT', value: 5, text: 'reserved:init' },
      { name: 'IDENTITY_REMOTE_NODE', value: 6, text: 'reserved:remote-node' },
    ],
  },
  {
    name: 'VERDICT_TEXT',
    doc: "Flow verdicts (Hubble's flow.Verdict).",
    constants: [
      { name: 'VERDICT_FORWARDED', value: 1, text: 'FORWARDED' },
      { name: 'VERDICT_DROPPED', value: 2, text: 'DROPPED' },
    ],
  },
  {
    name: 'OBS_POINT_TEXT',
    doc: "Observation points (Cilium's TRACE_* values of bpf/lib/trace.h, Hubble's names).",
    constants: [
      { name: 'OBS_TO_ENDPOINT', value: 0, text: 'to-endpoint', doc: 'cil_to_container: entering the pod' },
      { name: 'OBS_TO_OVERLAY', value: 4, text: 'to-overlay', doc: 'cil_to_overlay: entering the tunnel (TRACE_TO_OVERLAY)' },
      { name: 'OBS_FROM_ENDPOINT', value: 5, text: 'from-endpoint', doc: 'cil_from_container: leaving the pod' },
      { name: 'OBS_FROM_OVERLAY', value: 9, text: 'from-overlay', doc: 'cil_from_overlay: leaving the tunnel (TRACE_FROM_OVERLAY)' },
    ],
  },
  {
    name: 'CT_STATUS_TEXT',
    doc: "Conntrack lookup results (Cilium's enum ct_status).",
    constants: [
      { name: 'CT_NEW', value: 0, text: 'new' },
      { name: 'CT_ESTABLISHED', value: 1, text: 'established' },
      { name: 'CT_REPLY', value: 2, text: 'reply' },
    ],
  },
  {
    name: 'DIRECTION_TEXT',
    doc: "Traffic direction seen from the endpoint (Cilium's METRIC_INGRESS/METRIC_EGRESS values), used in policy keys, CT scopes and metrics.",
    constants: [
      { name: 'DIR_INGRESS', value: 1, text: 'ingress', doc: 'into the pod (cil_to_container)' },
      { name: 'DIR_EGRESS', value: 2, text: 'egress', doc: 'out of the pod (cil_from_container)' },
    ],
  },
  {
    name: 'POLICY_MODE_TEXT',
    doc: 'When policy (and auth) is evaluated; runtime config slot RUNTIME_CONFIG_POLICY_MODE.',
    constants: [
      { name: 'POLICY_MODE_PER_PACKET', value: 0, text: 'per-packet', doc: "Cilium's behaviour: every non-reply packet, established or not" },
      { name: 'POLICY_MODE_CONNECTION', value: 1, text: 'connection', doc: 'only at connection setup; established connections pass' },
    ],
  },
  {
    name: 'FLAGS',
    doc: 'Bit flags.',
    constants: [
      { name: 'IPCACHE_F_SKIP_TUNNEL', value: 1 << 0 },
      { name: 'IPCACHE_F_HAS_TUNNEL_EP', value: 1 << 1 },
      { name: 'IPCACHE_F_IPV6_TUNNEL_EP', value: 1 << 2 },
      { name: 'IPCACHE_F_REMOTE_CLUSTER', value: 1 << 3 },
      { name: 'EP_F_INGRESS_ENFORCED', value: 1 << 0, doc: 'selected by an ingress rule: default deny on ingress' },
      { name: 'EP_F_EGRESS_ENFORCED', value: 1 << 1, doc: 'selected by an egress rule: default deny on egress' },
      { name: 'POLICY_F_DENY', value: 1 << 0 },
      { name: 'AUTH_TYPE_EXPLICIT', value: 1 << 7, doc: 'policy_entry.auth_type: set by the rule itself, not derived' },
      { name: 'TCP_F_FIN', value: 0x01 },
      { name: 'TCP_F_SYN', value: 0x02 },
      { name: 'TCP_F_RST', value: 0x04 },
      { name: 'TCP_F_PSH', value: 0x08 },
      { name: 'TCP_F_ACK', value: 0x10 },
      { name: 'TCP_F_URG', value: 0x20 },
    ],
  },
  {
    name: 'MISC',
    doc: 'Other shared numbers.',
    constants: [
      { name: 'IDENTITY_MIN_CLUSTER', value: 256, doc: 'first identity allocated from labels' },
      { name: 'IDENTITY_LOCAL_FLAG', value: 1 << 24, doc: 'node-local (CIDR) identities' },
      { name: 'ENDPOINT_KEY_IPV4', value: 1 },
      { name: 'ENDPOINT_KEY_IPV6', value: 2 },
      { name: 'IPCACHE_PREFIX_BITS_BEFORE_IP', value: 32, doc: 'ipcache_key.prefixlen = this + the IP prefix length' },
      { name: 'AUTH_EXPIRATION_SHIFT', value: 9, doc: 'auth_info.expiration = Unix ns >> 9' },
      { name: 'RUNTIME_CONFIG_UTIME_OFFSET', value: 0, doc: 'cilium_runtime_config slot: realtime - monotonic, ns (signed)' },
      { name: 'RUNTIME_CONFIG_POLICY_MODE', value: 1, doc: 'cilium_runtime_config slot: POLICY_MODE_*' },
      { name: 'RUNTIME_CONFIG_CT_ACCOUNTING', value: 2, doc: 'cilium_runtime_config slot: 1 = count every packet in its CT entry (Cilium: CONNTRACK_ACCOUNTING)' },
      { name: 'RUNTIME_CONFIG_SLOTS', value: 4 },
      { name: 'CT_LIFETIME_TCP_S', value: 21600, doc: "Cilium's CT_CONNECTION_LIFETIME_TCP" },
      { name: 'CT_LIFETIME_NONTCP_S', value: 60, doc: "Cilium's CT_CONNECTION_LIFETIME_NONTCP" },
      { name: 'CT_SYN_TIMEOUT_S', value: 60, doc: "Cilium's CT_SYN_TIMEOUT" },
      { name: 'CT_REFRESH_MIN_NS', value: 1_000_000_000, doc: 'without accounting, a CT entry is rewritten only when its flags change or its deadline moves this much (Cilium keeps lifetimes in whole seconds)' },
      { name: 'CT_CLOSE_TIMEOUT_S', value: 10, doc: "Cilium's CT_CLOSE_TIMEOUT" },
      { name: 'MARK_MAGIC_HOST_MASK', value: 0x0f00, doc: "skb->mark bits Cilium uses to say what the rest of the mark carries" },
      { name: 'MARK_MAGIC_IDENTITY', value: 0x0f00, doc: 'mark carries the source identity (set by a tunnel program; see bpf/lib/identity.h)' },
    ],
  },
];

// ---- numbers on the wire --------------------------------------------------------

/** Ports and protocol numbers user space and the BPF objects agree on with the wire (and with Cilium). */
export const WIRE_CONSTANTS: ConstantGroup[] = [
  {
    name: 'IPPROTO_TEXT',
    doc: 'IP protocol numbers (IANA), as in ct4_key.protocol, policy_key.protocol and flow_event.protocol.',
    constants: [
      { name: 'IPPROTO_ICMP', value: 1, text: 'ICMP', kernel: 'linux/in.h' },
      { name: 'IPPROTO_TCP', value: 6, text: 'TCP', kernel: 'linux/in.h' },
      { name: 'IPPROTO_UDP', value: 17, text: 'UDP', kernel: 'linux/in.h' },
    ],
  },
  {
    name: 'WIRE',
    doc: 'Ports and header fields of the lab\'s own traffic between nodes.',
    constants: [
      { name: 'AUTH_PORT', value: 4250, doc: "Cilium's mutual-auth port: the node agents' TLS 1.3 handshakes (TCP, between node IPs)" },
      { name: 'VXLAN_PORT', value: 8472, doc: "Cilium's VXLAN port (IANA's is 4789): tunnel mode, bpf/overlay.c" },
      { name: 'VXLAN_VNI_MASK', value: 0xffffff, doc: 'the VNI is 24 bits: cluster identities fit, node-local ones (IDENTITY_LOCAL_FLAG) do not' },
      { name: 'WG_PORT', value: 51871, doc: "Cilium's WireGuard port (UDP; Wireshark's default is 51820)" },
      { name: 'HBONE_PORT', value: 15008, doc: "ztunnel's inbound HBONE port (the per-connection mTLS mesh)" },
      { name: 'MESH_OUTBOUND_PORT_BASE', value: 15100, doc: "first node-local port of the mesh's outbound port map (one port per (source pod, destination))" },
      { name: 'CONTROL_PORT', value: 9443, doc: 'the control plane\'s agent API (HTTPS)' },
      { name: 'METRICS_PORT', value: 9962, doc: "Cilium's agent Prometheus port (prometheus.port): each node agent serves GET /metrics on its management address" },
    ],
  },
];

// ---- maps -------------------------------------------------------------------

export type MapType = 'hash' | 'lru_hash' | 'lpm_trie' | 'array' | 'percpu_hash' | 'percpu_array' | 'perf_event_array' | 'sockhash';

export interface MapLayout {
  /** Map name in the object, and its pin name. */
  name: string;
  type: MapType;
  /** Struct name from STRUCTS, or a scalar (u32, u64, ipv4). */
  key: string;
  value: string;
  /** 0 = one entry per CPU (perf arrays). */
  maxEntries: number;
  /** Map flags, by their C names. */
  flags: ('BPF_F_NO_PREALLOC')[];
  doc: string;
  /** Property name in the generated <OBJECT>_MAPS (role → map name); objects other than the datapath. */
  role?: string;
}

export const MAPS: MapLayout[] = [
  { name: 'cilium_ipcache', type: 'lpm_trie', key: 'ipcache_key', value: 'remote_endpoint_info', maxEntries: 512000, flags: ['BPF_F_NO_PREALLOC'], doc: 'IP prefix → identity (+ tunnel endpoint)' },
  { name: 'cilium_node_map', type: 'hash', key: 'node_key', value: 'node_value', maxEntries: 16384, flags: ['BPF_F_NO_PREALLOC'], doc: 'node IP → node ID' },
  { name: 'cilium_lxc', type: 'hash', key: 'endpoint_key', value: 'endpoint_info', maxEntries: 65535, flags: ['BPF_F_NO_PREALLOC'], doc: 'lxc ifindex → endpoint' },
  { name: 'cilium_policy', type: 'hash', key: 'policy_key', value: 'policy_entry', maxEntries: 65536, flags: ['BPF_F_NO_PREALLOC'], doc: '(endpoint, peer, port, proto, direction) → verdict' },
  { name: 'cilium_auth_map', type: 'hash', key: 'auth_key', value: 'auth_info', maxEntries: 512000, flags: ['BPF_F_NO_PREALLOC'], doc: 'authenticated (local id, remote id, node, type) → expiration' },
  { name: 'cilium_ct4', type: 'lru_hash', key: 'ct4_key', value: 'ct_entry', maxEntries: 65536, flags: [], doc: 'IPv4 conntrack' },
  { name: 'cilium_metrics', type: 'percpu_hash', key: 'metrics_key', value: 'metrics_value', maxEntries: 1024, flags: [], doc: 'packets/bytes per (reason, direction)' },
  { name: 'cilium_runtime_config', type: 'array', key: 'u32', value: 'u64', maxEntries: 4, flags: [], doc: 'RUNTIME_CONFIG_* slots written by the loader' },
  { name: 'cilium_signals', type: 'perf_event_array', key: 'u32', value: 'u32', maxEntries: 0, flags: [], doc: 'signal_msg records for the agent' },
  { name: 'cilium_events', type: 'perf_event_array', key: 'u32', value: 'u32', maxEntries: 0, flags: [], doc: 'flow_event records (Hubble-like)' },
];

/** The two tc programs, named by direction like Cilium's. */
export const PROGRAMS = {
  /** tc ingress of the node-side pod veth: packets leaving the pod (egress policy). */
  fromContainer: 'cil_from_container',
  /** tc egress of the node-side pod veth: packets entering the pod (ingress policy). */
  toContainer: 'cil_to_container',
} as const;

// ---- the objects of bpf/ ---------------------------------------------------------

export interface BpfObject {
  /** bpf/<name>.c, built into bpf/build/<name>.o; upper-cased, the prefix of its generated TS names (SOCKMAP_MAPS …). */
  name: string;
  doc: string;
  structs: StructLayout[];
  constants: ConstantGroup[];
  /** The object's own maps (not those it reuses from the datapath). */
  maps: MapLayout[];
  /** TS name → program (function) name, also its pin name. */
  programs: Record<string, string>;
}

export const DATAPATH: BpfObject = {
  name: 'datapath',
  doc: 'The tc datapath on every pod veth; its maps are declared in bpf/lib/maps.h (overlay.o and strict.o reuse them all).',
  structs: STRUCTS,
  constants: CONSTANT_GROUPS,
  maps: MAPS,
  programs: PROGRAMS,
};

export const OVERLAY: BpfObject = {
  name: 'overlay',
  doc: "Tunnel mode on each node's VXLAN device: the source identity travels in the VNI (VXLAN_VNI_MASK) and is handed to cil_to_container in skb->mark (MARK_MAGIC_IDENTITY). No maps of its own: it reuses the node's datapath maps.",
  structs: [],
  constants: [],
  maps: [],
  programs: {
    /** tc egress of cilium_vxlan: sets the tunnel key (remote node, VNI = source identity). */
    toOverlay: 'cil_to_overlay',
    /** tc ingress of cilium_vxlan: VNI → skb->mark. */
    fromOverlay: 'cil_from_overlay',
  },
};

export const STRICT: BpfObject = {
  name: 'strict',
  doc: "WireGuard strict mode at tc egress of each node's underlay device: drops unencrypted pod traffic to another node (DROP_UNENCRYPTED_TRAFFIC). It reuses every datapath map and has one of its own, strict_config, which the loader creates and fills before loading.",
  structs: [
    {
      name: 'strict_config',
      doc: "Value of strict_config: the strict CIDR (Cilium's --encryption-strict-mode-cidr, the lab's pod range). mask 0 = not configured (strict mode off, nothing dropped).",
      size: 8,
      fields: [
        { name: 'net', type: 'ipv4', doc: 'network address, network byte order' },
        { name: 'mask', type: 'ipv4', doc: 'netmask, network byte order' },
      ],
    },
  ],
  constants: [],
  maps: [
    { name: 'strict_config', role: 'config', type: 'array', key: 'u32', value: 'strict_config', maxEntries: 1, flags: [], doc: 'One slot (key 0): the strict CIDR.' },
  ],
  programs: {
    /** tc egress of the node's underlay device (eth0). */
    toNetdev: 'cil_to_netdev_strict',
  },
};

const SOCKMAP_SLOTS: Constant[] = [
  { name: 'SOCKMAP_MSG_REDIRECTED', value: 0, doc: "sk_msg: handed to the peer socket's receive queue (the stack is skipped)" },
  { name: 'SOCKMAP_MSG_PASSED', value: 1, doc: 'sk_msg: no peer socket in the hash; sent through TCP/IP as usual' },
  { name: 'SOCKMAP_SOCK_ADDED', value: 2, doc: 'sock_ops: an established socket between two local pods, added' },
  { name: 'SOCKMAP_SOCK_SKIPPED', value: 3, doc: 'sock_ops: an established socket whose peer is not a local pod' },
  { name: 'SOCKMAP_SOCK_ADD_FAILED', value: 4, doc: 'sock_ops: bpf_sock_hash_update refused (e.g. map full)' },
  { name: 'SOCKMAP_SOCK_NETNS_MISMATCH', value: 5, doc: 'sock_ops: the socket claims a pod IP learned in another namespace' },
];

export const SOCKMAP: BpfObject = {
  name: 'sockmap',
  doc: 'Same-node socket acceleration (Cilium <= 1.13 "sockmap"): sock_ops on the node\'s cgroup, sk_msg on the sockhash. A standalone object with maps of its own, loaded once per node.',
  structs: [
    {
      name: 'sock_key',
      doc: "Key of cilium_sock_ops (the lab's layout): one established socket as it sees itself, under its own namespace's cookie. sip4/sport are the socket's own address and port, dip4/dport its peer's (see bpf/lib/sockmap.h for why the cookie).",
      size: 24,
      fields: [
        { name: 'netns_cookie', type: 'u64', doc: 'bpf_get_netns_cookie() of the socket' },
        { name: 'sip4', type: 'ipv4' },
        { name: 'dip4', type: 'ipv4' },
        { name: 'sport', type: 'be16', doc: 'network byte order' },
        { name: 'dport', type: 'be16', doc: 'network byte order' },
        { name: 'family', type: 'u8', doc: 'SOCK_KEY_FAMILY_IPV4' },
        pad('pad', 3),
      ],
    },
    {
      name: 'sockmap_pod',
      doc: 'Value of sockmap_pods (keyed by the pod\'s IPv4 address, be32): user space writes netns_cookie 0 ("not learned yet"); the first socket the pod establishes fills in its namespace\'s cookie.',
      size: 8,
      fields: [{ name: 'netns_cookie', type: 'u64' }],
    },
    {
      name: 'sockmap_metric',
      doc: 'Value of sockmap_metrics (per CPU; user space sums the CPUs): messages (or sockets) and bytes. bytes is 0 for the socket slots.',
      size: 16,
      fields: [
        { name: 'count', type: 'u64' },
        { name: 'bytes', type: 'u64' },
      ],
    },
  ],
  constants: [
    {
      name: 'SOCKMAP_METRIC_SLOTS',
      doc: 'sockmap_metrics slots (keys of the per-CPU array).',
      constants: [...SOCKMAP_SLOTS, { name: 'SOCKMAP_METRICS_MAX', value: SOCKMAP_SLOTS.length, doc: 'number of slots' }],
    },
    {
      name: 'SOCKMAP_MISC',
      doc: 'sock_key.family.',
      constants: [{ name: 'SOCK_KEY_FAMILY_IPV4', value: 1, doc: "Cilium's ENDPOINT_KEY_IPV4" }],
    },
  ],
  maps: [
    {
      name: 'cilium_sock_ops', role: 'sockhash', type: 'sockhash', key: 'sock_key', value: 'u64', maxEntries: 65535, flags: [],
      doc: "Cilium's name for its sockhash. The value is declared __u64: a lookup from user space returns the socket's cookie, which only an 8-byte value can hold (tried with __u32: redirects work, but every value of `bpftool map dump` reads \"No space left on device\", \"Found 0 elements\").",
    },
    { name: 'sockmap_pods', role: 'pods', type: 'hash', key: 'ipv4', value: 'sockmap_pod', maxEntries: 1024, flags: ['BPF_F_NO_PREALLOC'], doc: 'This node\'s pods: "is the peer local?" and its namespace\'s cookie.' },
    { name: 'sockmap_metrics', role: 'metrics', type: 'percpu_array', key: 'u32', value: 'sockmap_metric', maxEntries: SOCKMAP_SLOTS.length, flags: [], doc: 'Counters, one slot per SOCKMAP_* slot.' },
  ],
  programs: {
    /** sock_ops on the node's cgroup: established sockets between two local pods go into the sockhash. */
    sockOps: 'cil_sock_ops',
    /** sk_msg on the sockhash (msg_verdict): redirects each sendmsg to the peer socket. */
    skMsg: 'cil_sk_msg',
  },
};

/** Every object, in the order the generator lays their structs out. */
export const OBJECTS: BpfObject[] = [DATAPATH, OVERLAY, STRICT, SOCKMAP];
