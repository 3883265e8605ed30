// `mtless wireguard rotate`: see lab/cli/table.ts for its summary.
import { rotateWireguardKey } from '../../compose/wireguard-keys.ts';
import { seconds, UsageError, type Command } from '../command.ts';
import { nodeOf, runningLab } from '../running-lab.ts';

export const command: Command = {
  options: { timeout: { type: 'string' } },
  run: async ([verb, lab, node, extra], values) => {
    if (verb !== 'rotate') throw new UsageError(verb ? `wireguard: unknown action "${verb}" (valid: rotate)` : 'wireguard: missing action (rotate)');
    if (extra) throw new UsageError(`wireguard rotate: unexpected argument "${extra}"`);
    const state = await runningLab(lab, 'wireguard rotate');
    const timeoutMs = seconds(values.timeout, 'timeout') ?? 20_000;
    const r = await rotateWireguardKey(state.lab, nodeOf(state, node, 'wireguard rotate'), { timeoutMs });
    console.log(`${r.node}: WireGuard key ${r.oldFingerprint} -> ${r.newFingerprint} (sha256 of the public key, 16 hex digits); published in ${r.publishedMs} ms`);
    for (const p of r.peers) console.log(`  ${p.node}: ${p.ms !== undefined ? `has the new key after ${p.ms} ms` : p.note}`);
    // A partitioned peer is expected not to follow; a reachable one that did not is a failure.
    return r.peers.some((p) => p.ms === undefined && !p.note?.startsWith('partitioned')) ? 1 : 0;
  },
};
