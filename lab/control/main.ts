// The control-plane process, run by `mtless up` in the lab's control-plane
// namespace: node:https for agents, a unix socket for the CLI.
import 'reflect-metadata';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadCa, issueSvid } from '../spiffe/ca.ts';
import { READY_LINE } from '../kernel/daemon.ts';

import { readControlConfig } from './config.ts';
import { Registry, type ClusterSnapshot } from './registry.ts';
import { startControlServers } from './server.ts';
import { jsonLog } from '../core/log.ts';

const configPath = process.argv[2];
if (!configPath) {
  process.stderr.write('usage: control/main.ts CONFIG.json\n');
  process.exit(2);
}
const cfg = await readControlConfig(configPath);
const log = jsonLog('control-plane', 'cp');
const ca = await loadCa(cfg.caFile);
// Pods added or deleted at run time survive a restart (`mtless restart NAME cp`).
const savedFile = `${dirname(configPath)}/registry.json`;
const saved = await readFile(savedFile, 'utf8').then((t) => JSON.parse(t) as ClusterSnapshot, () => undefined);
const registry = new Registry(cfg.nodes, cfg.policies, saved?.identities ?? cfg.identities);
for (const e of saved?.endpoints ?? cfg.endpoints) registry.addEndpoint(e.pod, e.node, e.ip, e.labels);
const persist = () => void writeFile(savedFile, JSON.stringify(registry.snapshot()), { mode: 0o600 });

await rm(cfg.adminSocket, { force: true });
const servers = startControlServers({
  registry,
  host: cfg.host,
  adminSocket: cfg.adminSocket,
  tls: { certPem: await readFile(cfg.certFile, 'utf8'), keyPem: await readFile(cfg.keyFile, 'utf8'), caPem: ca.certPem },
  onChange: persist,
  issuer: {
    issue: async (identity, publicKeyPem) => {
      const svid = await issueSvid(ca, identity, { publicKey: publicKeyPem, ttlMs: cfg.svidTtlMs });
      return { certPem: svid.certPem, notAfter: svid.notAfter.toISOString() };
    },
  },
  log,
});
await servers.listen();
log('started', { host: cfg.host, nodes: cfg.nodes.length, endpoints: cfg.endpoints.length });
process.stdout.write(`${READY_LINE}\n`);

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    servers.close();
    process.exit(0);
  });
}
