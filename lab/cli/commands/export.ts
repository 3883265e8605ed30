// `mtless export`: see lab/cli/table.ts for its summary.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { exportKubernetes } from '../../topology/k8s.ts';
import { formatIssues, loadTopologyFile, TopologyError } from '../../topology/validate.ts';
import { loadPolicyFiles } from '../../topology/cnp.ts';
import { UsageError, type Command } from '../command.ts';

export const command: Command = {
  options: {
    output: { type: 'string', short: 'o' },
    policies: { type: 'string', short: 'p', multiple: true },
  },
  run: async ([target, file, extra], v) => {
    if (target !== 'k8s') throw new UsageError(target ? `export: unknown target "${target}" (k8s)` : 'export: missing target (k8s)');
    if (!file) throw new UsageError('export k8s: missing FILE');
    if (extra) throw new UsageError(`export k8s: unexpected argument "${extra}"`);
    let topology;
    try {
      topology = await loadTopologyFile(file);
    } catch (e) {
      if (!(e instanceof TopologyError)) throw e;
      process.stderr.write(formatIssues(e.issues, file).join('\n') + '\n');
      return 2;
    }
    const policyFiles = (v.policies as string[] | undefined) ?? [];
    if (policyFiles.length > 0) {
      const loaded = await loadPolicyFiles(topology, policyFiles);
      for (const line of loaded.warnings) process.stderr.write(`warning: ${line}\n`);
      if (!loaded.topology) {
        process.stderr.write(loaded.problems.join('\n') + '\n');
        return 2;
      }
      topology = loaded.topology;
    }
    const dir = (v.output as string | undefined) ?? `${topology.name}-k8s`;
    await mkdir(dir, { recursive: true });
    for (const [name, text] of exportKubernetes(topology)) {
      await writeFile(join(dir, name), text);
      console.log(join(dir, name));
    }
    return 0;
  },
};
