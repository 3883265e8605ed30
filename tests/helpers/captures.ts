// What a user sees in every capture file a scenario wrote, asked of Wireshark's
// own tools: capinfos for the Decryption Secrets Blocks, plain tshark (no
// profile: 4250 is GSM over IP, 8472 plain UDP) and tshark -C mtless-lab with
// the profile installed in a folder of the test's own (WIRESHARK_CONFIG_DIR),
// so neither the machine's nor the user's Wireshark settings take part.
import type { Test } from 'tap';
import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { AUTH_PORT } from '../../lab/abi/generated.ts';
import { captureInfo } from '../../lab/capture/assert.ts';
import { linkFileName, UNDERLAY_LINK } from '../../lab/capture/links.ts';
import { installProfile, PROFILE_NAME } from '../../lab/capture/profile.ts';

export interface CaptureExpectations {
  /** Decryption Secrets Blocks in every file: 1 (TLS key log), 2 with WireGuard keys. */
  secrets: number;
  /** Drop comments in merged.pcapng at least (each per-link file carries those matched on its link). */
  minDrops: number;
  /** SPIFFE IDs the handshakes' certificates show with the profile, in the underlay's file and merged.pcapng. */
  spiffeIds: string[];
  /** At least this many distinct SPIFFE IDs there (default: spiffeIds.length). */
  minIds?: number;
  /** The handshake is on TCP 4250 (the agents), which plain tshark takes for GSM over IP. */
  authPort: boolean;
  /** VXLAN VNIs the profile decodes on the underlay (tunnel mode); plain tshark decodes none. */
  vnis?: string[];
}

const FIELDS = ['frame.comment', 'x509ce.uniformResourceIdentifier', 'vxlan.vni', 'gsm_ipa'];
const FILTER = `frame.comment contains "DROPPED" || tls.handshake.type == 11 || vxlan || (tcp.port == ${AUTH_PORT} && gsm_ipa)`;

interface Seen { drops: number; uris: string[]; vnis: string[]; certificates: number; gsmIpa: number }

/** One tshark pass over a file: drop comments, certificate URIs, VNIs, 4250 frames taken for GSM over IP. */
async function look(file: string, configDir: string, profile: boolean): Promise<Seen> {
  const r = await execa('tshark', ['-n', ...(profile ? ['-C', PROFILE_NAME] : []), '-r', file, '-Y', FILTER, '-T', 'fields',
    '-E', 'separator=/t', '-E', 'occurrence=a', '-E', 'aggregator=,', ...FIELDS.flatMap((f) => ['-e', f])],
  { env: { WIRESHARK_CONFIG_DIR: configDir, PATH: process.env.PATH } });
  const seen: Seen = { drops: 0, uris: [], vnis: [], certificates: 0, gsmIpa: 0 };
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [comment = '', uris = '', vni = '', gsm = ''] = line.split('\t');
    if (comment.includes('DROPPED')) seen.drops++;
    if (uris) (seen.certificates++, seen.uris.push(...uris.split(',').filter((u) => u.includes('/identity/') || u.includes('/ns/'))));
    if (vni) seen.vnis.push(...vni.split(','));
    if (gsm) seen.gsmIpa++;
  }
  seen.uris = [...new Set(seen.uris)].sort();
  seen.vnis = [...new Set(seen.vnis)].sort();
  return seen;
}

/** Checks every pcapng of a scenario's capture folder, plain and with the profile. */
export async function checkScenarioCaptures(t: Test, dir: string, want: CaptureExpectations): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'mtless-ws-'));
  try {
    const withProfile = join(tmp, 'profile');
    const bare = join(tmp, 'bare');
    await installProfile(withProfile);
    await mkdir(bare);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.pcapng')).sort();
    t.ok(files.includes('merged.pcapng') && files.length >= 2, `${dir}: merged.pcapng and per-link files (${files.join(', ')})`);
    // Where the agents' (or proxies') handshakes and the tunnel are: the underlay, and merged.pcapng.
    const handshakeFiles = new Set(['merged.pcapng', linkFileName(UNDERLAY_LINK)]);
    const perFile = new Map<string, Seen>();
    // Two files at a time: the machine has 2 CPUs, and each tshark pass is CPU-bound.
    const queue = [...files];
    await Promise.all([0, 1].map(async () => {
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
        const file = join(dir, f);
        const info = await captureInfo(file);
        t.equal(info.secrets, want.secrets, `${f}: ${want.secrets} decryption secrets block(s) (capinfos)`);
        const plain = await look(file, bare, false);
        perFile.set(f, plain);
        if (!handshakeFiles.has(f)) continue;
        const profiled = await look(file, withProfile, true);
        t.equal(profiled.drops, plain.drops, `${f}: the same drop comments with -C ${PROFILE_NAME}`);
        if (want.authPort) {
          t.equal(plain.certificates, 0, `${f}, plain tshark: no certificate (TCP ${AUTH_PORT} is GSM over IP to Wireshark 4.0)`);
          t.ok(plain.gsmIpa > 0, `${f}, plain tshark: ${plain.gsmIpa} frames of the ${AUTH_PORT} handshake dissected as gsm_ipa`);
        }
        t.ok(profiled.certificates > 0, `${f}, -C ${PROFILE_NAME}: ${profiled.certificates} Certificate messages decrypted by the embedded key log`);
        const minIds = want.minIds ?? want.spiffeIds.length;
        t.ok(profiled.uris.length >= minIds, `${f}, -C ${PROFILE_NAME}: ${profiled.uris.length} workload SPIFFE IDs (at least ${minIds}): ${profiled.uris.join(' ')}`);
        for (const id of want.spiffeIds) t.ok(profiled.uris.includes(id), `${f}, -C ${PROFILE_NAME}: ${id} among the certificates' URI SANs (${profiled.uris.join(' ')})`);
        if (want.vnis) {
          t.same(plain.vnis, [], `${f}, plain tshark: no VXLAN (udp/8472 is plain UDP)`);
          for (const vni of want.vnis) t.ok(profiled.vnis.includes(vni), `${f}, -C ${PROFILE_NAME}: VNI ${vni} decoded (VNIs: ${profiled.vnis.join(' ')})`);
        }
      }
    }));
    const merged = perFile.get('merged.pcapng')!.drops;
    const links = files.filter((f) => f !== 'merged.pcapng').map((f) => [basename(f), perFile.get(f)!.drops] as const);
    t.ok(merged >= want.minDrops, `merged.pcapng: ${merged} drop comments (at least ${want.minDrops})`);
    t.equal(links.reduce((n, [, d]) => n + d, 0), merged, `each drop comment is also in the file of its link (${links.map(([f, d]) => `${f} ${d}`).join(', ')})`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
