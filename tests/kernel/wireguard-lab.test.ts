// WireGuard (wireguard-go) on a real lab: bring-up, pods of two nodes reach
// each other through the tunnel, `wg show` has one peer per other node, and
// teardown leaves no process, no UAPI socket and no namespace. Built with
// upLab + WIREGUARD_STEP alone (no BPF datapath): the tunnel is under test.
import t from 'tap';
import { readdir, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { upLab } from '../../lab/compose/up.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { readState } from '../../lab/core/state.ts';
import { isAlive } from '../../lab/core/processes.ts';
import { wgIfname } from '../../lab/core/names.ts';
import { run } from '../../lab/kernel/run.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { FAIL_AFTER_ENV } from '../../lab/compose/up.ts';
import { readWgInfo, wgShow, wgSocket, WG_ROLE, WG_SOCKET_DIR, WIREGUARD_STEP } from '../../lab/wireguard/index.ts';
import { WG_PORT } from '../../lab/abi/generated.ts';
import { labLeftovers, needsRoot, ping, REPO } from '../helpers/kernel.ts';
import { wgKeyFile, wgKeyLogFile } from '../../lab/core/names.ts';

const TOPOLOGY = resolve(REPO, 'topologies/two-node-wireguard.yaml');

async function socketsOf(lab: string, nodes: string[]): Promise<string[]> {
  const present = new Set(await readdir(WG_SOCKET_DIR).catch(() => [] as string[]));
  return nodes.map((n) => `${wgIfname(lab, n)}.sock`).filter((f) => present.has(f));
}

t.test('wireguard lab: up, tunnel, wg show, down', { skip: needsRoot }, async (t) => {
  const lab = 't-wg-lab';
  await destroyLab(lab);
  const topology = await loadTopologyFile(TOPOLOGY);
  let pids: number[] = [];
  try {
    const plan = await upLab(topology, { name: lab, extraSteps: [WIREGUARD_STEP] });
    const state = (await readState(lab))!;
    const wg = state.processes.filter((p) => p.role === WG_ROLE);
    pids = wg.map((p) => p.pid);
    t.equal(wg.length, 2, 'one wireguard-go per node, recorded in the state');
    t.ok(wg.every((p) => isAlive(p.pid)), 'they run');
    const environ = await readFile(`/proc/${wg[0]!.pid}/environ`, 'latin1');
    t.match(environ, `MTLAB_TAG=mtless-lab:${lab}:${wg[0]!.node}:wireguard`, 'tagged for `mtless down`');
    const comm = (await readFile(`/proc/${wg[0]!.pid}/comm`, 'utf8')).trim();
    t.equal(comm, 'wireguard-go', 'the recorded pid is wireguard-go itself (nsenter execs it, -f keeps it in the foreground)');

    for (const n of plan.nodes) {
      const key = await stat(wgKeyFile(lab, n.name));
      t.equal(key.mode & 0o777, 0o600, `${n.name}: private key file is 0600`);
      t.ok((await stat(wgSocket(wgIfname(lab, n.name)))).isSocket(), `${n.name}: UAPI socket exists`);
    }
    const info = await readWgInfo(lab);
    const keylog = (await readFile(wgKeyLogFile(lab), 'utf8')).trim().split('\n');
    t.equal(keylog.length, 2, 'key log: one line per node');
    t.ok(keylog.every((l) => /^LOCAL_STATIC_PRIVATE_KEY = [A-Za-z0-9+/]{43}=$/.test(l)), 'key log lines in Wireshark format');
    t.equal((await stat(wgKeyLogFile(lab))).mode & 0o777, 0o600, 'key log is 0600');

    // Routes: the other node's pod CIDR goes into the tunnel, not via eth0.
    for (const n of plan.nodes) {
      const other = plan.nodes.find((o) => o !== n)!;
      const route = (await run(['ip', '-o', 'route', 'get', other.pods[0]!.ip], { netns: n.netns })).stdout;
      t.match(route, `dev ${wgIfname(lab, n.name)}`, `${n.name}: ${other.pods[0]!.ip} is routed into its WireGuard device`);
    }

    // Pods of n1 reach the pod of n2 through the tunnel.
    const server = plan.nodes[1]!.pods[0]!.ip;
    for (const pod of ['client', 'other']) {
      const r = await ping(lab, pod, server);
      t.equal(r.exitCode, 0, `${pod} (n1) pings server (n2) through WireGuard`);
    }
    const sameNode = await ping(lab, 'local', plan.nodes[0]!.pods[0]!.ip);
    t.equal(sameNode.exitCode, 0, 'local pings client on the same node');

    for (const n of plan.nodes) {
      const s = await wgShow(lab, n.name, n.netns);
      const other = info.nodes.find((x) => x.node !== n.name)!;
      t.equal(s.listenPort, WG_PORT, `${n.name}: listens on ${WG_PORT}`);
      t.equal(s.publicKey, info.nodes.find((x) => x.node === n.name)!.publicKey, `${n.name}: runs with its node key`);
      t.equal(s.peers.length, 1, `${n.name}: one peer`);
      t.equal(s.peers[0]!.publicKey, other.publicKey, `${n.name}: the peer is ${other.node}'s node key`);
      t.equal(s.peers[0]!.endpoint, `${other.underlayIp}:${WG_PORT}`, `${n.name}: endpoint is ${other.node}'s underlay address`);
      t.same(s.peers[0]!.allowedIps, [other.podCidr], `${n.name}: allowed-ips is ${other.node}'s pod CIDR`);
      t.ok(s.peers[0]!.latestHandshake > 0 && s.peers[0]!.rxBytes > 0 && s.peers[0]!.txBytes > 0, `${n.name}: handshake done, bytes both ways`);
    }
  } finally {
    await destroyLab(lab);
  }
  t.same(pids.filter(isAlive), [], 'no wireguard-go left');
  t.same(await socketsOf(lab, ['n1', 'n2']), [], `no socket of the lab in ${WG_SOCKET_DIR}`);
  t.same(await labLeftovers(lab), [], 'no namespace, state or tagged process left');
});

t.test('wireguard lab: a failure after the step rolls everything back', { skip: needsRoot }, async (t) => {
  const lab = 't-wg-fail';
  await destroyLab(lab);
  const topology = await loadTopologyFile(TOPOLOGY);
  process.env[FAIL_AFTER_ENV] = WIREGUARD_STEP.name;
  try {
    await t.rejects(upLab(topology, { name: lab, extraSteps: [WIREGUARD_STEP] }), /failure injected after step "wireguard"/);
  } finally {
    delete process.env[FAIL_AFTER_ENV];
    await destroyLab(lab);
  }
  const ps = await run(['ps', '-eo', 'pid,comm']);
  const wgProcs = [];
  for (const line of ps.stdout.split('\n').filter((l) => l.includes('wireguard-go'))) {
    const pid = Number(line.trim().split(/\s+/)[0]);
    const env = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    if (env.includes(`mtless-lab:${lab}:`)) wgProcs.push(pid);
  }
  t.same(wgProcs, [], 'no wireguard-go of the lab left');
  t.same(await socketsOf(lab, ['n1', 'n2']), [], `no socket of the lab in ${WG_SOCKET_DIR}`);
  t.same(await labLeftovers(lab), [], 'nothing of the lab left');
});
