// Claim C5 (native routing): the receiving node learns a packet's source
// identity from its node-local ipcache. Cut that node off the control plane,
// replace an authenticated client by a pod of another identity that reuses
// its IP, and the stale ipcache plus the cached auth entry let the new pod
// reach a server whose policy forbids it.
import { echoSend, startEchoServer } from '../apps/pod-apps.ts';
import { addPod, deletePod, partitionNode } from '../compose/pods.ts';
import { dumpAuth } from '../datapath/auth.ts';
import { dumpNodeMap, ipcacheCidr } from '../datapath/maps.ts';
import { sharedDumpIo } from '../datapath/map-writer.ts';
import { DROP_POLICY, VERDICT_DROPPED, VERDICT_FORWARDED } from '../abi/generated.ts';
import type { Scenario, ScenarioContext } from './framework.ts';
import { untilRefused } from './side-lab.ts';

async function ipcacheIdentity(ctx: ScenarioContext, node: string, ip: string): Promise<number | undefined> {
  const rows = await dumpNodeMap(ctx.lab, node, 'cilium_ipcache', sharedDumpIo());
  return rows.find((r) => ipcacheCidr(r.key) === `${ip}/32`)?.value.secIdentity;
}

export const identityConfusion: Scenario = {
  name: 'identity-confusion',
  summary: 'native routing: a stale ipcache on a partitioned node plus a cached auth entry admit a pod of another identity',
  claims: ['C5'],
  topology: 'topologies/two-node-auth.yaml',
  captureLinks: ['fabric/underlay', 'n2/lxc-server'],
  async run(ctx) {
    const serverIp = ctx.podIp('server');
    const clientIp = ctx.podIp('client');
    const server = await startEchoServer(ctx.lab, 'server', 'tcp', 8080);
    try {
      ctx.say('1. client (app=client) authenticates to server:8080, as its policy allows');
      const first = await echoSend(ctx.lab, 'client', 'tcp', serverIp, 8080, 'hello-from-client', ['--timeout', '20000']);
      ctx.check('the client reaches the server after the handshake', first.exitCode === 0, first.stderr.trim() || undefined);
      const entries = await dumpAuth(ctx.lab, 'n2');
      const clientId = await ipcacheIdentity(ctx, 'n2', clientIp);
      ctx.check('n2 holds an auth entry for (server, client, n1)', entries.some((e) => e.key.remoteSecLabel === clientId && e.key.remoteNodeId === 1), `client identity ${clientId}`);

      ctx.say('2. the server\'s node n2 is cut off the control plane');
      await partitionNode(ctx.lab, 'n2', true);
      ctx.say('3. the client pod is deleted; 4. a pod of another identity (app=intruder) reuses its IP on n1');
      await deletePod(ctx.lab, 'client');
      const intruder = await addPod({ lab: ctx.lab, node: 'n1', pod: 'intruder', labels: { app: 'intruder' }, ip: clientIp });
      ctx.check('the intruder has another identity and the client\'s IP', intruder.identity !== clientId && intruder.ip === clientIp, `identity ${intruder.identity}, ip ${intruder.ip}`);
      // The intruder's own node learns it (that is what makes its egress work); n2 cannot.
      // Bounds on waits for a state the control plane usually reaches within a second.
      const deadline = Date.now() + 20_000;
      while ((await ipcacheIdentity(ctx, 'n1', clientIp)) !== intruder.identity && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const staleId = await ipcacheIdentity(ctx, 'n2', clientIp);
      ctx.check('n2\'s ipcache still maps the IP to the client\'s identity (stale)', staleId === clientId, `n2 says ${staleId}`);

      ctx.say('5. the intruder connects to server:8080, which its policy forbids');
      const before = ctx.flows().length;
      const attack = await echoSend(ctx.lab, 'intruder', 'tcp', serverIp, 8080, 'forbidden-payload', ['--timeout', '10000']);
      // The client exits as soon as its echo is back: n2's verdict may still be on its way.
      const seen = await ctx.waitForFlow((f) => ctx.flows().indexOf(f) >= before && f.node === 'n2' && f.saddr === clientIp, 10_000);
      ctx.check('IDENTITY CONFUSION: the forbidden pod reaches the server (accepted as the client)',
        attack.exitCode === 0 && (await server.sawText('forbidden-payload')),
        `n2 saw source identity ${seen?.srcIdentity}, verdict ${seen?.verdict === VERDICT_FORWARDED ? 'FORWARDED' : seen?.verdict === VERDICT_DROPPED ? 'DROPPED' : 'none'}`);

      ctx.say('6. heal: n2 resyncs its ipcache, and the same attempt is denied by policy');
      await partitionNode(ctx.lab, 'n2', false);
      const healed = Date.now() + 30_000;
      while ((await ipcacheIdentity(ctx, 'n2', clientIp)) !== intruder.identity && Date.now() < healed) await new Promise((r) => setTimeout(r, 25));
      ctx.check('after heal n2 knows the intruder\'s identity', (await ipcacheIdentity(ctx, 'n2', clientIp)) === intruder.identity);
      const mark = ctx.flows().length;
      // Stopped once n2 has dropped the SYN and its retransmit by policy (the client would only time out).
      const again = await untilRefused((signal) => echoSend(ctx.lab, 'intruder', 'tcp', serverIp, 8080, 'forbidden-again', ['--timeout', '2500'], signal),
        () => ctx.flows().slice(mark).filter((f) => f.node === 'n2' && f.saddr === clientIp && f.verdict === VERDICT_DROPPED && f.dropReason === DROP_POLICY).length >= 2);
      const denial = await ctx.waitForFlow((f) => ctx.flows().indexOf(f) >= mark && f.node === 'n2' && f.saddr === clientIp && f.verdict === VERDICT_DROPPED, 15_000);
      ctx.check('after heal the intruder is denied by policy (133)',
        again.exitCode !== 0 && !server.lines.some((l) => l.includes('forbidden-again')) && denial?.dropReason === DROP_POLICY,
        `drop reason ${denial?.dropReason}, source identity ${denial?.srcIdentity}`);
    } finally {
      await server.stop();
    }
  },
};
