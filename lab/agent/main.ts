// The node-agent process, run by `mtless up` in each node namespace.
import { READY_LINE } from '../kernel/daemon.ts';
import { NodeAgent } from './agent.ts';
import { readAgentConfig } from './config.ts';
import { jsonLog } from '../core/log.ts';
import { WG_ROTATE_SIGNAL } from '../wireguard/node-key.ts';

const configPath = process.argv[2];
if (!configPath) {
  process.stderr.write('usage: agent/main.ts CONFIG.json\n');
  process.exit(2);
}
const cfg = await readAgentConfig(configPath);
const log = jsonLog('agent', cfg.node);
const agent = new NodeAgent(cfg, log);
process.on('uncaughtException', (e) => log('uncaught', { error: e.message, stack: e.stack }));
// Before start: a signal without a handler would end the process.
process.on(WG_ROTATE_SIGNAL, () => {
  agent.rotateWireguardKey().catch((e: Error) => log('wireguard-rotate-failed', { error: e.message }));
});

await agent.start();
process.stdout.write(`${READY_LINE}\n`);

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void agent.stop().finally(() => process.exit(0));
  });
}
