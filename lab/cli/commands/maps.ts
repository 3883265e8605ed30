// `mtless maps`: see lab/cli/table.ts for its summary. Shaped like
// `cilium-dbg bpf … list`: a header row, identities and pods by name where
// the lab knows them, `-o json` (or --json) for scripts.
import { dumpNodeMap, readMetrics, ipcacheCidr, tunnelEndpointOf, nodeKeyIp } from '../../datapath/maps.ts';
import { dumpAuth } from '../../datapath/auth.ts';
import {
  AUTH_TYPE_EXPLICIT, AUTH_TYPE_TEXT, DIR_INGRESS, DROP_REASON_TEXT, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, POLICY_F_DENY, RESERVED_IDENTITY_TEXT,
} from '../../abi/generated.ts';
import type { LabState } from '../../core/state.ts';
import { UsageError, type Command } from '../command.ts';
import { table, timeLeft } from '../format.ts';
import { runningLab, nodeOf, resolver, json } from '../running-lab.ts';

export const MAP_VIEWS = ['ipcache', 'nodes', 'endpoints', 'policy', 'auth', 'ct', 'metrics'] as const;

const PROTO: Record<number, string> = { 0: 'ANY', [IPPROTO_ICMP]: 'ICMP', [IPPROTO_TCP]: 'TCP', [IPPROTO_UDP]: 'UDP' };
const authTypeName = (t: number) => {
  const base = t & ~AUTH_TYPE_EXPLICIT;
  return `${AUTH_TYPE_TEXT[base] ?? `type ${base}`}${t & AUTH_TYPE_EXPLICIT ? ' (explicit)' : ''}`;
};

/** identity → "256 (default/client)" from the lab's pods, reserved names for 1-255. */
function identityNamer(state: LabState) {
  const pods = new Map<number, string[]>();
  for (const p of state.pods) if (p.identity !== undefined) pods.set(p.identity, [...(pods.get(p.identity) ?? []), p.name]);
  return (id: number) => {
    const name = pods.get(id)?.join(',') ?? RESERVED_IDENTITY_TEXT[id];
    return name ? `${id} (${name})` : String(id);
  };
}

export const command: Command = {
  options: { json: { type: 'boolean' }, output: { type: 'string', short: 'o' } },
  run: async ([lab, nodeArg, map], v) => {
    const state = await runningLab(lab, 'maps');
    const node = nodeOf(state, nodeArg, 'maps');
    if (v.output !== undefined && v.output !== 'json' && v.output !== 'table') throw new UsageError(`maps: -o ${String(v.output)}: expected json or table`);
    const asJson = Boolean(v.json) || v.output === 'json';
    const resolve = resolver(state);
    const ip = (addr: string) => (resolve(addr) ? `${addr} (${resolve(addr)})` : addr);
    const id = identityNamer(state);
    let rows: unknown[];
    let lines: string[][];
    switch (map) {
      case 'ipcache': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_ipcache');
        rows = r;
        lines = [['PREFIX', 'IDENTITY', 'TUNNEL ENDPOINT'], ...r.map((e) => [ipcacheCidr(e.key), id(e.value.secIdentity), tunnelEndpointOf(e.value) ?? '-'])];
        break;
      }
      case 'nodes': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_node_map');
        rows = r;
        lines = [['NODE IP', 'NODE ID'], ...r.map((e) => [ip(nodeKeyIp(e.key)), String(e.value.id)])];
        break;
      }
      case 'endpoints': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_lxc');
        rows = r;
        lines = [['IFINDEX', 'ADDRESS', 'IDENTITY', 'FLAGS'], ...r.map((e) => [String(e.key.ifindex), ip(e.value.ipv4), id(e.value.secIdentity), `0x${e.value.flags.toString(16)}`])];
        break;
      }
      case 'policy': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_policy');
        rows = r;
        lines = [['IFINDEX', 'DIRECTION', 'PEER IDENTITY', 'PORT', 'PROTO', 'VERDICT', 'AUTH TYPE', 'PACKETS'],
          ...r.map((e) => [String(e.key.epIfindex), e.key.direction === DIR_INGRESS ? 'ingress' : 'egress', e.key.secLabel === 0 ? 'ANY' : id(e.key.secLabel),
            e.key.dport === 0 ? 'ANY' : String(e.key.dport), PROTO[e.key.protocol] ?? String(e.key.protocol), e.value.flags & POLICY_F_DENY ? 'deny' : 'allow',
            e.value.authType === 0 ? '-' : authTypeName(e.value.authType), String(e.value.packets)])];
        break;
      }
      case 'auth': {
        const r = await dumpAuth(state.lab, node);
        rows = r;
        const nodeById = new Map(state.nodes.map((n) => [n.id, n.name]));
        lines = [['SRC IDENTITY', 'DST IDENTITY', 'REMOTE NODE ID', 'AUTH TYPE', 'EXPIRATION'],
          ...r.map((e) => [id(e.key.localSecLabel), id(e.key.remoteSecLabel),
            e.key.remoteNodeId === 0 ? '0 (local)' : `${e.key.remoteNodeId}${nodeById.has(e.key.remoteNodeId) ? ` (${nodeById.get(e.key.remoteNodeId)})` : ''}`,
            authTypeName(e.key.authType), `${e.expiration.toISOString()} (${timeLeft(e.expiration)})`])];
        break;
      }
      case 'ct': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_ct4');
        rows = r;
        // Deadlines are bpf_ktime_get_ns(), CLOCK_MONOTONIC like hrtime. Packets are
        // counted only with CT accounting on (RUNTIME_CONFIG_CT_ACCOUNTING), so not shown.
        const nowMs = Date.now();
        const monoNs = process.hrtime.bigint();
        lines = [['SCOPE', 'SOURCE', 'DESTINATION', 'PROTO', 'EXPIRES', 'PEER IDENTITY'],
          ...r.map((e) => [e.key.scope === DIR_INGRESS ? 'ingress' : 'egress', `${ip(e.key.saddr)}:${e.key.sport}`, `${ip(e.key.daddr)}:${e.key.dport}`,
            PROTO[e.key.protocol] ?? String(e.key.protocol), timeLeft(new Date(nowMs + Number((e.value.expires - monoNs) / 1_000_000n)), nowMs), id(e.value.peerIdentity)])];
        break;
      }
      case 'metrics': {
        const r = await readMetrics(state.lab, node);
        rows = r;
        lines = [['REASON', 'DIRECTION', 'PACKETS', 'BYTES'],
          ...r.map((e) => [e.reason === 0 ? 'forwarded' : `${DROP_REASON_TEXT[e.reason] ?? 'drop'} (${e.reason})`, e.dir === DIR_INGRESS ? 'ingress' : 'egress', String(e.packets), String(e.bytes)])];
        break;
      }
      default:
        throw new UsageError(`maps: unknown map "${map ?? ''}" (valid: ${MAP_VIEWS.join(', ')})`);
    }
    console.log(asJson ? json(rows) : lines.length > 1 ? table(lines).join('\n') : `${table(lines).join('\n')}\n(empty)`);
    return 0;
  },
};
