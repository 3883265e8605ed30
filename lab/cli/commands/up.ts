// `mtless up`: see lab/cli/table.ts for its summary.
import { LabInUseError } from '../../compose/up.ts';
import { loadTopologyFile, formatIssues, TopologyError } from '../../topology/validate.ts';
import { loadPolicyFiles } from '../../topology/cnp.ts';
import { printProgress } from '../print.ts';

import { UsageError, requireRoot, seconds, type Command } from '../command.ts';
import { listenForInterrupt } from '../../core/interrupt.ts';

export const command: Command = {
  options: {
    name: { type: 'string', short: 'n' },
    'no-agents': { type: 'boolean' },
    'svid-ttl': { type: 'string' },
    'gc-interval': { type: 'string' },
    policies: { type: 'string', short: 'p', multiple: true },
  },
  run: async ([file], v) => {
    if (!file) throw new UsageError('up: missing FILE');
    let topo;
    try {
      topo = await loadTopologyFile(file);
    } catch (e) {
      if (e instanceof TopologyError) {
        process.stderr.write(formatIssues(e.issues, file).join('\n') + '\n');
        return 2;
      }
      throw e;
    }
    const policyFiles = (v.policies as string[] | undefined) ?? [];
    if (policyFiles.length > 0) {
      const loaded = await loadPolicyFiles(topo, policyFiles);
      for (const line of loaded.warnings) process.stderr.write(`warning: ${line}\n`);
      if (!loaded.topology) {
        process.stderr.write(loaded.problems.join('\n') + '\n');
        return 2;
      }
      topo = loaded.topology;
    }
    requireRoot('up');
    const lab = (v.name as string | undefined) ?? topo.name;
    const abort = new AbortController();
    const onSignal = () => {
      process.stderr.write('\ninterrupted: finishing the current step, then rolling back…\n');
      abort.abort();
    };
    const stopListening = listenForInterrupt(onSignal);
    const started = performance.now();
    try {
      const { upWithDatapath } = await import('../../compose/lab.ts');
      const plan = await upWithDatapath(topo, {
        name: lab, topologyFile: file, progress: printProgress, signal: abort.signal,
        agents: !v['no-agents'],
        svidTtlMs: seconds(v['svid-ttl'], 'svid-ttl'),
        gcIntervalMs: seconds(v['gc-interval'], 'gc-interval'),
      });
      const pods = plan.nodes.reduce((n, node) => n + node.pods.length, 0);
      console.log(`lab "${lab}" is up: ${plan.nodes.length} nodes, ${pods} pods in ${Math.round(performance.now() - started)} ms`);
      return 0;
    } catch (e) {
      if (abort.signal.aborted) {
        // Interrupted and rolled back: the shell's convention for Ctrl-C.
        process.stderr.write(`mtless: ${(e as Error).message}\n`);
        return 130;
      }
      if (e instanceof LabInUseError) {
        process.stderr.write(`mtless: ${e.message}\n`);
        return 2;
      }
      throw e;
    } finally {
      stopListening();
    }
  },
};
