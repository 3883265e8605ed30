// `mtless maps`: see lab/cli/table.ts for its summary.
import { dumpNodeMap, readMetrics, ipcacheCidr, tunnelEndpointOf, nodeKeyIp } from '../../datapath/maps.ts';
import { dumpAuth } from '../../datapath/auth.ts';
import { DROP_REASON_TEXT, DIR_INGRESS } from '../../abi/generated.ts';
import { UsageError, type Command } from '../command.ts';
import { runningLab, nodeOf, resolver, json } from '../running-lab.ts';

/** ip → "node/pod" (or "node" for node addresses) for readable flows. */

export const command: Command = {
  options: { json: { type: 'boolean' } },
  run: async ([lab, nodeArg, map], v) => {
    const state = await runningLab(lab, 'maps');
    const node = nodeOf(state, nodeArg, 'maps');
    const resolve = resolver(state);
    const name = (ip: string) => (resolve(ip) ? `${ip} (${resolve(ip)})` : ip);
    let rows: unknown[];
    let lines: string[];
    switch (map) {
      case 'ipcache': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_ipcache');
        rows = r;
        lines = r.map((e) => `${ipcacheCidr(e.key).padEnd(18)} identity ${String(e.value.secIdentity).padEnd(6)} tunnel ${tunnelEndpointOf(e.value) ?? '-'}`);
        break;
      }
      case 'nodes': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_node_map');
        rows = r;
        lines = r.map((e) => `${nodeKeyIp(e.key).padEnd(15)} node id ${e.value.id}`);
        break;
      }
      case 'endpoints': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_lxc');
        rows = r;
        lines = r.map((e) => `ifindex ${String(e.key.ifindex).padEnd(4)} ${name(e.value.ipv4).padEnd(28)} identity ${e.value.secIdentity} flags 0x${e.value.flags.toString(16)}`);
        break;
      }
      case 'policy': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_policy');
        rows = r;
        lines = r.map((e) =>
          `ifindex ${e.key.epIfindex} ${e.key.direction === DIR_INGRESS ? 'ingress' : 'egress '} peer ${String(e.key.secLabel).padEnd(5)} ` +
          `port ${String(e.key.dport).padEnd(5)} proto ${String(e.key.protocol).padEnd(3)} ${e.value.flags & 1 ? 'DENY ' : 'allow'} auth_type ${e.value.authType} hits ${e.value.packets}`);
        break;
      }
      case 'auth': {
        const r = await dumpAuth(state.lab, node);
        rows = r;
        lines = r.map((e) =>
          `local ${e.key.localSecLabel} remote ${e.key.remoteSecLabel} node ${e.key.remoteNodeId} type ${e.key.authType}  expires ${e.expiration.toISOString()}${e.expiration.getTime() <= Date.now() ? ' (expired)' : ''}`);
        break;
      }
      case 'ct': {
        const r = await dumpNodeMap(state.lab, node, 'cilium_ct4');
        rows = r;
        lines = r.map((e) =>
          `${e.key.scope === DIR_INGRESS ? 'ingress' : 'egress '} ${name(e.key.saddr)}:${e.key.sport} -> ${name(e.key.daddr)}:${e.key.dport} proto ${e.key.protocol} packets ${e.value.packets} peer ${e.value.peerIdentity}`);
        break;
      }
      case 'metrics': {
        const r = await readMetrics(state.lab, node);
        rows = r;
        lines = r.map((e) => `${e.reason === 0 ? 'forwarded' : `${DROP_REASON_TEXT[e.reason] ?? 'drop'} (${e.reason})`} ${e.dir === DIR_INGRESS ? 'ingress' : 'egress'}: ${e.packets} packets, ${e.bytes} bytes`);
        break;
      }
      default:
        throw new UsageError(`maps: unknown map "${map ?? ''}" (valid: ipcache, nodes, endpoints, policy, auth, ct, metrics)`);
    }
    console.log(v.json ? json(rows) : lines.join('\n') || '(empty)');
    return 0;
  },
};
