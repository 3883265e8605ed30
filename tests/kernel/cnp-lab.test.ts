// CiliumNetworkPolicy documents on a real lab: `mtless up FILE --policies
// CNP.yaml` with a namespaced CNP as a cluster has it (k8s: labels,
// matchExpressions, endPort, authentication, ingressDeny) and the packets
// behave as Cilium's would: client → server on the range authenticates
// (first SYN 189, then through), local → server on the denied port drops
// 181 though an allow covers it, outside the range drops 133.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import * as gen from '../../lab/abi/generated.ts';
import type { FlowEvent } from '../../lab/abi/generated.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { readState } from '../../lab/core/state.ts';
import { streamFlows, type EventStream } from '../../lab/datapath/events.ts';
import { echoSend, labCli, labLeftovers, needsRoot, REPO, startEchoServer, type Server } from '../helpers/kernel.ts';

const lab = 't-cnp-lab';
const CNP = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: server-range
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      k8s:app: server
  ingress:
    - fromEndpoints:
        - matchLabels:
            k8s:app: client
      authentication:
        mode: required
      toPorts:
        - ports:
            - { port: "8000", endPort: 8010, protocol: TCP }
    - fromEndpoints:
        - matchExpressions:
            - { key: k8s:app, operator: In, values: [local] }
      toPorts:
        - ports:
            - { port: "8000", endPort: 8010, protocol: TCP }
  ingressDeny:
    - fromEndpoints:
        - matchLabels: { app: local }
      toPorts:
        - ports:
            - { port: "8005", protocol: TCP }
`;

/** Polls until `probe` yields; the deadline only ends a broken run. */
async function eventually<T>(probe: () => T | undefined, ms = 30_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('CNP documents enforced on packets: 189 then through, 181 for the deny, 133 outside the range', { skip: needsRoot }, async (t) => {
  await destroyLab(lab);
  const dir = await mkdtemp(join(tmpdir(), 'cnp-lab-'));
  const servers: Server[] = [];
  let flowStream: EventStream | undefined;
  try {
    await writeFile(join(dir, 'cnp.yaml'), CNP);
    const up = await labCli(['up', join(REPO, 'topologies/two-node.yaml'), '--policies', join(dir, 'cnp.yaml'), '--name', lab]);
    t.equal(up.exitCode, 0, 'mtless up --policies exits 0');
    if (up.exitCode !== 0) t.comment(String(up.stderr));
    const state = (await readState(lab))!;
    const serverIp = state.pods.find((p) => p.name === 'server')!.ip;
    for (const port of [8004, 8005, 8006, 8011]) servers.push(await startEchoServer(lab, 'server', 'tcp', port));
    const flows: FlowEvent[] = [];
    flowStream = streamFlows(lab, 'n2', (f) => flows.push(f));
    await flowStream.ready;
    const dropsTo = (port: number) => flows.filter((f) => f.daddr === serverIp && f.dport === port && f.verdict === gen.VERDICT_DROPPED);

    const auth = await echoSend(lab, 'client', 'tcp', serverIp, 8004, 'authenticated', ['--timeout', '15000']);
    t.equal(auth.exitCode, 0, 'client -> server:8004 (inside endPort) completes after the handshake');
    t.ok(dropsTo(8004).some((f) => f.dropReason === gen.DROP_POLICY_AUTH_REQUIRED), 'its first SYN was dropped with 189');

    const denied = await echoSend(lab, 'local', 'tcp', serverIp, 8005, 'never', ['--timeout', '2500']);
    t.not(denied.exitCode, 0, 'local -> server:8005 never completes');
    const deny = await eventually(() => dropsTo(8005)[0]);
    t.equal(deny?.dropReason, gen.DROP_POLICY_DENY, 'dropped with 181 although the In [local] allow covers the port');

    const allowed = await echoSend(lab, 'local', 'tcp', serverIp, 8006, 'plain', ['--timeout', '10000']);
    t.equal(allowed.exitCode, 0, 'local -> server:8006 is allowed without auth');
    t.same(dropsTo(8006), [], 'no drop on 8006');

    const outside = await echoSend(lab, 'client', 'tcp', serverIp, 8011, 'never', ['--timeout', '2500']);
    t.not(outside.exitCode, 0, 'client -> server:8011 (past endPort) never completes');
    const miss = await eventually(() => dropsTo(8011)[0]);
    t.equal(miss?.dropReason, gen.DROP_POLICY, 'dropped with 133');
  } finally {
    await flowStream?.stop();
    for (const s of servers) await s.stop();
    await destroyLab(lab);
    await rm(dir, { recursive: true, force: true });
  }
  t.same(await labLeftovers(lab), [], 'no namespace, pin folder, state or process left');
});
