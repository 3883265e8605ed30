// What `mtless demo` runs and how it reads the outcome: the claims C1–C10
// (shared/design/mission.md), which scenario shows each and by which of its
// checks, the scenarios a `--only` list needs, the order they start in, and
// each claim's evidence (capture and display filter, flow event, map dump,
// log line) read from the run's results. Pure: no lab is touched here.
import { AUTH_PORT, HBONE_PORT, WG_PORT } from '../abi/generated.ts';
import { CLAIM_IDS, type ClaimId } from './claims.ts';
import { dfString } from '../capture/tshark.ts';
import type { Check, ScenarioResult } from './framework.ts';
import { matrixLabs, type MatrixRow } from './confusion-matrix.ts';
import { exposureLabs, type WindowRow } from './exposure-window.ts';
import { offLabName } from './sockmap.ts';
import { scenarioLabName } from '../core/names.ts';

/** Which scenario shows a claim, and which of its checks decide the claim's verdict. */
interface Showing {
  scenario: string;
  checks: (c: Check) => boolean;
}

const all = () => true;
const basicC2 = (c: Check) => /signal|handshake|auth map/.test(c.name);
const basicC3 = (c: Check) => /plaintext/.test(c.name);

export { CLAIM_IDS, CLAIM_TEXT, type ClaimId } from './claims.ts';

export const SHOWINGS: Record<ClaimId, Showing> = {
  C1: { scenario: 'mtless-basic', checks: (c) => !basicC2(c) && !basicC3(c) },
  C2: { scenario: 'mtless-basic', checks: basicC2 },
  C3: { scenario: 'mtless-basic', checks: basicC3 },
  C4: { scenario: 'wireguard', checks: all },
  C5: { scenario: 'identity-confusion', checks: all },
  C6: { scenario: 'confusion-matrix', checks: all },
  C7: { scenario: 'per-connection-mtls', checks: all },
  C8: { scenario: 'sockmap', checks: all },
  C9: { scenario: 'auth-lifetime', checks: all },
  C10: { scenario: 'exposure-window', checks: all },
};

/**
 * Start order: the scenarios that wait longest (TTLs, delays, five labs) first,
 * so their waiting overlaps the others' work. From the durations of each alone
 * (`mtless scenario run` on this machine, see README).
 */
export const START_ORDER = ['confusion-matrix', 'exposure-window', 'auth-lifetime', 'sockmap', 'mtless-basic', 'wireguard', 'per-connection-mtls', 'identity-confusion'];

/** `--only C5,C6` as claim ids; any other word is a usage error naming the valid ones. */
export function parseClaimList(text: string): ClaimId[] {
  const words = text.split(',').map((w) => w.trim()).filter(Boolean);
  if (words.length === 0) throw new Error(`--only: expected claim ids, e.g. --only C5,C6 (valid: ${CLAIM_IDS.join(', ')})`);
  const bad = words.filter((w) => !(CLAIM_IDS as readonly string[]).includes(w.toUpperCase()));
  if (bad.length > 0) throw new Error(`--only: unknown claim ${bad.map((w) => `"${w}"`).join(', ')} (valid: ${CLAIM_IDS.join(', ')})`);
  const ids = new Set(words.map((w) => w.toUpperCase() as ClaimId));
  return CLAIM_IDS.filter((c) => ids.has(c));
}

/** The scenarios the claims need, each once, in start order. */
export function scenariosFor(claims: readonly ClaimId[]): string[] {
  const needed = new Set(claims.map((c) => SHOWINGS[c].scenario));
  return START_ORDER.filter((s) => needed.has(s));
}

/** Every lab a scenario brings up under a run's prefix: its own, then its side labs. */
export function labsOf(scenario: string, prefix?: string): string[] {
  const lab = scenarioLabName(scenario, prefix);
  const side = scenario === 'confusion-matrix' ? Object.values(matrixLabs(lab))
    : scenario === 'exposure-window' ? Object.values(exposureLabs(lab))
      : scenario === 'sockmap' ? [offLabName(lab)] : [];
  return [lab, ...side];
}

/** What a trainer is told at each pause of `mtless demo --step`: what comes, and what to look at. */
export function stepGuide(scenario: string, lab: string): Record<'up' | 'run' | 'down', string[]> {
  const g = GUIDE[scenario];
  const fill = (lines: string[]) => lines.map((l) => l.replaceAll('LAB', lab));
  return {
    up: [`next: ${scenario} brings up lab ${lab} (${labsOf(scenario).length > 1 ? 'and its side labs' : 'one lab'}): namespaces, veths, the tc programs, the control plane and the agents`, ...fill(g?.up ?? [])],
    run: [`next: ${scenario}'s traffic and checks`, ...fill(g?.run ?? ['watch it live in another terminal: mtless observe LAB -f'])],
    down: [`next: ${scenario}'s lab goes down; before it does, look around:`, ...fill(g?.down ?? ['mtless status LAB', 'mtless logs LAB'])],
  };
}

const GUIDE: Record<string, Partial<Record<'up' | 'run' | 'down', string[]>>> = {
  'mtless-basic': {
    up: ['claims C1–C3: the first SYN dropped (189), the agents\' handshake on ' + AUTH_PORT + ', the payload in plaintext'],
    run: ['watch: mtless observe LAB -f   (the drop, the auth events, the retransmitted SYN ~1 s later)'],
    down: ['mtless maps LAB n2 auth   (the entry the handshake wrote)', 'mtless logs LAB n2   (auth-requested, auth-completed with the peer SPIFFE ID)'],
  },
  wireguard: {
    up: ['claim C4: WireGuard between nodes; the agents\' handshake stays outside the tunnel'],
    run: ['watch: mtless observe LAB -f; the capture will show only UDP ' + WG_PORT + ' on the underlay'],
    down: ['mtless exec LAB/n1 -- wg show   (one peer per node: node keys, not workload keys)'],
  },
  'identity-confusion': {
    up: ['claim C5: n2 is cut off, the client is replaced by an intruder on its IP'],
    run: ['watch: mtless observe LAB -f --node n2   (the intruder FORWARDED as the client)'],
    down: ['mtless maps LAB n2 ipcache   (after the heal: the intruder\'s identity)'],
  },
  'confusion-matrix': {
    up: ['claim C6: five labs side by side, one per mode; the same attack in each'],
    run: ['watch: mtless status   (the five labs); mtless observe LAB -f'],
  },
  'per-connection-mtls': {
    up: ['claim C7: node proxies carry each connection as HBONE (mutual TLS on ' + HBONE_PORT + ')'],
    run: ['watch: mtless observe LAB -f; the intruder will be refused by certificate'],
  },
  sockmap: {
    up: ['claim C8: same-node sockets short-circuited; the veths see the handshake and FIN only'],
    down: ['mtless maps LAB n1 metrics'],
  },
  'auth-lifetime': {
    up: ['claim C9: SVIDs of seconds, GC every second or two: an entry\'s whole life in one run'],
    run: ['watch: watch -n1 mtless maps LAB n2 auth   (the entry, its expiration moving at rotation, then gone)'],
  },
  'exposure-window': {
    up: ['claim C10: updates to n2 delayed by D; an intruder reuses the client\'s IP at once'],
    run: ['watch: mtless observe LAB -f --node n2 --to-pod server   (admitted until n2 applies the update)'],
  },
};

export interface ClaimRow {
  claim: ClaimId;
  ok: boolean;
  scenario: string;
  /** Held / deciding checks. */
  held: number;
  total: number;
  /** Lines of evidence: `capture FILE -Y FILTER`, `event …`, `map …`, `log …`, `table …`. */
  evidence: string[];
  /** Why it failed: failed checks, an error, a scenario that did not run. */
  problems: string[];
}

const detailOf = (r: ScenarioResult, re: RegExp) => r.checks.find((c) => re.test(c.name))?.detail;
const capture = (file: string | undefined, filter: string, shows: string) => `capture ${file ?? '(none)'} -Y '${filter}'  → ${shows}`;
const iface = (link: string) => `frame.interface_name == ${dfString(link)}`;
/** Flow-log lines of the narrative ("flows seen:") that match. */
const flowLines = (r: ScenarioResult, re: RegExp, n = 2) => r.narrative.slice(r.narrative.indexOf('flows seen:') + 1).filter((l) => re.test(l)).slice(0, n).map((l) => `event ${l.trim()}`);

/** The evidence of one claim, from the result of the scenario that shows it. */
export function claimEvidence(claim: ClaimId, r: ScenarioResult): string[] {
  switch (claim) {
    case 'C1':
      return [
        capture(r.capture, 'frame.comment contains "Authentication required (189)"', 'the dropped first SYN, commented with its reason and place'),
        ...flowLines(r, /DROPPED \(TCP Flags: SYN\)|to-endpoint FORWARDED \(TCP Flags: SYN\)/, 2),
        `check SYN twice on the underlay: ${detailOf(r, /crosses the underlay twice/) ?? '?'} apart; UDP: ${detailOf(r, /first datagram never arrives/) ?? '?'}`,
      ];
    case 'C2':
      return [
        capture(r.capture, `tcp.port == ${AUTH_PORT} && tls.handshake.type == 11`, `${detailOf(r, /SPIFFE IDs/) ?? '?'} (open with mtless tshark/wireshark: ${AUTH_PORT} as TLS, key log embedded)`),
        `log agent ${detailOf(r, /cross-node TCP: the agents completed the handshake/) ?? '?'}`,
        `check ${detailOf(r, /never on a pod veth/) ?? '?'}`,
      ];
    case 'C3': {
      const secret = detailOf(r, /payload crosses the underlay in plaintext/) ?? 'secret-';
      return [capture(r.capture, `${iface('fabric/underlay')} && tcp.payload contains ${dfString(secret)}`, 'the application payload, readable on the underlay')];
    }
    case 'C4':
      return [
        capture(r.capture, `${iface('fabric/underlay')} && !(arp || udp.port == ${WG_PORT} || tcp.port == ${AUTH_PORT})`, `no frame (the check: ${detailOf(r, /underlay carries pod traffic only/) ?? '?'})`),
        `check one tunnel per node pair: ${detailOf(r, /share one WireGuard session/) ?? '?'}`,
        `check same node: ${detailOf(r, /same-node secret stays in plaintext/) ?? '?'}`,
      ];
    case 'C5':
      return [
        `map n2 ipcache: ${detailOf(r, /still maps the IP to the client/) ?? '?'} (stale)`,
        `event ${detailOf(r, /IDENTITY CONFUSION/) ?? '?'}`,
        capture(r.capture, `${iface('n2/lxc-server')} && tcp.payload contains "forbidden-payload"`, 'the forbidden pod\'s payload delivered to the server'),
        `event after heal: ${detailOf(r, /after heal the intruder is denied/) ?? '?'}`,
      ];
    case 'C6': {
      const rows = (r.measurements?.matrix as MatrixRow[] | undefined) ?? [];
      return rows.flatMap((m) => [
        `table ${m.mode}: attack ${m.attackAdmitted ? 'ADMITTED' : 'stopped'} (${m.attackVerdict}); plaintext on underlay ${m.plaintextOnUnderlay ? 'yes' : 'no'}; first packet dropped ${m.firstPacketDropped ? 'yes' : 'no'}; extra ms new pair/2nd ${m.newConnectionExtraMs.newPair ?? '?'}/${m.newConnectionExtraMs.samePair ?? '?'}`,
        `  ${m.evidence.attackAdmitted || '?'}`,
        `  ${m.evidence.plaintextOnUnderlay || '?'}`,
      ]);
    }
    case 'C7':
      return [
        capture(r.capture, `tcp.port == ${HBONE_PORT} && http2.headers.status == 403`, `the intruder's CONNECT refused inside TLS (decrypted with the embedded key log)`),
        `log n2 mesh proxy: ${detailOf(r, /denied it by certificate identity/) ?? '?'}`,
        `check ${detailOf(r, /workload SPIFFE IDs/) ?? '?'}`,
      ];
    case 'C8':
      return r.checks.filter((c) => /veth/.test(c.name) && c.detail).slice(0, 3).map((c) => `check ${c.name}: ${c.detail}`);
    case 'C9': {
      const dumps = r.narrative.filter((l) => /^ {2}auth map n2 @|^ {4}\d+:\d+:\d+:\d+ {2}expires/.test(l)).slice(0, 4).map((l) => `map ${l.trim()}`);
      return [...dumps, `log ${detailOf(r, /GC on n2 removes E/) ?? '?'}`];
    }
    case 'C10': {
      const rows = (r.measurements?.window as WindowRow[] | undefined) ?? [];
      return rows.map((w) => `table ${w.case}: W = ${w.windowMs} ms, ${w.admitted}/${w.attempts} admitted, ends with ${w.boundBy}${w.boundMs !== undefined ? ` (+${w.boundMs} ms)` : ''} (n2's flow events)`);
    }
  }
}

/** The claims table: a verdict per claim from its deciding checks, with its evidence. */
export function claimRows(claims: readonly ClaimId[], results: readonly ScenarioResult[]): ClaimRow[] {
  return claims.map((claim) => {
    const { scenario, checks } = SHOWINGS[claim];
    const r = results.find((x) => x.scenario === scenario);
    if (!r) return { claim, ok: false, scenario, held: 0, total: 0, evidence: [], problems: [`${scenario} did not run`] };
    const deciding = r.checks.filter(checks);
    const failed = deciding.filter((c) => !c.ok);
    const problems = [
      ...(r.error ? [`error: ${r.error}`] : []),
      ...(deciding.length === 0 ? ['no check of the scenario decides it'] : []),
      ...failed.map((c) => `FAIL ${c.name}${c.detail ? ` (${c.detail})` : ''}`),
    ];
    return { claim, ok: problems.length === 0, scenario, held: deciding.length - failed.length, total: deciding.length, evidence: claimEvidence(claim, r), problems };
  });
}
