// `mtless status`: see lab/cli/table.ts for its summary.
import { labStatus, allLabStatuses, type LabStatus } from '../../compose/status.ts';

import { oneLabName, requireRoot, type Command } from '../command.ts';

export const command: Command = {
  options: { json: { type: 'boolean' } },
  run: async (args, v) => {
    requireRoot('status');
    const statuses = args.length > 0 ? [await labStatus(oneLabName(args, 'status'))] : await allLabStatuses();
    const found = statuses.filter((s): s is LabStatus => s !== undefined);
    if (v.json) {
      console.log(JSON.stringify(args.length > 0 ? (found[0] ?? null) : found, null, 2));
    } else if (found.length === 0) {
      console.log(args.length > 0 ? `no lab named "${args[0]}"` : 'no labs on this host');
    } else {
      for (const s of found) console.log(formatStatus(s));
    }
    return args.length > 0 && found.length === 0 ? 1 : 0;
  },
};

function formatStatus(s: LabStatus): string {
  const lines = [`lab ${s.lab}: ${s.phase}${s.createdAt ? ` since ${s.createdAt}` : ''}${s.topologyFile ? ` (${s.topologyFile})` : ''}`];
  for (const n of s.nodes) {
    lines.push(`  node ${n.name} (id ${n.id})  underlay ${n.underlayIp}  mgmt ${n.mgmtIp}  pods ${n.podCidr}${n.netnsPresent ? '' : '  [namespace missing]'}`);
    for (const p of s.pods.filter((p) => p.node === n.name)) {
      const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',');
      const id = p.identity !== undefined ? `  ID:${p.identity}` : '';
      lines.push(`    pod ${p.name.padEnd(12)} ${p.ip.padEnd(15)} ${p.lxc.padEnd(15)}${id}  ${labels}${p.netnsPresent ? '' : '  [namespace missing]'}`);
    }
  }
  for (const p of s.processes) lines.push(`  process ${p.pid} ${p.role ?? p.tag} ${p.alive ? 'running' : 'DEAD'}`);
  if (s.strayNetns.length > 0) lines.push(`  stray namespaces (run \`mtless down ${s.lab}\`): ${s.strayNetns.join(', ')}`);
  return lines.join('\n');
}
