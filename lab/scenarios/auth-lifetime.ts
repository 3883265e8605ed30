// Claim C9: an auth entry is not tied to the connection that made it. It
// stays in the auth map after the flow has closed — every later connection of
// the same identity pair passes without a drop — until the earlier NotAfter of
// the two SVIDs. Rotation (at 2/3 of the SVID life) re-authenticates and moves
// that expiration later; revocation (the identity is deleted) and policy
// changes make the agent's GC remove the entry. The evidence is the auth map
// itself, dumped over time.
//
// Short lifetimes make the whole life cycle fit in well under a minute: SVIDs
// live 30 s (rotation ~20 s after the agents fetched them), GC runs every 2 s.
import { echoSend, startEchoServer } from '../apps/pod-apps.ts';
import { addPod, deletePod } from '../compose/pods.ts';
import { sharedDumpIo } from '../datapath/map-writer.ts';
import { dumpAuth, toAuthExpiration, type AuthEntry } from '../datapath/auth.ts';
import { DROP_POLICY_AUTH_REQUIRED, IPPROTO_TCP, OBS_TO_ENDPOINT, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED, type AuthKey } from '../abi/generated.ts';
import type { FlowWithNode, Scenario, ScenarioContext } from './framework.ts';

const SVID_TTL_MS = 30_000;
const GC_INTERVAL_MS = 2_000;
const PORT = 8080;

const keyText = (k: AuthKey) => `${k.localSecLabel}:${k.remoteSecLabel}:${k.remoteNodeId}:${k.authType}`;
type Line = Record<string, unknown>;
const at = (l: Line | undefined) => (l ? Date.parse(String(l.time)) : NaN);

/** Polls `probe` until it yields a value or the deadline passes (no fixed sleeps). */
async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The latest 'svid-received' of an identity on a node, at or before `before` (ms). */
async function svidAt(ctx: ScenarioContext, node: string, identity: number, before = Infinity): Promise<Line | undefined> {
  return (await ctx.agentLog(node)).filter((l) => l.event === 'svid-received' && l.identity === identity && at(l) <= before).at(-1);
}

const earlier = (a: Line | undefined, b: Line | undefined) =>
  a && b ? Math.min(Date.parse(String(a.notAfter)), Date.parse(String(b.notAfter))) : NaN;

/** Expiration equal to an expected instant, in the map's unit (Unix ns >> 9: 512 ns). */
const sameExpiration = (e: AuthEntry | undefined, expectedMs: number) =>
  e !== undefined && Number.isFinite(expectedMs) && Math.abs(Number(e.expirationRaw - toAuthExpiration(expectedMs))) <= 1;

export const authLifetime: Scenario = {
  name: 'auth-lifetime',
  summary: 'an auth entry outlives its flow until the earlier SVID NotAfter; rotation moves it, revocation and GC remove it',
  claims: ['C9'],
  topology: 'topologies/two-node-auth.yaml',
  options: { svidTtlMs: SVID_TTL_MS, gcIntervalMs: GC_INTERVAL_MS },
  async run(ctx) {
    const t0 = Date.now();
    const rel = (ms: number) => `t+${((ms - t0) / 1000).toFixed(1)}s`;
    const serverIp = ctx.podIp('server');
    const clientIp = ctx.podIp('client');
    ctx.say(`SVIDs live ${SVID_TTL_MS / 1000} s (rotated at 2/3 of their life), the agents' auth-map GC runs every ${GC_INTERVAL_MS / 1000} s`);

    /** One auth-map dump of a node into the narrative: time, key, expiration (and what is left of it). */
    const dump = async (node: string, label: string): Promise<AuthEntry[]> => {
      const now = Date.now();
      const entries = await dumpAuth(ctx.lab, node);
      ctx.say(`  auth map ${node} @ ${rel(now)} (${label}): ${entries.length === 0 ? 'empty' : ''}`);
      for (const e of entries) {
        ctx.say(`    ${keyText(e.key)}  expires ${e.expiration.toISOString()} (${rel(e.expiration.getTime())}, ${((e.expiration.getTime() - now) / 1000).toFixed(1)} s left)`);
      }
      return entries;
    };

    // ---- 1. the entry outlives the flow that made it ----------------------------------
    ctx.say('1. client (n1) -> server (n2):8080, whose ingress policy requires authentication');
    const srv = await startEchoServer(ctx.lab, 'server', 'tcp', PORT);
    let key: AuthKey | undefined;
    let e1: AuthEntry | undefined;
    try {
      const isSyn = (f: FlowWithNode) => f.protocol === IPPROTO_TCP && f.saddr === clientIp && f.daddr === serverIp && f.dport === PORT && (f.tcpFlags & TCP_F_SYN) !== 0;
      const first = await echoSend(ctx.lab, 'client', 'tcp', serverIp, PORT, 'first-flow', ['--timeout', '20000']);
      ctx.check('the first connection completes (after the drop and the handshake) and closes', first.exitCode === 0 && first.stdout.includes('first-flow'),
        first.exitCode === 0 ? `${first.ms.toFixed(0)} ms` : first.stderr.trim());
      const drop = await ctx.waitForFlow((f) => isSyn(f) && f.verdict === VERDICT_DROPPED, 15_000);
      ctx.check('its first SYN was dropped on n2 for want of an auth entry (189)', drop?.dropReason === DROP_POLICY_AUTH_REQUIRED && drop.obsPoint === OBS_TO_ENDPOINT && drop.node === 'n2',
        drop ? `reason ${drop.dropReason} on ${drop.node}` : 'no drop seen');
      if (drop) key = { localSecLabel: drop.dstIdentity, remoteSecLabel: drop.srcIdentity, remoteNodeId: drop.remoteNodeId, authType: 1 };
      const k = key ? keyText(key) : '?';
      ctx.memo.set('key', k);
      const made = await ctx.waitForLog('n2', (l) => l.event === 'auth-completed' && l.key === k);
      ctx.check(`the agent on n2 wrote entry E = ${k}`, made !== undefined, made ? `why ${made.why}, expiration ${made.expiration}` : 'no auth-completed line');

      const entries = await dump('n2', 'after the first connection closed');
      e1 = entries.find((e) => keyText(e.key) === k);
      ctx.check('E is still in n2\'s auth map after its connection closed', e1 !== undefined && e1.expiration.getTime() > Date.now(),
        e1 ? `${((e1.expiration.getTime() - Date.now()) / 1000).toFixed(1)} s left` : `${entries.length} entries`);

      // E's expiration: the earlier NotAfter of the two SVIDs the handshake used.
      if (key && made) {
        const serverSvid = await svidAt(ctx, 'n2', key.localSecLabel, at(made));
        const clientSvid = await svidAt(ctx, 'n1', key.remoteSecLabel, at(made));
        const expected = earlier(serverSvid, clientSvid);
        ctx.say(`  SVIDs: server (identity ${key.localSecLabel}, n2) NotAfter ${serverSvid?.notAfter}; client (identity ${key.remoteSecLabel}, n1) NotAfter ${clientSvid?.notAfter}`);
        ctx.check('E expires at the earlier NotAfter of the two SVIDs (in 512 ns units)', sameExpiration(e1, expected),
          `entry ${e1?.expiration.toISOString()} (raw ${e1?.expirationRaw}), earlier NotAfter ${Number.isFinite(expected) ? new Date(expected).toISOString() : 'unknown'}`);
      }

      const before = ctx.flows().filter((f) => f.verdict === VERDICT_DROPPED).length;
      const mark = ctx.flows().length;
      const again = await echoSend(ctx.lab, 'client', 'tcp', serverIp, PORT, 'second-flow', ['--timeout', '20000']);
      // Drops are counted once n2 has reported its verdict on the new connection (the client may exit before it arrives).
      await ctx.waitForFlow((f) => ctx.flows().indexOf(f) >= mark && isSyn(f) && f.node === 'n2' && f.verdict === VERDICT_FORWARDED, 10_000);
      const after = ctx.flows().filter((f) => f.verdict === VERDICT_DROPPED).length;
      ctx.check('a NEW connection of the pair passes at once, with no drop (E outlived the first flow)',
        again.exitCode === 0 && again.stdout.includes('second-flow') && after === before,
        `${after - before} new drops, ${again.ms.toFixed(0)} ms`);
    } finally {
      await srv.stop();
    }
    if (!key || !e1) return; // nothing to follow

    // ---- 2. rotation moves the window --------------------------------------------------
    const k = keyText(key);
    ctx.say('2. rotation: each agent renews its SVIDs at 2/3 of their life and re-authenticates the entries that use them');
    const since = Date.now();
    const untilE1Expires = () => Math.max(0, e1!.expiration.getTime() - Date.now()) + 2000;
    const reauth = await ctx.waitForLog('n2', (l) => l.event === 'auth-completed' && l.key === k && l.why === 'rotation' && at(l) >= since - 1000, untilE1Expires());
    const rotated = reauth && (await svidAt(ctx, 'n2', key.localSecLabel, at(reauth)));
    ctx.check('the server SVID was rotated on n2 before E expired', rotated?.why === 'rotation' && at(rotated) < e1.expiration.getTime(),
      rotated ? `rotation at ${rel(at(rotated))}, new NotAfter ${rotated.notAfter}` : 'no rotation seen');
    ctx.check('n2 re-authenticated E after the rotation (auth-completed, why rotation)', reauth !== undefined,
      reauth ? `at ${rel(at(reauth))}, expiration ${reauth.expiration}` : 'no re-authentication');
    await dump('n2', 'after the first re-authentication');
    // The client SVID is renewed by n1 on its own clock. The window must follow both
    // renewed certificates: wait (at most until E's old expiration has passed) for the
    // map to show an expiration no earlier than the earlier of the two renewed NotAfters.
    const clientRotated = await until(async () => (await ctx.agentLog('n1')).find((l) => l.event === 'svid-received' && l.identity === key.remoteSecLabel && l.why === 'rotation'), untilE1Expires());
    ctx.check('the client SVID was rotated on n1 before E expired', clientRotated !== undefined && at(clientRotated) < e1.expiration.getTime(),
      clientRotated ? `rotation at ${rel(at(clientRotated))}, new NotAfter ${clientRotated.notAfter}` : 'no rotation seen');
    const renewed = earlier(await svidAt(ctx, 'n2', key.localSecLabel), clientRotated);
    const e2 = await until(async () => {
      const e = (await dumpAuth(ctx.lab, 'n2', sharedDumpIo())).find((x) => keyText(x.key) === k);
      return e && e.expiration.getTime() >= renewed ? e : undefined;
    }, untilE1Expires());
    const history = (await ctx.agentLog('n2')).filter((l) => l.event === 'auth-completed' && l.key === k)
      .map((l) => `${rel(at(l))} ${l.why} -> ${String(l.expiration).slice(11, 19)}`).join('; ');
    const gone = (await ctx.agentLog('n2')).find((l) => l.event === 'auth-gc' && l.key === k);
    await dump('n2', e2 ? 'after both SVIDs rotated' : 'after E\'s old expiration');
    ctx.check('E\'s expiration moved later, past the old NotAfters (the window follows both rotations)',
      e2 !== undefined && e2.expiration.getTime() > e1.expiration.getTime(),
      `${e1.expiration.toISOString()} -> ${e2 ? e2.expiration.toISOString() : gone ? `removed (${gone.why})` : 'unchanged'}; n2 auth-completed: ${history}`);
    ctx.check('the new expiration is the earlier NotAfter of the two renewed SVIDs', sameExpiration(e2, renewed),
      `expected ${Number.isFinite(renewed) ? new Date(renewed).toISOString() : '?'}, entry ${e2?.expiration.toISOString() ?? 'none'}`);

    // E may be gone (when the window did not follow the rotation): make it again so
    // that GC and revocation below are shown on a live entry.
    let current = e2;
    if (!current) {
      // Whatever window E got instead: let it run out (the certificate-driven deadline), then make E anew.
      await until(async () => {
        const e = (await dumpAuth(ctx.lab, 'n2', sharedDumpIo())).find((x) => keyText(x.key) === k);
        return !e || e.expiration.getTime() <= Date.now() ? true : undefined;
      }, SVID_TTL_MS);
      ctx.say('  E has run out: a new connection makes it again for the steps below');
      const again = await startEchoServer(ctx.lab, 'server', 'tcp', PORT);
      try {
        await echoSend(ctx.lab, 'client', 'tcp', serverIp, PORT, 'remake', ['--timeout', '20000']);
      } finally {
        await again.stop();
      }
      current = (await dump('n2', 'E made again')).find((x) => keyText(x.key) === k);
    }

    // ---- 3. GC: no policy requires it any more -----------------------------------------
    ctx.say('3. an entry no policy requires: a second server pod (app=server) on n1 authenticates the client, then goes away');
    const s2 = await addPod({ lab: ctx.lab, node: 'n1', pod: 'server2', labels: { app: 'server' } });
    ctx.check('server2 has the server\'s identity and is synced on n1', s2.identity === key.localSecLabel && s2.synced, `identity ${s2.identity}`);
    const k2 = keyText({ localSecLabel: key.localSecLabel, remoteSecLabel: key.remoteSecLabel, remoteNodeId: 0, authType: 1 });
    const srv2 = await startEchoServer(ctx.lab, 'server2', 'tcp', PORT);
    try {
      const r = await echoSend(ctx.lab, 'client', 'tcp', s2.ip, PORT, 'same-node', ['--timeout', '20000']);
      const made2 = await ctx.waitForLog('n1', (l) => l.event === 'auth-completed' && l.key === k2);
      ctx.check(`client reaches server2 on n1 after n1 wrote ${k2}`, r.exitCode === 0 && made2 !== undefined, r.exitCode === 0 ? undefined : r.stderr.trim());
    } finally {
      await srv2.stop();
    }
    await dump('n1', 'with server2');
    const removed = Date.now();
    await deletePod(ctx.lab, 'server2');
    const gc2 = await ctx.waitForLog('n1', (l) => l.event === 'auth-gc' && l.key === k2 && at(l) >= removed, GC_INTERVAL_MS + 30_000);
    ctx.check('with server2 gone, the server identity lives on (n2) but no policy on n1 requires the entry: GC removes it',
      gc2?.why === 'no policy requires it', gc2 ? `why "${gc2.why}", trigger ${gc2.trigger}, at ${rel(at(gc2))}` : 'no auth-gc line');
    const n1After = await dump('n1', 'after server2 was deleted');
    ctx.check('n1\'s auth map no longer holds it', !n1After.some((e) => keyText(e.key) === k2));
    ctx.check('E on n2 is untouched (another node, another local endpoint)', current !== undefined && (await dumpAuth(ctx.lab, 'n2')).some((e) => keyText(e.key) === k));

    // ---- 4. revocation -----------------------------------------------------------------
    ctx.say('4. revocation: the client pod is deleted; it was its identity\'s only pod, so the identity is deleted');
    // E as it is now: a later rotation may have moved its expiration again since step 2.
    const live = (await dump('n2', 'before the revocation')).find((e) => keyText(e.key) === k);
    if (live) current = live;
    const deleted = Date.now();
    await deletePod(ctx.lab, 'client');
    const gc = await ctx.waitForLog('n2', (l) => l.event === 'auth-gc' && l.key === k && at(l) >= deleted, GC_INTERVAL_MS + 30_000);
    ctx.check('GC on n2 removes E because its identity was deleted', gc?.why === 'identity deleted',
      gc ? `why "${gc.why}", trigger ${gc.trigger}, ${at(gc) - deleted} ms after the delete` : 'no auth-gc line');
    const last = await dump('n2', 'after the revocation');
    const remaining = last.find((e) => keyText(e.key) === k);
    // Judged on the GC line's own time, not on when this check runs: a slow machine reaches it later.
    const removedAt = gc ? at(gc) : NaN;
    ctx.check('the dump no longer has E — removed before its certificate expiry', live !== undefined && remaining === undefined && removedAt < live.expiration.getTime(),
      live ? `removed at ${rel(removedAt)}; it would have lasted until ${live.expiration.toISOString()} (${((live.expiration.getTime() - removedAt) / 1000).toFixed(1)} s more)` : 'E was not in n2\'s map before the delete');
  },
};
