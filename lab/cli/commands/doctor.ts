// `mtless doctor`: see lab/cli/table.ts for its summary.
import { kernelChecks, toolChecks } from '../../compose/doctor.ts';

import { type Command } from '../command.ts';

export const command: Command = {
  options: { json: { type: 'boolean' } },
  run: async (_args, v) => {
    const [kernel, tools] = await Promise.all([kernelChecks(), toolChecks()]);
    if (v.json) {
      console.log(JSON.stringify({ kernel, tools }, null, 2));
    } else {
      console.log('kernel:');
      for (const c of kernel) console.log(`  ${c.ok ? 'yes' : c.optional ? 'no ' : 'NO '}  ${c.name.padEnd(30)} ${c.detail}`);
      console.log('tools:');
      for (const t of tools) {
        const status = t.ok ? 'yes' : t.requiredForUp ? 'NO ' : 'no ';
        console.log(`  ${status}  ${t.name.padEnd(13)} ${(t.ok ? t.version : `missing: ${t.hint}`)?.padEnd(52)} ${t.purpose}`);
      }
    }
    const bad = kernel.some((c) => !c.ok && !c.optional) || tools.some((t) => !t.ok && t.requiredForUp);
    return bad ? 1 : 0;
  },
};
