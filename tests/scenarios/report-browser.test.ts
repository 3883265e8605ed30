// The report of a real mtless-basic run, rendered by headless Chromium: the
// page logs nothing to the console, loads nothing from outside the file,
// holds the topology and a ladder per flow with the lanes and arrows of the
// story (drop 189, signal, the 4250 handshake with SPIFFE IDs, the auth-map
// write, the retransmitted SYN, the plaintext payload) at the capture's own
// times, links every capture, and its screenshot is not blank.
import t from 'tap';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { mtlessBasic } from '../../lab/scenarios/mtless-basic.ts';
import { CAPTURES_ROOT, setOutputRoot } from '../../lab/capture/scenario.ts';
import { writeReport } from '../../lab/report/html.ts';
import { frames } from '../../lab/capture/assert.ts';
import { epochMs } from '../../lab/report/frames.ts';
import { chromiumVersion, loadPage, screenshot } from '../helpers/chromium.ts';
import { decodePng, pixelStats } from '../helpers/png.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

/** The opening tags and bodies of every <svg class="CLASS"> in a DOM dump. */
function svgs(dom: string, cls: string): string[] {
  return dom.split('<svg').slice(1).map((s) => `<svg${s.slice(0, s.indexOf('</svg>'))}`).filter((s) => s.startsWith(`<svg xmlns="http://www.w3.org/2000/svg"`) && s.includes(`class="${cls}"`));
}
const attr = (tag: string, name: string) => new RegExp(`${name}="([^"]*)"`).exec(tag)?.[1];
interface Step { kind: string; from: string; to: string; tMs: number; title: string }
function steps(svg: string): Step[] {
  return [...svg.matchAll(/<g class="step" ([^>]*)><title>([^<]*)<\/title>/g)].map((m) => ({
    kind: attr(m[1]!, 'data-kind')!, from: attr(m[1]!, 'data-from')!, to: attr(m[1]!, 'data-to')!, tMs: Number(attr(m[1]!, 'data-t-ms')), title: m[2]!,
  }));
}

t.test('the report of a real mtless-basic run in headless Chromium', { skip: needsRoot }, async (t) => {
  const version = await chromiumVersion();
  if (!t.ok(version, `chromium is installed (${version ?? 'missing: scripts/setup installs it'})`)) return;
  const dir = await mkdtemp(join(tmpdir(), 'mtless-report-'));
  const lab = 't-report';
  try {
    // The console check can see errors at all: a page that logs one.
    const probe = join(dir, 'probe.html');
    await writeFile(probe, '<!doctype html><title>probe</title><script>console.error("probe-error")</script>');
    t.ok((await loadPage(probe)).console.some((l) => l.includes('probe-error')), 'a console error of a page is caught');

    setOutputRoot(dir);
    const startedAt = new Date();
    const r = await runScenario(mtlessBasic, { lab });
    t.notOk(r.error, `the run had no error: ${r.error ?? ''}`);
    t.ok(r.record && r.capture, 'the run left run.json and merged.pcapng');
    const report = join(dir, 'report.html');
    await writeReport([r], report, startedAt);
    const html = await readFile(report, 'utf8');
    t.notMatch(html, /<script|<link|<img|<iframe|@import|url\((?!#)/i, 'no script, no external resource: self-contained');
    t.notMatch(html, /(src|href)="(https?:)?\/\//i, 'no link to another host');

    const page = await loadPage(report);
    t.same(page.console, [], 'no console messages or errors');
    const { dom } = page;

    const [topo] = svgs(dom, 'topology');
    t.ok(topo, 'the topology diagram');
    for (const n of ['n1', 'n2']) t.match(topo, new RegExp(`<g class="node" data-node="${n}"`), `node ${n}`);
    for (const p of ['client', 'local', 'server']) t.match(topo, new RegExp(`<g class="pod" data-pod="${p}" data-identity="\\d+"`), `pod ${p} with its identity`);
    for (const v of ['lxc-client', 'lxc-local', 'lxc-server']) t.match(topo, new RegExp(`data-veth="${v}"`), `veth ${v}`);
    for (const net of ['underlay', 'mgmt']) t.match(topo, new RegExp(`data-net="${net}"`), `network ${net}`);

    const ladders = svgs(dom, 'ladder');
    t.equal(ladders.length, 3, 'a ladder per flow: cross-node TCP, UDP, same-node TCP');
    const tcp = ladders.find((l) => /aria-label="TCP [\d.]+ → [\d.]+:8080/.test(l))!;
    t.ok(tcp, 'the cross-node TCP ladder');
    const lanes = [...tcp.matchAll(/<g class="lane" data-lane="([^"]+)"><text[^>]*>([^<]*)<\/text>/g)].map((m) => `${m[1]}=${m[2]}`);
    t.same(lanes, ['src-pod=pod client', 'src-node=node n1 · agent', 'underlay=underlay', 'dst-node=node n2 datapath', 'dst-agent=node n2 agent', 'dst-pod=pod server'], 'its lanes');
    const s = steps(tcp);
    const first = (pred: (x: Step) => boolean, what: string) => {
      const i = s.findIndex(pred);
      t.ok(i >= 0, what);
      return i;
    };
    const drop = first((x) => x.kind === 'drop' && x.from === 'src-pod' && x.to === 'dst-node' && /SYN .*DROPPED \(189 Authentication required\) at n2/.test(x.title), 'the first SYN dropped (189) at n2');
    const signal = first((x) => x.kind === 'signal' && x.from === 'dst-node' && x.to === 'dst-agent', 'the signal to n2\'s agent');
    const hello = first((x) => x.kind === 'tls' && x.from === 'dst-agent' && x.to === 'src-node' && /ClientHello/.test(x.title), 'the 4250 handshake: ClientHello from n2\'s agent to n1');
    const ids = s.filter((x) => x.kind === 'tls').flatMap((x) => x.title.match(/spiffe:\/\/spiffe\.cilium\/identity\/\d+/g) ?? []);
    t.equal(new Set(ids).size, 2, `both SPIFFE IDs in the handshake: ${[...new Set(ids)].join(', ')}`);
    const write = first((x) => x.kind === 'write' && x.from === 'dst-agent' && x.to === 'dst-node' && /auth map write/.test(x.title), 'the auth-map write');
    const retransmit = first((x) => x.kind === 'packet' && x.from === 'src-pod' && x.to === 'dst-pod' && /SYN .*\(retransmitted\) passes/.test(x.title), 'the retransmitted SYN passes');
    const plain = first((x) => x.kind === 'plaintext' && /in plaintext on the underlay: "secret-cross-node-TCP/.test(x.title), 'the payload in plaintext on the underlay');
    t.ok(drop < signal && signal < hello && hello < write && write < retransmit && retransmit < plain, 'in the order of the story');

    // The ladder's times are the capture's: the two SYNs of the first connection on the underlay, by tshark.
    const syns = await frames(r.capture!, 'tcp.dstport == 8080 && tcp.flags.syn == 1 && tcp.flags.ack == 0', ['frame.time_epoch', 'tcp.srcport'], { iface: 'fabric/underlay' });
    const firstConn = syns.filter((x) => x['tcp.srcport'] === syns[0]!['tcp.srcport']).map((x) => epochMs(x['frame.time_epoch']!));
    const gap = firstConn[1]! - firstConn[0]!;
    t.ok(Math.abs(s[retransmit]!.tMs - s[drop]!.tMs - gap) < 0.01, `retransmit drawn ${(s[retransmit]!.tMs - s[drop]!.tMs).toFixed(3)} ms after the drop; tshark: ${gap.toFixed(3)} ms`);

    const udp = ladders.find((l) => /aria-label="UDP /.test(l))!;
    t.ok(udp && steps(udp).some((x) => x.kind === 'drop' && /datagram .*189/.test(x.title)), 'the UDP ladder shows its first datagram dropped');
    const local = ladders.find((l) => /aria-label="TCP [\d.]+ → [\d.]+:7070/.test(l))!;
    t.same([...local.matchAll(/data-lane="([^"]+)"/g)].map((m) => m[1]), ['src-pod', 'dst-node', 'dst-agent', 'dst-pod'], 'the same-node ladder has no underlay lane');

    // Every capture file of the run is linked, each with how to open it.
    const files = (await readdir(dirname(r.capture!))).filter((f) => f.endsWith('.pcapng'));
    t.ok(files.length >= 5, `${files.length} capture files`);
    for (const f of files) {
      const href = relative(dir, join(dirname(r.capture!), f));
      t.ok(dom.includes(`href="${href}"`) && dom.includes(`mtless wireshark ${href}`), `${f} linked, with how to open it`);
    }
    t.match(dom, /<code>frame\.comment contains "DROPPED"<\/code>/, 'the drops\' display filter');
    t.match(dom, /<code>tcp\.port == \d+ &amp;&amp; tls\.handshake\.type == 11<\/code>/, 'the handshake certificates\' display filter');

    const png = join(dir, 'report.png');
    await screenshot(report, png, 1280, 1600);
    const img = decodePng(await readFile(png));
    const stats = pixelStats(img);
    t.same([img.width, img.height], [1280, 1600], 'the screenshot has the window\'s size');
    t.ok(stats.variance > 100 && stats.colours > 50, `the screenshot is not blank: luminance variance ${stats.variance.toFixed(0)}, ${stats.colours} colours`);
  } finally {
    setOutputRoot(CAPTURES_ROOT);
    t.same(await labLeftovers(lab), [], 'the run tore its lab down');
    await rm(dir, { recursive: true, force: true });
  }
});
