// Captures started by hand open right in Wireshark. On a real lab in
// Cilium's recommended mode (VXLAN inside WireGuard, mutual auth, agents),
// while a new flow authenticates (its first SYN dropped with 189, the agents'
// TLS 1.3 handshake on 4250):
//  - `mtless capture LAB LINK… -w DIR` writes files (merged and per link)
//    that embed the lab's TLS key log and WireGuard keys (two Decryption
//    Secrets Blocks, the section comment naming each key's node) and carry
//    the drop comment on the dropped SYN, in merged.pcapng and in the file
//    of the link it was matched on; plain tshark sees the comments, but takes
//    4250 for GSM over IP and 8472 for plain UDP; with the lab's profile
//    (installed in a temporary HOME by `mtless wireshark-profile --install`)
//    or through `mtless tshark`, the certificates decrypt to the SPIFFE IDs
//    and the VNIs (source identities) show;
//  - `--no-secrets` leaves the secrets out;
//  - `mtless capture LAB LINK -w -` streams the secrets as they appear,
//    ahead of the packets that need them: a re-authentication decrypts in
//    one pass of tshark, as Wireshark reads a live capture.
import t from 'tap';
import { execa, type ResultPromise } from 'execa';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { destroyLab } from '../../lab/compose/down.ts';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { wgIfname } from '../../lab/core/names.ts';
import { readState } from '../../lab/core/state.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { captureInfo } from '../../lab/capture/assert.ts';
import { linkFileName } from '../../lab/capture/links.ts';
import { PROFILE_NAME } from '../../lab/capture/profile.ts';
import { readCapture, SECRETS_TLS_KEYLOG, SECRETS_WIREGUARD } from '../../lab/capture/pcapng.ts';
import { deleteAuthEntry, dumpAuth } from '../../lab/datapath/auth.ts';
import { readWgInfo } from '../../lab/wireguard/wireguard.ts';
import { AUTH_PORT, VXLAN_PORT } from '../../lab/abi/generated.ts';
import { echoSend, LAB_CLI, labCli, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

const LAB = 't-capture-ws';
const DROP = 'DROPPED: Authentication required (189) at n2/to-container of server';

/** Resolves once `text` appears in the child's stderr (the CLI says so when every capture point listens). */
function stderrSays(child: ResultPromise, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" after ${timeoutMs} ms: ${err}`)), timeoutMs);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes(text)) (clearTimeout(timer), resolve());
    });
    void child.then((r) => (clearTimeout(timer), reject(new Error(`exited (${r.exitCode}) before "${text}": ${err}`))), () => undefined);
  });
}

/** The workloads' SPIFFE IDs among tshark's x509ce.uniformResourceIdentifier lines (the CA's own URI is the bare trust domain). */
const workloadIds = (lines: string[]) => [...new Set(lines.flatMap((l) => l.split(',')).filter((u) => u.includes('/identity/')))].sort();

/** tshark on a file with a HOME of our choosing: the profile is there or not. */
async function tshark(home: string, args: string[]): Promise<string[]> {
  const r = await execa('tshark', args, { env: { HOME: home, PATH: process.env.PATH } });
  return r.stdout.split('\n').filter(Boolean);
}

t.test('hand-run captures of a tunnel + WireGuard lab with mutual auth', { skip: needsRoot }, async (t) => {
  await destroyLab(LAB);
  const tmp = await mkdtemp(join(tmpdir(), 'capture-ws-'));
  const home = join(tmp, 'home'); // gets the profile
  const bare = join(tmp, 'bare'); // never has one
  await mkdir(bare, { recursive: true });
  try {
    const topology = await loadTopologyFile(resolve(REPO, 'topologies/two-node-tunnel-wireguard.yaml'));
    await upWithDatapath(topology, { name: LAB });
    const state = (await readState(LAB))!;
    const pod = (name: string) => state.pods.find((p) => p.name === name)!;
    const wg2 = `n2/${wgIfname(LAB, 'n2')}`;
    const links = ['fabric/underlay', 'n1/lxc-client', wg2];
    const wgInfo = await readWgInfo(LAB);

    const installed = await labCli(['wireshark-profile', '--install'], { env: { HOME: home } });
    t.equal(installed.exitCode, 0, installed.all);
    t.match(installed.stdout, `installed: ${home}/.config/wireshark/profiles/${PROFILE_NAME}`);

    const server = await startEchoServer(LAB, 'server', 'tcp', 8080);
    try {
      // ---- -w DIR while a new flow authenticates ------------------------------------------------
      const dir = join(tmp, 'by-hand');
      const capture = execa(LAB_CLI, ['capture', LAB, ...links, '-w', dir], { reject: false });
      await stderrSays(capture, 'capturing 3 links', 60_000);
      const echo = await echoSend(LAB, 'client', 'tcp', pod('server').ip, 8080, 'hand-run-secret', ['--timeout', '20000']);
      t.equal(echo.exitCode, 0, 'client (n1) -> server (n2):8080 got through after the handshake');
      capture.kill('SIGINT');
      const done = await capture;
      t.equal(done.exitCode, 0, `mtless capture stopped well on SIGINT: ${done.stderr}`);
      t.match(done.stderr, /drops: [1-9]\d* of [1-9]\d* commented/, 'it saw the drop and commented it');
      t.match(done.stderr, /secrets: TLS secrets embedded: .*; WireGuard keys embedded/, 'and says what it embedded');

      const files = Object.fromEntries(['merged', ...links].map((l) => [l, join(dir, l === 'merged' ? 'merged.pcapng' : linkFileName(l))]));
      t.same((await readdir(dir)).sort(), Object.values(files).map((f) => f.slice(dir.length + 1)).sort(), 'merged.pcapng and one file per link, nothing else');
      for (const [name, file] of Object.entries(files)) {
        const info = await captureInfo(file);
        t.equal(info.secrets, 2, `${name}: two decryption secrets blocks (TLS key log, WireGuard keys)`);
        const c = readCapture(await readFile(file));
        t.same(c.secrets.map((s) => s.type).sort(), [SECRETS_TLS_KEYLOG, SECRETS_WIREGUARD].sort());
        const comment = info.comments.join('\n');
        // The agents write their keys into the key log as they start, in no fixed order.
        for (const n of wgInfo.nodes) {
          const named = comment.match(new RegExp(`key (\\d+) = node ${n.node} \\(public key ([^,]+),`));
          t.equal(named?.[2], n.publicKey, `${name}: the comment names a WireGuard key (key ${named?.[1]}) as ${n.node}'s, with its public key`);
        }
        t.match(comment, /TLS secrets embedded: the lab's key log \/run\/mtless-lab\/t-capture-ws\/tls-keylog\.txt \([1-9]\d* handshakes so far\)/);
        t.match(comment, /mtless wireshark FILE/, `${name}: the comment says how to open it`);
      }

      // Drop comments: plain tshark sees them; on the WireGuard device the SYN shows decrypted (in the underlay it is inside WireGuard).
      const commented = (file: string) => tshark(bare, ['-r', file, '-Y', `frame.comment == "${DROP}"`, '-T', 'fields', '-e', 'frame.interface_name']);
      const inMerged = await commented(files.merged!);
      t.ok(inMerged.length >= 1, `merged.pcapng: ${inMerged.length} dropped SYN commented`);
      t.same([...new Set(inMerged)], [wg2], 'matched where the packet was seen last, decrypted: n2\'s WireGuard device');
      t.equal((await commented(files[wg2]!)).length, inMerged.length, `${wg2}'s own file carries the same comments`);
      t.equal((await commented(files['fabric/underlay']!)).length, 0, 'the underlay file has none (the SYN is inside WireGuard there)');
      t.equal((await commented(files['n1/lxc-client']!)).length, 0, 'nor the client veth file (a comment goes on one frame)');

      // Without the profile: 4250 is GSM over IP, 8472 plain UDP.
      t.same(await tshark(bare, ['-r', files.merged!, '-Y', 'tls.handshake.certificate']), [], 'plain tshark: no certificate (4250 is GSM over IP to Wireshark 4.0)');
      t.ok((await tshark(bare, ['-r', files.merged!, '-Y', `tcp.port == ${AUTH_PORT} && gsm_ipa`])).length > 0, 'it dissects the handshake as gsm_ipa');
      t.same(await tshark(bare, ['-r', files[wg2]!, '-Y', 'vxlan']), [], `plain tshark: udp/${VXLAN_PORT} is not VXLAN`);

      // With the profile: the certificates decrypt to the SPIFFE IDs, the VNIs show.
      const uris = async (args: string[], h: string) =>
        workloadIds(await tshark(h, [...args, '-r', files.merged!, '-Y', 'tls.handshake.type == 11', '-T', 'fields', '-e', 'x509ce.uniformResourceIdentifier']));
      const want = [pod('client').identity, pod('server').identity].map((id) => `spiffe://spiffe.cilium/identity/${id}`).sort();
      t.same(await uris(['-C', PROFILE_NAME], home), want, `tshark -C ${PROFILE_NAME}: both certificates of the 4250 handshake, decrypted by the embedded key log`);
      const vnis = await tshark(home, ['-C', PROFILE_NAME, '-r', files[wg2]!, '-Y', `vxlan && ip.src == ${pod('client').ip} && ip.dst == ${pod('server').ip}`, '-T', 'fields', '-e', 'vxlan.vni']);
      t.ok(vnis.length > 0, `${vnis.length} VXLAN packets client -> server on ${wg2}`);
      t.same([...new Set(vnis)], [String(pod('client').identity)], 'their VNI is the client\'s identity');

      // `mtless tshark`: the profile when installed, the same decodes as options when not.
      for (const [h, how] of [[home, 'installed'], [bare, 'not installed']] as const) {
        const r = await labCli(['tshark', files.merged!, '-Y', 'tls.handshake.type == 11', '-T', 'fields', '-e', 'x509ce.uniformResourceIdentifier'], { env: { HOME: h } });
        t.equal(r.exitCode, 0, `mtless tshark exits 0 (profile ${how})`);
        t.same(workloadIds(r.stdout.split('\n').filter(Boolean)), want, `mtless tshark, profile ${how}: the SPIFFE IDs`);
      }

      // ---- --no-secrets ---------------------------------------------------------------------------
      const plainDir = join(tmp, 'no-secrets');
      const plain = execa(LAB_CLI, ['capture', LAB, 'n1/lxc-client', '-w', plainDir, '--no-secrets'], { reject: false });
      await stderrSays(plain, 'capturing 1 links', 60_000);
      await echoSend(LAB, 'client', 'tcp', pod('server').ip, 8080, 'no-secrets', ['--timeout', '20000']);
      plain.kill('SIGINT');
      t.equal((await plain).exitCode, 0);
      for (const f of ['merged.pcapng', linkFileName('n1/lxc-client')]) {
        const info = await captureInfo(join(plainDir, f));
        t.equal(info.secrets, 0, `--no-secrets: ${f} has no secrets`);
        t.notMatch(info.comments.join('\n'), /secrets embedded|keys embedded/);
        t.ok(info.packets > 0);
      }

      // ---- -w -: a re-authentication, decrypted from the stream in one pass ----------------------
      for (const n of state.nodes) for (const e of await dumpAuth(LAB, n.name)) await deleteAuthEntry(LAB, n.name, e.key);
      const chunks: Buffer[] = [];
      const stream = execa(LAB_CLI, ['capture', LAB, 'fabric/underlay', '-w', '-'], { reject: false, encoding: 'buffer' });
      stream.stdout!.on('data', (d: Buffer) => chunks.push(d));
      await stderrSays(stream, 'capturing fabric/underlay', 60_000);
      const again = await echoSend(LAB, 'client', 'tcp', pod('server').ip, 8080, 'streamed', ['--timeout', '20000']);
      t.equal(again.exitCode, 0, 'with its auth entry gone the flow authenticates again');
      stream.kill('SIGINT');
      t.equal((await stream).exitCode, 0);
      const streamed = join(tmp, 'stream.pcapng');
      await writeFile(streamed, Buffer.concat(chunks));
      const sinfo = await captureInfo(streamed);
      t.ok(sinfo.secrets >= 3, `${sinfo.secrets} secrets blocks: the key logs at the start, then the new handshake's lines`);
      const live = workloadIds(await tshark(home, ['-C', PROFILE_NAME, '-r', streamed, '-Y', 'tls.handshake.type == 11', '-T', 'fields', '-e', 'x509ce.uniformResourceIdentifier']));
      t.same(live, want, 'one pass over the stream decrypts the new handshake: its key came before its packets');
    } finally {
      await server.stop();
    }
  } finally {
    await destroyLab(LAB);
    await rm(tmp, { recursive: true, force: true });
  }
  t.same(await labLeftovers(LAB), [], 'nothing of the lab is left (no tcpdump, no flow reader)');
});
