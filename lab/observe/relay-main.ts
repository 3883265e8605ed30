// The flow relay process, started by `mtless up` (or the first `mtless
// observe` of a lab without one) in the lab's control-plane namespace.
import { readFile } from 'node:fs/promises';
import { READY_LINE } from '../kernel/daemon.ts';
import { jsonLog } from '../core/log.ts';
import { CONTROL_PLANE_NODE } from '../core/daemons.ts';
import { FlowRelay, type RelayConfig } from './relay.ts';

const configPath = process.argv[2];
if (!configPath) {
  process.stderr.write('usage: observe/relay-main.ts CONFIG.json\n');
  process.exit(2);
}
const cfg = JSON.parse(await readFile(configPath, 'utf8')) as RelayConfig;
const log = jsonLog('relay', CONTROL_PLANE_NODE);
const relay = new FlowRelay(cfg, log);
process.on('uncaughtException', (e) => log('uncaught', { error: e.message, stack: e.stack }));
await relay.start();
process.stdout.write(`${READY_LINE}\n`);

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void relay.stop().finally(() => process.exit(0));
  });
}
