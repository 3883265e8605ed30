// `mtless validate`: see lab/cli/table.ts for its summary.
import { loadTopologyFile, formatIssues, TopologyError } from '../../topology/validate.ts';

import { UsageError, type Command } from '../command.ts';

export const command: Command = {
  run: async (files) => {
    if (files.length === 0) throw new UsageError('validate: missing FILE');
    let code = 0;
    for (const file of files) {
      try {
        const topo = await loadTopologyFile(file);
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
