// `mtless pod`: see lab/cli/table.ts for its summary.
import { addPod, deletePod } from '../../compose/pods.ts';
import { UsageError, type Command } from '../command.ts';

export const command: Command = {
  options: { labels: { type: 'string' }, ip: { type: 'string' }, namespace: { type: 'string' }, 'service-account': { type: 'string' } },
  run: async ([op, lab, node, pod], v) => {
    if (!lab || !node || !pod) throw new UsageError('pod: expected add|del NAME NODE POD');
    if (op === 'add') {
      // fromEntries makes an own property of every key ("__proto__" too), so addPod sees and refuses a bad one.
      const labels: Record<string, string> = Object.fromEntries(String(v.labels ?? '').split(',').filter(Boolean).map((kv) => {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new UsageError(`pod: bad label "${kv}", expected key=value`);
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      }));
      if (Object.keys(labels).length === 0) throw new UsageError('pod add: --labels is required (e.g. --labels app=web)');
      const r = await addPod({
        lab, node, pod, labels, ip: v.ip as string | undefined,
        namespace: v.namespace as string | undefined, serviceAccount: v['service-account'] as string | undefined,
      });
      console.log(`pod ${pod} on ${node}: ${r.ip}, identity ${r.identity}`);
      if (!r.synced) console.log(`warning: the agent of ${node} has not synced the endpoint yet (is ${node} partitioned?); its packets are dropped until it does`);
    } else if (op === 'del') {
      await deletePod(lab, pod, node);
      console.log(`pod ${pod} deleted`);
    } else throw new UsageError('pod: expected add or del');
    return 0;
  },
};
