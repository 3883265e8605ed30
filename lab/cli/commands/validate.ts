// `mtless validate`: see lab/cli/table.ts for its summary.
import { loadTopologyFile, formatIssues, TopologyError } from '../../topology/validate.ts';

import { loadPolicyFiles } from '../../topology/cnp.ts';
import { UsageError, type Command } from '../command.ts';

export const command: Command = {
  options: { policies: { type: 'string', short: 'p', multiple: true } },
  run: async (files, v) => {
    if (files.length === 0) throw new UsageError('validate: missing FILE');
    const policyFiles = (v.policies as string[] | undefined) ?? [];
    let code = 0;
    for (const file of files) {
      try {
        let topo = await loadTopologyFile(file);
        if (policyFiles.length > 0) {
          const loaded = await loadPolicyFiles(topo, policyFiles);
          for (const line of loaded.warnings) process.stderr.write(`warning: ${line}\n`);
          if (!loaded.topology) {
            process.stderr.write(loaded.problems.join('\n') + '\n');
            code = 2;
            continue;
          }
          topo = loaded.topology;
        }
        const pods = topo.nodes.reduce((n, node) => n + node.pods.length, 0);
        console.log(`${file}: valid (lab "${topo.name}", ${topo.nodes.length} nodes, ${pods} pods, ${topo.policies.length} policies)`);
      } catch (e) {
        if (!(e instanceof TopologyError)) throw e;
        process.stderr.write(formatIssues(e.issues, file).join('\n') + '\n');
        code = 2;
      }
    }
    return code;
  },
};
