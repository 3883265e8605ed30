// Captures on a real two-node lab: named links in one merged pcapng, the
// secret in plaintext where it should be, idle links valid and empty,
// failures (unknown link, missing device, killed tcpdump, full disk) reported
// by link, drop comments, embedded TLS secrets, streaming, SIGINT. The lab is
// always destroyed and nothing of it (no tcpdump) is left.
import t from 'tap';
import { execa } from 'execa';
import { appendFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod, type LabPlan } from '../../lab/core/plan.ts';
import { podNetns } from '../../lab/core/names.ts';
import { findTaggedProcesses } from '../../lab/core/processes.ts';
import { readState } from '../../lab/core/state.ts';
import { upLab } from '../../lab/compose/up.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { CaptureError, rawTapFile, startCapture, streamCapture } from '../../lab/capture/capture.ts';
import { UnknownLinkError, resolveLink } from '../../lab/capture/links.ts';
import { LINKTYPE_ETHERNET, readCapture } from '../../lab/capture/pcapng.ts';
import { annotatePackets, mergeLinkCaptures } from '../../lab/capture/merge.ts';
import { captureInfo, countMany, frames, payloadContains, plaintextFilter, tlsCertificateUriSans } from '../../lab/capture/assert.ts';
import { AUTH_PORT } from '../../lab/abi/generated.ts';
import { MERGED_FILE, ScenarioFailedError, withScenarioCapture, type ScenarioContext } from '../../lab/capture/scenario.ts';
import { installProfile, PROFILE_NAME, wiresharkConfigDir } from '../../lab/capture/profile.ts';
import { echoSend, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

const LAB = 't-capture';
const LINKS = ['fabric/underlay', 'n1/lxc-client', 'n2/lxc-server'];
const SYN = 'tcp.flags.syn == 1 && tcp.flags.ack == 0';

/** Capture processes of this lab still running, found like `mtless down` finds them: MTLAB_TAG in their environment. */
async function labCaptures(): Promise<string[]> {
  return (await findTaggedProcesses(LAB)).filter((p) => p.tag.endsWith(':capture')).map((p) => `${p.pid} ${p.tag}`);
}

/** The blocks of a pcapng (little-endian, as the lab writes it): type and body. */
function pcapngBlocks(buf: Buffer): { type: number; body: Buffer }[] {
  const blocks: { type: number; body: Buffer }[] = [];
  for (let o = 0; o + 12 <= buf.length;) {
    const len = buf.readUInt32LE(o + 4);
    blocks.push({ type: buf.readUInt32LE(o), body: buf.subarray(o + 8, o + len - 4) });
    o += len;
  }
  return blocks;
}

/** TCP SYN (no ACK) from src to dst:dport in an Ethernet frame. */
function isSyn(frame: Buffer, want: { src: string; dst: string; dport: number }): boolean {
  if (frame.length < 14 + 20 || frame.readUInt16BE(12) !== 0x0800 || frame[14 + 9] !== 6) return false;
  const ip = (at: number) => Array.from(frame.subarray(at, at + 4)).join('.');
  const tcp = 14 + (frame[14]! & 0x0f) * 4;
  if (frame.length < tcp + 14 || ip(14 + 12) !== want.src || ip(14 + 16) !== want.dst || frame.readUInt16BE(tcp + 2) !== want.dport) return false;
  return (frame[tcp + 13]! & 0x12) === 0x02;
}

/**
 * The capture timestamp of the SYN on `link`, read from that link's live
 * tcpdump file while the scenario runs. tcpdump writes each packet at once but
 * may lag on a busy machine: wait for it, with a deadline that only ends a
 * broken run.
 */
async function liveSynTime(ctx: ScenarioContext, link: string, want: { src: string; dst: string; dport: number }): Promise<Date> {
  const l = ctx.links.find((c) => c.name === link);
  if (!l) throw new Error(`${link} is not captured`);
  const file = rawTapFile(ctx.dir, l, l.taps[0]!);
  const deadline = Date.now() + 30_000;
  for (;;) {
    // A record still being written makes the file read as truncated: read again.
    const capture = await readFile(file).then(readCapture, () => undefined).catch(() => undefined);
    const syn = capture?.interfaces[0]?.linkType === LINKTYPE_ETHERNET ? capture.packets.find((p) => isSyn(p.data, want)) : undefined;
    if (syn) return new Date(Number(syn.timestampNs / 1_000_000n));
    if (Date.now() > deadline) throw new Error(`no SYN ${want.src} -> ${want.dst}:${want.dport} in ${file} after 30 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('captures of the two-node lab', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  const tmp = await mkdtemp(join(tmpdir(), 'capture-lab-'));
  let plan: LabPlan;
  try {
    plan = await upLab(topo, { name: LAB, topologyFile: 'topologies/two-node.yaml' });
    const serverIp = findPod(plan, 'server')!.ip;
    const clientIp = findPod(plan, 'client')!.ip;

    await t.test('a TCP echo across nodes: named links, comment, plaintext, SYNs, drop and packet comments', async (t) => {
      const secret = `secret-${process.pid}-${Date.now()}`;
      const server = await startEchoServer(LAB, 'server', 'tcp', 8080);
      let files;
      try {
        files = await withScenarioCapture(LAB, 'echo-plaintext', LINKS, async (ctx) => {
          const r = await echoSend(LAB, 'client', 'tcp', serverIp, 8080, secret);
          if (r.exitCode !== 0) throw new Error(`echo failed: ${r.stderr}`);
          // A drop event as the datapath reports one for the SYN at the server's
          // veth: dated by the kernel as the packet passed. Here that date is the
          // SYN's own capture timestamp on the client's veth, so the match runs on
          // packet and event timestamps alone, however long the echo client took
          // to start.
          const synSent = await liveSynTime(ctx, 'n1/lxc-client', { src: clientIp, dst: serverIp, dport: 8080 });
          ctx.addDropEvents([{ time: synSent, src: clientIp, dst: serverIp, dport: 8080, proto: 'tcp', comment: 'test drop (reason 189)', iface: 'n2/lxc-server' }]);
          return r.stdout;
        });
      } finally {
        await server.stop();
      }
      t.match(files.value, `ECHO ${secret}`);
      t.equal(files.dir, join(REPO, 'captures', LAB, 'echo-plaintext'), 'captures/<lab>/<scenario>/');
      t.equal(files.merged, join(files.dir, MERGED_FILE));
      t.same(Object.keys(files.links).sort(), [...LINKS].sort(), 'one file per link');

      const info = await captureInfo(files.merged);
      t.match(info.fileType, /pcapng/, 'merged file opens in capinfos');
      t.same(info.interfaces.map((i) => i.name), LINKS, 'interfaces named for the links');
      t.match(info.interfaces[0]!.description, /underlay bridge/);
      t.match(info.comments.join('\n'), /scenario "echo-plaintext" on lab "t-capture" \(topology .*two-node\.yaml\): passed/, 'capture comment: scenario, lab, outcome');
      for (const [link, file] of Object.entries(files.links)) {
        t.same((await captureInfo(file)).interfaces.map((i) => i.name), [link], `${file} holds one interface named ${link}`);
      }

      for (const iface of LINKS) {
        const c = await countMany(files.merged, { syn: SYN, secret: plaintextFilter(secret) }, { iface });
        t.ok(c.syn >= 1, `${iface}: SYN seen (${c.syn})`);
        t.ok(c.secret >= 1, `${iface}: the secret crosses in plaintext (${c.secret})`);
      }
      t.ok(await payloadContains(files.merged, secret, { iface: 'fabric/underlay' }), 'payloadContains agrees on the underlay');
      t.notOk(await payloadContains(files.merged, `${secret}-never-sent`), 'and finds no text that was never sent');

      t.equal(files.drops.length, 1);
      t.equal(files.drops[0]!.iface, 'n2/lxc-server', 'the drop event matched the SYN on the server veth');
      const dropped = await frames(files.merged, 'frame.comment contains "DROPPED"', ['frame.number', 'frame.interface_name', 'tcp.flags.syn', 'frame.comment']);
      t.same(dropped, [{ 'frame.number': String(files.drops[0]!.frame), 'frame.interface_name': 'n2/lxc-server', 'tcp.flags.syn': '1', 'frame.comment': 'DROPPED: test drop (reason 189)' }]);
      // The per-link files carry it too: on the same packet in its link's file, nowhere else.
      for (const [link, file] of Object.entries(files.links)) {
        const inFile = await frames(file, 'frame.comment contains "DROPPED"', ['tcp.flags.syn', 'frame.comment']);
        t.same(inFile, link === 'n2/lxc-server' ? [{ 'tcp.flags.syn': '1', 'frame.comment': 'DROPPED: test drop (reason 189)' }] : [], `${link}'s own file: ${link === 'n2/lxc-server' ? 'the drop comment' : 'no drop comment'}`);
      }
      t.match(info.comments.join('\n'), /mtless wireshark FILE/, 'the capture comment says how to open it');

      // annotatePackets: a comment on the SYN of the client veth, as tshark shows it.
      const [syn] = await frames(files.merged, SYN, ['frame.number'], { iface: 'n1/lxc-client' });
      await annotatePackets(files.merged, [{ frame: Number(syn!['frame.number']), comment: 'first SYN of the flow' }]);
      const commented = await frames(files.merged, 'frame.comment == "first SYN of the flow"', ['frame.number', 'frame.interface_name']);
      t.same(commented, [{ 'frame.number': syn!['frame.number'], 'frame.interface_name': 'n1/lxc-client' }], 'tshark shows the comment on that SYN');
      t.same((await captureInfo(files.merged)).interfaces.map((i) => i.name), LINKS, 'still named after editcap');
    });

    await t.test('an idle capture is valid and empty, not an error', async (t) => {
      const dir = join(tmp, 'idle');
      // No pod talks to "local": its veth, seen from the node and from inside the pod, stays silent.
      const h = await startCapture(LAB, ['n1/lxc-local', 'local/eth0'], dir);
      const r = await h.stop();
      t.same(r.links.map((l) => [l.link, l.packets]), [['n1/lxc-local', 0], ['local/eth0', 0]]);
      for (const l of r.links) {
        const info = await captureInfo(l.file);
        t.equal(info.packets, 0, `${l.link}: 0 packets`);
        t.same(info.interfaces.map((i) => i.name), [l.link]);
      }
      const m = await mergeLinkCaptures(r.links.map((l) => ({ link: l.link, file: l.file })), join(dir, 'merged.pcapng'), { comments: ['idle'] });
      t.same([m.packets, m.interfaces], [0, ['n1/lxc-local', 'local/eth0']]);
      t.same((await captureInfo(m.file)).comments, ['idle']);
    });

    await t.test('unknown links and missing devices are errors that say which', async (t) => {
      const err = await startCapture(LAB, ['n1/lxc-client', 'n3/eth0'], join(tmp, 'bad')).catch((e: unknown) => e);
      t.type(err, UnknownLinkError);
      t.match((err as Error).message, /lab "t-capture" has no link "n3\/eth0" \(valid: fabric\/underlay, mgmt, n1\/eth0, n1\/mgmt0, n1\/lxc-client, n1\/lxc-local, n2\/eth0, n2\/mgmt0, n2\/lxc-server;/);
      const nodev = await startCapture(LAB, ['n1/lxc-client', 'n1/nosuchdev0'], join(tmp, 'bad')).catch((e: unknown) => e);
      t.type(nodev, CaptureError);
      t.match((nodev as Error).message, /capture did not start: link n1\/nosuchdev0 \(nosuchdev0 in mtl_t-capture_n_n1\): tcpdump exited before it was ready .*No such device/);
      t.same(await labCaptures(), [], 'the taps that did start were stopped');
      await t.rejects(startCapture('t-capture-nope', ['mgmt'], join(tmp, 'bad')), /no lab named "t-capture-nope"/);
    });

    await t.test('a killed capture process is reported, naming its link; the others are still written', async (t) => {
      const dir = join(tmp, 'killed');
      const live: string[] = [];
      const h = await startCapture(LAB, ['n1/eth0', 'n2/eth0'], dir, { onFailure: (f) => live.push(f.link) });
      const victim = h.pids().find((p) => p.link === 'n2/eth0')!;
      const gone = new Promise<void>((resolve) => {
        const poll = setInterval(() => h.failures().length > 0 && (clearInterval(poll), resolve()), 10);
      });
      process.kill(victim.pid, 'SIGKILL');
      await gone; // reported while the capture still runs
      t.same(live, ['n2/eth0'], 'onFailure named the link at once');
      await echoSend(LAB, 'client', 'tcp', serverIp, 9, 'x', ['--timeout', '300']); // any traffic
      const err = (await h.stop().catch((e: unknown) => e)) as CaptureError;
      t.type(err, CaptureError);
      t.match(err.message, /link n2\/eth0 \(eth0 in mtl_t-capture_n_n2\): tcpdump exited during the capture \(killed by SIGKILL\)/);
      t.same(err.failures.map((f) => f.link), ['n2/eth0']);
      t.same(err.result?.links.map((l) => l.link), ['n1/eth0'], 'the healthy link is still written');
      t.ok(err.result!.links[0]!.packets > 0);
    });

    await t.test('a full disk is reported, not left as a silently empty file', async (t) => {
      // tcpdump ignores write errors (exits 0, "N packets captured"): the file check must catch it.
      const dir = join(tmp, 'full');
      const link = resolveLink((await readState(LAB))!, 'n1/lxc-client');
      await mkdir(join(dir, '.raw'), { recursive: true });
      await symlink('/dev/full', rawTapFile(dir, link, link.taps[0]!));
      const h = await startCapture(LAB, ['n1/lxc-client'], dir);
      await echoSend(LAB, 'client', 'tcp', serverIp, 9, 'x', ['--timeout', '300']);
      const err = (await h.stop().catch((e: unknown) => e)) as CaptureError;
      t.type(err, CaptureError);
      t.match(err.message, /link n1\/lxc-client .*: tcpdump captured [1-9]\d* packets but its output is unreadable .*disk full/);
    });

    await t.test('a failing scenario still writes its captures, with the failure in the comment', async (t) => {
      const err = (await withScenarioCapture(LAB, 'fails', ['n1/lxc-client'], async () => {
        await echoSend(LAB, 'client', 'tcp', serverIp, 9, 'x', ['--timeout', '300']);
        throw new Error('the scenario broke');
      }, { root: tmp }).catch((e: unknown) => e)) as ScenarioFailedError;
      t.type(err, ScenarioFailedError);
      t.match(err.message, /scenario "fails" failed: the scenario broke \(captures in .*\/t-capture\/fails\)/);
      t.equal((err.cause as Error).message, 'the scenario broke');
      const info = await captureInfo(err.files!.merged);
      t.match(info.comments[0], /scenario "fails" on lab "t-capture".*: FAILED: the scenario broke/);
      t.ok(info.packets > 0, 'the packets up to the failure are there');
    });

    await t.test('TLS 1.3 mutual auth on 4250: secrets embedded, SPIFFE IDs read back', { skip: (await execa('openssl', ['version'], { reject: false })).exitCode === 0 ? false : 'needs openssl' }, async (t) => {
      const pki = join(tmp, 'pki');
      await mkdir(pki);
      // A CA and two leaves with SPIFFE IDs as URI SANs, like the lab's agents will use.
      const ossl = (args: string[]) => execa('openssl', args, { cwd: pki });
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
      await ossl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=lab-ca']);
      for (const who of ['server', 'client']) {
        await writeFile(join(pki, `${who}.ext`), `subjectAltName=URI:spiffe://cluster.local/ns/default/sa/${who}\n`);
        await ossl(['req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`]);
        await ossl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-out', `${who}.crt`, '-extfile', `${who}.ext`]);
      }
      const keylog = join(pki, 'keylog.txt');
      const files = await withScenarioCapture(LAB, 'tls', ['n1/lxc-client', 'fabric/underlay'], async (ctx) => {
        const server = execa('nsenter', [`--net=/run/netns/${podNetns(LAB, 'server')}`, '--', 'openssl', 's_server', '-accept', String(AUTH_PORT), '-naccept', '1', '-tls1_3',
          '-cert', 'server.crt', '-key', 'server.key', '-CAfile', 'ca.crt', '-Verify', '1'], { cwd: pki, reject: false, buffer: false });
        try {
          await new Promise<void>((resolve, reject) => {
            let out = '';
            server.stdout!.on('data', (d: Buffer) => ((out += d), out.includes('ACCEPT') && resolve()));
            void server.then(() => reject(new Error(`s_server exited: ${out}`)));
          });
          const c = await execa('nsenter', [`--net=/run/netns/${podNetns(LAB, 'client')}`, '--', 'openssl', 's_client', '-connect', `${serverIp}:${AUTH_PORT}`, '-tls1_3',
            '-cert', 'client.crt', '-key', 'client.key', '-CAfile', 'ca.crt', '-keylogfile', keylog, '-quiet', '-no_ign_eof'], { cwd: pki, input: 'hello\n', reject: false });
          if (c.exitCode !== 0) throw new Error(`s_client: ${c.stderr}`);
        } finally {
          server.kill();
          await server;
        }
        ctx.addKeyLog('tls', keylog);
      }, { root: tmp });
      const want = ['spiffe://cluster.local/ns/default/sa/server', 'spiffe://cluster.local/ns/default/sa/client'];
      t.same((await tlsCertificateUriSans(files.merged)).uris, want, 'merged file: both certificates decrypt with no key log given');
      for (const iface of ['n1/lxc-client', 'fabric/underlay']) {
        t.same((await tlsCertificateUriSans(files.merged, { iface })).uris, want, `${iface}: both certificates`);
      }
      t.same((await tlsCertificateUriSans(files.links['fabric/underlay']!)).uris, want, 'the per-link file decrypts on its own too');
      t.equal(readCapture(await readFile(files.merged)).secrets.length, 1, 'one decryption secrets block');
      for (const f of [files.merged, ...Object.values(files.links)]) t.equal((await captureInfo(f)).secrets, 1, `${f}: capinfos counts one secrets block`);

      // What a user's tshark makes of it: plain, 4250 is GSM over IP; with the lab's profile in their HOME, TLS, decrypted.
      const bare = join(tmp, 'bare-home');
      const home = join(tmp, 'profile-home');
      await mkdir(bare, { recursive: true });
      await installProfile(await wiresharkConfigDir({ HOME: home }, home));
      const certs = async (h: string, args: string[]) => (await execa('tshark', [...args, '-r', files.merged, '-Y', 'tls.handshake.certificate', '-T', 'fields', '-e', 'x509ce.uniformResourceIdentifier'],
        { env: { HOME: h, PATH: process.env.PATH! } })).stdout.split('\n').filter(Boolean);
      t.same(await certs(bare, []), [], 'plain tshark: no certificate on 4250');
      t.same([...new Set((await certs(home, ['-C', PROFILE_NAME])).flatMap((l) => l.split(',')))].sort(), [...want].sort(), `tshark -C ${PROFILE_NAME}: the SPIFFE IDs`);
    });

    await t.test('streaming: one live pcapng with named interfaces', async (t) => {
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (d: Buffer) => chunks.push(d));
      const s = await streamCapture(LAB, ['n1/lxc-client', 'fabric/underlay'], out);
      await echoSend(LAB, 'client', 'tcp', serverIp, 9, 'x', ['--timeout', '300']);
      const r = await s.stop();
      const live = readCapture(Buffer.concat(chunks));
      t.same(live.interfaces.map((i) => i.name).sort(), ['fabric/underlay', 'n1/lxc-client'], 'the underlay\'s taps share one interface');
      t.equal(live.packets.length, r.packets['n1/lxc-client']! + r.packets['fabric/underlay']!, 'every packet tcpdump captured was streamed');
      const times = live.packets.map((p) => p.timestampNs);
      t.ok(times.every((ns, i) => i === 0 || ns >= times[i - 1]!), 'in timestamp order, across links and the bridge\'s taps (Wireshark\'s TCP analysis needs it)');
      t.ok(r.packets['n1/lxc-client']! >= 1);
    });

    await t.test('streaming with a key log: its lines go out as they appear, before the packets sent after them', async (t) => {
      const keylog = join(tmp, 'stream-keylog.txt');
      const first = 'CLIENT_RANDOM 00 11\n';
      const later = 'CLIENT_RANDOM 22 33\n';
      await writeFile(keylog, first);
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (d: Buffer) => chunks.push(d));
      const s = await streamCapture(LAB, ['n1/lxc-client'], out, { keylogs: { tls: keylog } });
      await appendFile(keylog, later);
      // Sent after the line was written: its packets must come after that line's block.
      await echoSend(LAB, 'client', 'tcp', serverIp, 9, 'x', ['--timeout', '300']);
      await s.stop();
      const blocks = pcapngBlocks(Buffer.concat(chunks));
      const dsb = (text: string) => blocks.findIndex((b) => b.type === 0x0a && b.body.subarray(8, 8 + b.body.readUInt32LE(4)).toString() === text);
      const firstPacket = blocks.findIndex((b) => b.type === 6);
      t.ok(dsb(first) >= 0 && dsb(first) < firstPacket, 'the key log as it was: before any packet');
      t.ok(dsb(later) > dsb(first), 'the appended line: a block of its own, later');
      const syn = blocks.findIndex((b) => b.type === 6 && isSyn(b.body.subarray(20), { src: clientIp, dst: serverIp, dport: 9 }));
      t.ok(syn > dsb(later), `the SYN sent after the append comes after its block (${dsb(later)} < ${syn})`);
    });

    await t.test('SIGINT stops and flushes the capture; the caller\'s cleanup still runs', async (t) => {
      const root = join(tmp, 'sigint');
      const code = `
        import { withScenarioCapture } from ${JSON.stringify(join(REPO, 'lab/capture/scenario.ts'))};
        try {
          await withScenarioCapture('${LAB}', 'interrupted', ['n1/lxc-client'], async (ctx) => {
            console.log('READY');
            await new Promise((r) => { const timer = setTimeout(r, 30000); ctx.signal.addEventListener('abort', () => (clearTimeout(timer), r(undefined))); });
          }, { root: ${JSON.stringify(root)} });
        } catch (e) {
          console.log('CAUGHT ' + e.message);
        } finally {
          console.log('CLEANUP');
        }`;
      const child = execa('node', ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO, reject: false });
      await new Promise<void>((resolve) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => ((out += d), out.includes('READY') && resolve()));
        void child.then(() => resolve());
      });
      await echoSend(LAB, 'client', 'tcp', serverIp, 9, 'x', ['--timeout', '300']);
      child.kill('SIGINT');
      const r = await child;
      t.match(r.stdout, /CAUGHT scenario "interrupted" failed: interrupted by SIGINT/);
      t.match(r.stdout, /CLEANUP/);
      const info = await captureInfo(join(root, LAB, 'interrupted', MERGED_FILE));
      t.ok(info.packets > 0, 'the packets before the interrupt are in merged.pcapng');
      t.match(info.comments[0], /FAILED: interrupted by SIGINT/);
      t.same(await labCaptures(), [], 'no tcpdump left running');
    });
  } finally {
    await destroyLab(LAB);
    await rm(tmp, { recursive: true, force: true });
  }
  t.same(await labLeftovers(LAB), [], 'nothing of the lab is left');
  t.same(await findTaggedProcesses(LAB), [], 'no process tagged for the lab (no tcpdump)');
});
