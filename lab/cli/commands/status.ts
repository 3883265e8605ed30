// `mtless status`: see lab/cli/table.ts for its summary.
import { labStatus, allLabStatuses, type LabStatus } from '../../compose/status.ts';
import { oneLabName, requireRoot, type Command } from '../command.ts';
import { colourVerdicts, table } from '../format.ts';

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
      console.log(colourVerdicts(found.map(formatStatus).join('\n\n')));
    }
    return args.length > 0 && found.length === 0 ? 1 : 0;
  },
};

const missing = (present: boolean) => (present ? '' : 'namespace missing');

/** One table: each node, its processes (agent, proxies …) and its pods under it; the control plane last. */
export function formatStatus(s: LabStatus): string {
  const head = `lab ${s.lab}: ${s.phase}${s.createdAt ? ` since ${s.createdAt}` : ''}${s.topologyFile ? ` (${s.topologyFile})` : ''}`;
  const rows = [['NODE / POD', 'ID', 'ADDRESS', 'DEVICE', 'IDENTITY', 'LABELS / PID', 'STATE']];
  const procState = (p: LabStatus['processes'][number]) => (p.alive ? 'running' : 'DEAD');
  for (const n of s.nodes) {
    rows.push([n.name, String(n.id), `${n.underlayIp} (mgmt ${n.mgmtIp})`, `pods ${n.podCidr}`, '', '', missing(n.netnsPresent)]);
    for (const p of s.processes.filter((p) => p.node === n.name)) rows.push([`  ${p.role ?? 'process'}`, '', '', '', '', `pid ${p.pid}`, procState(p)]);
    for (const p of s.pods.filter((p) => p.node === n.name)) {
      const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',');
      rows.push([`  ${p.name}`, '', p.ip, p.lxc, p.identity !== undefined ? String(p.identity) : '-', labels, missing(p.netnsPresent)]);
    }
  }
  const nodeNames = new Set(s.nodes.map((n) => n.name));
  for (const p of s.processes.filter((p) => !p.node || !nodeNames.has(p.node))) {
    rows.push([p.node === 'cp' && p.role === 'control-plane' ? 'control plane' : (p.role ?? p.tag), '', '', '', '', `pid ${p.pid}`, procState(p)]);
  }
  const lines = [head, ...table(rows, '  ')];
  if (s.strayNetns.length > 0) lines.push(`  stray namespaces (run \`mtless down ${s.lab}\`): ${s.strayNetns.join(', ')}`);
  return lines.join('\n');
}
