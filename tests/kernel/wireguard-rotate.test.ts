// WireGuard keys through the control plane, on a real lab with agents
// (two-node-wireguard.yaml without its policies, so pods ping freely):
//  - each agent made its node's key (0600 in the node's state), published
//    the public key, and every node's peers came from the control plane;
//    no private key is in the control plane's state or log;
//  - `mtless wireguard rotate` on n1: new key on n1, published, n2 follows,
//    the ping goes through again;
//  - the design's consequence: with n2 partitioned from the control plane,
//    a rotation on n1 never reaches n2. n1 retries its handshake initiation
//    (with its new key) on UDP 51871 and n2 never answers, pings fail; after
//    the heal n2 takes the new key from the stream, answers, pings pass.
//    Asserted on the underlay capture, in windows taken from the agents' own
//    log timestamps.
import t from 'tap';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { destroyLab } from '../../lab/compose/down.ts';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { partitionNode } from '../../lab/compose/pods.ts';
import { rotateWireguardKey } from '../../lab/compose/wireguard-keys.ts';
import { controlState } from '../../lab/control/client.ts';
import { readState } from '../../lab/core/state.ts';
import { daemonLogFile, stateDir, wgKeyFile, wgKeyLogFile } from '../../lab/core/names.ts';
import { startCapture } from '../../lab/capture/capture.ts';
import { UNDERLAY_LINK } from '../../lab/capture/links.ts';
import { frames } from '../../lab/capture/assert.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { WG_DECODE_AS } from '../../lab/wireguard/capture.ts';
import { wgFingerprint, wgPublicKey, wgShow, WG_ROLE } from '../../lab/wireguard/index.ts';
import { WG_PORT } from '../../lab/abi/generated.ts';
import { labCli, labLeftovers, needsRoot, ping, REPO } from '../helpers/kernel.ts';

const LAB = 't-wg-rotate';
const DEADLINE_MS = 30_000;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = DEADLINE_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Each JSON line of an agent's log. */
async function agentLog(node: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(daemonLogFile(LAB, node, 'agent'), 'utf8');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

const peerKeys = async (node: string, netns: string) => (await wgShow(LAB, node, netns)).peers.map((p) => p.publicKey);

t.test('wireguard keys: published by the agents, rotated, and a partitioned peer left behind until heal', { skip: needsRoot }, async (t) => {
  await destroyLab(LAB);
  const base = await loadTopologyFile(resolve(REPO, 'topologies/two-node-wireguard.yaml'));
  const outDir = await mkdtemp(join(tmpdir(), 'wg-rotate-'));
  try {
    const plan = await upWithDatapath({ ...base, policies: [] }, { name: LAB });
    const [n1, n2] = plan.nodes as [typeof plan.nodes[0], typeof plan.nodes[0]];
    const serverIp = n2.pods[0]!.ip;
    const state = (await readState(LAB))!;

    // ---- keys made on the nodes, published, peers from the control plane ---------------
    const snap = (await controlState(LAB)).snapshot;
    const published = new Map(snap.nodes.map((n) => [n.name, n.wireguardPublicKey]));
    const privateKeys: string[] = [];
    for (const n of plan.nodes) {
      const file = wgKeyFile(LAB, n.name);
      t.equal((await stat(file)).mode & 0o777, 0o600, `${n.name}: private key file ${file} is 0600`);
      const priv = (await readFile(file, 'utf8')).trim();
      privateKeys.push(priv);
      const s = await wgShow(LAB, n.name, n.netns);
      t.equal(published.get(n.name), wgPublicKey(priv), `${n.name}: the control plane holds the public key of the node's own private key`);
      t.equal(s.publicKey, published.get(n.name), `${n.name}: its device runs with that key`);
      const other = plan.nodes.find((o) => o !== n)!;
      t.same(s.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps.join(',')]), [[published.get(other.name), `${other.underlayIp}:${WG_PORT}`, other.podCidr]],
        `${n.name}: its one peer is ${other.name} as the control plane published it`);
      t.ok((await agentLog(n.name)).some((l) => l.event === 'wireguard-key-published' && l.publicKey === published.get(n.name)), `${n.name}: its agent logged the publication`);
    }
    const cp = state.processes.find((p) => p.role === 'control-plane')!;
    const cpText = JSON.stringify(await controlState(LAB)) + (await readFile(cp.logFile!, 'utf8')) + (await readFile(`${stateDir(LAB)}/control/registry.json`, 'utf8').catch(() => ''));
    t.ok(privateKeys.every((k) => !cpText.includes(k)), 'no private key in the control plane\'s state, registry or log');
    t.equal((await ping(LAB, 'client', serverIp)).exitCode, 0, 'client (n1) pings server (n2) through WireGuard');

    // ---- rotation, everyone connected -------------------------------------------------
    const rot = labCli(['wireguard', 'rotate', LAB, 'n1']);
    const out = await rot;
    const key1 = (await controlState(LAB)).snapshot.nodes.find((n) => n.name === 'n1')!.wireguardPublicKey!;
    t.equal(out.exitCode, 0, `mtless wireguard rotate exits 0 (${out.stderr.trim()})`);
    t.not(key1, published.get('n1'), 'n1 published a new key');
    t.match(out.stdout, `n1: WireGuard key ${wgFingerprint(published.get('n1')!)} -> ${wgFingerprint(key1)}`, 'it prints the old and new fingerprints');
    t.match(out.stdout, /n2: has the new key after \d+ ms/, 'and that n2 followed');
    t.same(await peerKeys('n2', n2.netns), [key1], 'n2\'s only peer for n1 is the new key');
    t.equal((await wgShow(LAB, 'n1', n1.netns)).publicKey, key1, 'n1\'s device runs with it');
    t.equal(wgPublicKey((await readFile(wgKeyFile(LAB, 'n1'), 'utf8')).trim()), key1, 'and its key file holds the new private key');
    t.equal((await until('ping after rotation', async () => ((await ping(LAB, 'client', serverIp)).exitCode === 0 ? true : undefined))), true, 'the ping goes through with the new key');

    // ---- rotation while n2 is partitioned -----------------------------------------
    const capture = await startCapture(state, [UNDERLAY_LINK], outDir);
    await partitionNode(LAB, 'n2', true);
    const wgLog = daemonLogFile(LAB, 'n1', WG_ROLE);
    const logMark = (await readFile(wgLog, 'utf8')).length;
    const cut = await rotateWireguardKey(LAB, 'n1');
    const key2 = cut.newKey;
    t.equal(cut.oldKey, key1, 'second rotation starts from the key of the first');
    t.match(cut.peers, [{ node: 'n2', ms: undefined, note: /partitioned/ }], 'rotate reports n2 as partitioned, not followed');
    t.same(await peerKeys('n2', n2.netns), [key1], 'n2 still holds n1\'s old key');
    const failed = await ping(LAB, 'client', serverIp);
    t.not(failed.exitCode, 0, 'the ping fails while n2 is partitioned');
    // n1 retransmits its initiation every REKEY_TIMEOUT (5 s) while it gets no answer: wait for the second one in its log.
    await until('a retried handshake initiation', async () => {
      const text = (await readFile(wgLog, 'utf8')).slice(logMark);
      return (text.match(/Sending handshake initiation/g)?.length ?? 0) >= 2 ? true : undefined;
    });
    t.not((await ping(LAB, 'client', serverIp)).exitCode, 0, 'still failing after n1 retried');

    await partitionNode(LAB, 'n2', false);
    await until('n2 takes the new key after the heal', async () => ((await peerKeys('n2', n2.netns)).join() === key2 ? true : undefined));
    const healed = await until('ping after heal', async () => ((await ping(LAB, 'client', serverIp)).exitCode === 0 ? true : undefined));
    t.ok(healed, 'after the heal the ping goes through again');
    const result = await capture.stop();

    // ---- the packets, in windows from the agents' own timestamps -------------------------
    const rotatedAt = Date.parse(String((await agentLog('n1')).find((l) => l.event === 'wireguard-key-rotated' && l.publicKey === key2)?.time));
    const followedAt = Date.parse(String((await agentLog('n2')).find((l) => l.event === 'wireguard-peers' && Array.isArray(l.added) && l.added.includes(wgFingerprint(key2)))?.time));
    t.ok(rotatedAt > 0 && followedAt > rotatedAt, `n1 rotated, then n2 followed ${followedAt - rotatedAt} ms later (agent logs)`);
    const file = result.links.find((l) => l.link === UNDERLAY_LINK)!.file;
    const rows = await frames(file, 'wg.type == 1 || wg.type == 2', ['frame.time_epoch', 'ip.src', 'ip.dst', 'wg.type', 'wg.static'], { decodeAs: [WG_DECODE_AS] });
    const msgs = rows.map((r) => ({ at: Number(r['frame.time_epoch']) * 1000, src: r['ip.src'], dst: r['ip.dst'], type: Number(r['wg.type']), static: r['wg.static'] }));
    const during = (m: { at: number }) => m.at >= rotatedAt && m.at < followedAt;
    const inits = msgs.filter((m) => during(m) && m.type === 1 && m.src === n1.underlayIp && m.dst === n2.underlayIp);
    const answers = msgs.filter((m) => m.type === 2 && m.src === n2.underlayIp && m.dst === n1.underlayIp);
    t.ok(inits.length >= 2, `partitioned: n1 sent ${inits.length} handshake initiations to n2 on UDP ${WG_PORT} (retries)`);
    t.ok(inits.every((m) => m.static === key2), 'each carries n1\'s new static key (decrypted with n2\'s key from the key log)');
    t.equal(answers.filter(during).length, 0, 'n2 answered none of them: it does not know that key');
    t.ok(answers.some((m) => m.at >= followedAt), 'after n2 took the new key from the control plane, it answered a handshake');
    const keyLog = (await readFile(wgKeyLogFile(LAB), 'utf8')).trim().split('\n');
    t.same(keyLog.map((l) => wgPublicKey(l.replace('LOCAL_STATIC_PRIVATE_KEY = ', ''))).sort(), [published.get('n1'), published.get('n2'), key1, key2].sort(),
      'the key log holds every key ever used (old captures still decrypt)');
  } finally {
    await destroyLab(LAB);
    await rm(outDir, { recursive: true, force: true });
  }
  t.same(await labLeftovers(LAB), [], 'nothing of the lab left');
});
