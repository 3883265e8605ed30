// The node agent: one per node, in the node's namespace. It keeps the maps
// in sync with the control plane, is the single reader of the signal map,
// authenticates each requested key with the handler of its auth type
// (auth-handlers.ts: spire = the out-of-band mutual-auth handshake), and
// writes and garbage-collects the auth map — as Cilium's pkg/auth does. Its
// counters (metrics.ts) are served as Prometheus text on the management
// address (metrics-server.ts).
import { request } from 'node:https';
import { readFile } from 'node:fs/promises';
import type { ClusterSnapshot } from '../control/registry.ts';
import { CONTROL_PLANE_SPIFFE_ID, HEARTBEAT_MS } from '../control/server.ts';
import { authEntryWrite, dumpAuth, deleteAuthEntry, type AuthEntry } from '../datapath/auth.ts';
import { MapWriter } from '../datapath/map-writer.ts';
import { streamSignals, type EventStream } from '../datapath/events.ts';
import { AUTH_PORT, AUTH_TYPE_EXPLICIT, CONTROL_PORT, IDENTITY_MIN_CLUSTER, METRICS_PORT, SIGNAL_AUTH_REQUIRED, SIGNAL_TEXT, type AuthKey, type SignalMsg } from '../abi/generated.ts';
import { clockOffsetNs, readIfindexes } from '../datapath/load.ts';
import { compileNodeState, writeNodeState, type NodeDatapathState } from '../datapath/state.ts';
import { generateSvidKey, certNotAfter } from '../spiffe/keys.ts';
import { prepareClientContext, startAuthServer, type AuthServer, type CertAndKey } from './handshake.ts';
import { alwaysFailHandler, AuthHandlerTable, authenticateKey, authTypeName, spireHandler } from './auth-handlers.ts';
import { AgentMetrics, signalName } from './metrics.ts';
import { localAddressTowards, startMetricsServer, type MetricsServer } from './metrics-server.ts';
import type { AgentConfig } from './config.ts';
import { planFromSnapshot } from './cluster.ts';
import { WireguardKeeper } from './wireguard-keys.ts';
import { nodeNetns } from '../core/names.ts';
import { RepeatLimiter, type Log } from '../core/log.ts';

/** Cilium backs a key off for 1 s after a request, "based on the default TCP retransmission timeout". */
export const AUTH_BACKOFF_MS = 1000;
/**
 * The request queue: at most this many authentications in flight (distinct
 * keys; duplicates and backed-off keys never enter). Cilium's 1024
 * (mesh-auth-queue-size) bounds the signals waiting in a channel instead,
 * each handed to its own goroutine; either way a full queue drops the
 * request, counted as "channel overflow" (README, "Faithful to Cilium").
 */
export const AUTH_QUEUE_MAX = 1024;

/** Refused connections on the auth port: one line per reason per window, then a count of the rest. */
export const SERVE_FAILURE_WINDOW_MS = 1000;

/** What the intake did with a request. */
export type Intake = 'queued' | 'reserved' | 'pending' | 'backoff' | 'overflow';

interface Svid extends CertAndKey {
  notBefore: Date;
  notAfter: Date;
}

/** Unix ms to the microsecond (the log's `time` has ms only): the auth benchmark's clock beside the kernel's. */
const clockOffset = clockOffsetNs();
const unixMs = () => Math.round(Number(process.hrtime.bigint() + clockOffset) / 1e3) / 1e3;

const keyText = (k: AuthKey) => `${k.localSecLabel}:${k.remoteSecLabel}:${k.remoteNodeId}:${k.authType}`;

export class NodeAgent {
  private snapshot?: ClusterSnapshot;
  private compiled?: NodeDatapathState;
  private readonly svids = new Map<number, Svid>();
  private readonly pending = new Set<string>();
  /** When each key last got its entry written: signals already in flight then are not new requests. */
  private readonly lastSuccess = new Map<string, number>();
  private queued = 0;
  private signals?: EventStream;
  /** One long-lived bpftool for auth-map writes (a process per write costs ~10 ms). */
  private readonly writer = new MapWriter();
  private authServer?: AuthServer;
  private metricsServer?: MetricsServer;
  readonly metrics = new AgentMetrics();
  /** Cilium's auth handlers, by auth type. */
  private readonly handlers: AuthHandlerTable;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private watchAbort?: AbortController;
  private trustBundle = '';
  private nodeCert = '';
  private nodeKey = '';
  private wireguard?: WireguardKeeper;
  /** A flood of bad connections costs a line and a summary per reason per second, not a line each. */
  private readonly serveFailures = new RepeatLimiter({
    windowMs: SERVE_FAILURE_WINDOW_MS,
    onSuppressed: (reason, n, first, last) => this.log('auth-serve-suppressed', {
      reason, suppressed: n, message: `suppressed ${n} more ${reason}`, first: new Date(first).toISOString(), last: new Date(last).toISOString(),
    }),
  });

  constructor(private readonly cfg: AgentConfig, private readonly log: Log) {
    this.handlers = new AuthHandlerTable([
      spireHandler({ svid: (id) => this.svids.get(id), trustBundlePem: () => this.trustBundle, keyLogFile: cfg.keyLogFile }),
      alwaysFailHandler(),
    ]);
  }

  async start(): Promise<void> {
    [this.trustBundle, this.nodeCert, this.nodeKey] = await Promise.all([
      readFile(this.cfg.trustBundleFile, 'utf8'), readFile(this.cfg.nodeCertFile, 'utf8'), readFile(this.cfg.nodeKeyFile, 'utf8'),
    ]);
    this.authServer = await startAuthServer({
      host: this.cfg.underlayIp,
      port: AUTH_PORT,
      trustBundlePem: this.trustBundle,
      keyLogFile: this.cfg.keyLogFile,
      getCertificate: (id) => this.svids.get(id),
      onHandshake: (e) => this.log('auth-served', { sni: e.sni, peer: e.peerSpiffeId ?? e.peerUris, from: `${e.remoteAddress}:${e.remotePort}`, ms: round(e.durationMs) }),
      onError: (e) => {
        if (!this.serveFailures.admit(e.reason)) return;
        const time = new Date(this.serveFailures.windowStart(e.reason)!).toISOString();
        this.log('auth-serve-failed', { time, reason: e.reason, message: e.message, sni: e.sni, from: e.remoteAddress });
      },
    });
    // The address this node reaches the control plane from is its management address.
    const mgmtIp = await localAddressTowards(new URL(this.cfg.controlUrl).hostname, CONTROL_PORT);
    this.metricsServer = await startMetricsServer(mgmtIp, METRICS_PORT, () => this.metrics.render());
    if (this.cfg.wireguard) {
      this.wireguard = new WireguardKeeper({
        lab: this.cfg.lab, node: this.cfg.node, netns: nodeNetns(this.cfg.lab, this.cfg.node), encapsulate: this.cfg.wireguard.encapsulate,
        post: (path, body) => this.controlPost(path, body), log: this.log,
      });
      await this.wireguard.start();
    }
    // The single reader of this node's signal map.
    this.signals = streamSignals(this.cfg.lab, this.cfg.node, (s) => this.onSignal(s));
    await this.signals.ready;
    this.writer.start();
    this.watch();
    this.timers.push(setInterval(() => void this.gc('interval'), this.cfg.gcIntervalMs));
    this.timers.push(setInterval(() => void this.rotateSvids(), 1000));
    this.timers.push(setInterval(() => this.serveFailures.flush(), SERVE_FAILURE_WINDOW_MS));
    this.log('started', {
      underlay: this.cfg.underlayIp, authPort: AUTH_PORT, control: this.cfg.controlUrl,
      metrics: `http://${mgmtIp}:${METRICS_PORT}/metrics`, authTypes: this.handlers.types.map(authTypeName),
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.serveFailures.flush(true);
    this.watchAbort?.abort();
    this.wireguard?.stop();
    await this.signals?.stop().catch(() => undefined);
    this.writer.close();
    await this.authServer?.close();
    await this.metricsServer?.close();
  }

  // ---- control plane ----------------------------------------------------------

  /** The watch stream; reconnects with a short backoff, and when heartbeats stop (partition). */
  private watch(): void {
    if (this.stopping) return;
    const abort = new AbortController();
    this.watchAbort = abort;
    let lastLine = Date.now();
    let buffered = '';
    const retry = () => {
      if (abort.signal.aborted) return;
      abort.abort();
      clearInterval(watchdog);
      if (!this.stopping) setTimeout(() => this.watch(), 500);
    };
    const watchdog = setInterval(() => {
      if (Date.now() - lastLine > 3 * HEARTBEAT_MS) {
        this.log('control-plane-lost', { silentMs: Date.now() - lastLine });
        retry();
      }
    }, HEARTBEAT_MS);
    const req = request(
      `${this.cfg.controlUrl}/v1/watch`,
      { ...this.controlTls(), signal: abort.signal },
      (res) => {
        if (res.statusCode !== 200) {
          this.log('control-plane-refused', { status: res.statusCode });
          res.resume();
          return retry();
        }
        this.log('control-plane-connected', {});
        this.wireguard?.publish();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          lastLine = Date.now();
          buffered += chunk;
          let nl;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            const msg = JSON.parse(line) as { type: string; snapshot?: ClusterSnapshot };
            if (msg.type === 'snapshot' && msg.snapshot) void this.applySnapshot(msg.snapshot);
          }
        });
        res.on('end', retry);
        res.on('error', retry);
      },
    );
    req.on('error', (e) => {
      if (!abort.signal.aborted) this.log('control-plane-unreachable', { error: e.message });
      retry();
    });
    req.end();
  }

  private applying = Promise.resolve();
  /** Serialised: snapshots apply in order, each one fully. */
  private applySnapshot(snap: ClusterSnapshot): Promise<void> {
    this.applying = this.applying.then(async () => {
      if (this.snapshot && snap.version < this.snapshot.version) return;
      const started = performance.now();
      try {
        const { plan, identities } = planFromSnapshot(this.cfg.lab, snap);
        const state = compileNodeState(plan, this.cfg.node, identities);
        // The writer's helper runs in this node's namespace and lists its links; bpftool cannot.
        const ifindexes = (await this.writer.ifindexes()) ?? (await readIfindexes(nodeNetns(this.cfg.lab, this.cfg.node)));
        // Endpoints whose veth is not there yet are written on a later snapshot.
        state.endpoints = state.endpoints.filter((e) => ifindexes.has(e.lxc));
        state.policy = state.policy.filter((e) => ifindexes.has(e.lxc));
        const stats = await writeNodeState(this.cfg.lab, this.cfg.node, state, ifindexes, { io: this.writer });
        const first = !this.snapshot;
        this.snapshot = snap;
        this.compiled = state;
        // syncMs: from the snapshot's turn to the last map write (what a peer waits for).
        this.log('maps-synced', { version: snap.version, ...stats, syncMs: Math.round((performance.now() - started) * 10) / 10 });
        await this.wireguard?.onSnapshot(snap);
        await this.ensureSvids();
        // `mtless up` waits for this line: maps written and SVIDs held, handshakes can succeed.
        if (first) this.log('ready', { identities: [...this.svids.keys()] });
        if (!first) await this.gc('snapshot');
      } catch (e) {
        this.log('sync-failed', { version: snap.version, error: (e as Error).message });
      }
    });
    return this.applying;
  }

  /** `mtless wireguard rotate`: a new WireGuard key pair for this node, published. */
  async rotateWireguardKey(): Promise<void> {
    if (!this.wireguard) this.log('wireguard-rotate-ignored', { reason: 'this lab runs no WireGuard' });
    else await this.wireguard.rotate();
  }

  // ---- SVIDs --------------------------------------------------------------------

  /** An SVID for every identity with a pod on this node; the key pair never leaves the node. */
  private async ensureSvids(): Promise<void> {
    const local = new Set(this.compiled?.endpoints.map((e) => e.identity) ?? []);
    for (const id of local) if (!this.svids.has(id)) await this.fetchSvid(id, 'new');
    for (const id of [...this.svids.keys()]) {
      if (!local.has(id)) {
        this.svids.delete(id);
        this.log('svid-dropped', { identity: id });
      }
    }
  }

  private async fetchSvid(identity: number, why: string): Promise<boolean> {
    try {
      const key = await generateSvidKey();
      const res = await this.controlPost('/v1/svid', { identity, publicKeyPem: key.publicKeyPem });
      const certPem = String(res.certPem);
      const notAfter = certNotAfter(certPem);
      const svid = { certPem, keyPem: key.keyPem, notBefore: new Date(), notAfter };
      this.svids.set(identity, svid);
      // Both sides' TLS contexts (~1 ms each: key, certificate and bundle parsed) are built
      // here, so an identity's first handshake does not pay for them.
      prepareClientContext(svid, this.trustBundle);
      this.authServer?.prepare(identity);
      this.log('svid-received', { identity, why, notAfter: notAfter.toISOString() });
      return true;
    } catch (e) {
      this.log('svid-failed', { identity, why, error: (e as Error).message });
      return false;
    }
  }

  private rotating = false;
  /** Rotation before expiry, then re-authentication of every entry that used the old SVID. */
  private async rotateSvids(): Promise<void> {
    if (this.rotating) return; // one pass at a time: a slow control plane must not stack them
    this.rotating = true;
    try {
      const now = Date.now();
      for (const [id, svid] of [...this.svids]) {
        const life = svid.notAfter.getTime() - svid.notBefore.getTime();
        if (now < svid.notBefore.getTime() + life * this.cfg.rotateAtFraction) continue;
        if (!(await this.fetchSvid(id, 'rotation'))) continue; // keep the old one; retried next tick
        for (const entry of await dumpAuth(this.cfg.lab, this.cfg.node, this.writer).catch(() => [])) {
          if (entry.key.localSecLabel === id || entry.key.remoteSecLabel === id) this.onAuthRequired(entry.key, 'rotation');
        }
      }
      // A dump costs milliseconds of this loop's time (through the writer's
      // helper): only when an entry this agent wrote may be due (the map stays the truth).
      if (this.refreshMayBeDue(Date.now())) this.refreshPeerBounded(await dumpAuth(this.cfg.lab, this.cfg.node, this.writer).catch(() => []), Date.now());
    } finally {
      this.rotating = false;
    }
  }

  /** The expirations this agent wrote (Unix ms), by key, and unknown ones before the first dump (undefined). */
  private written?: Map<string, { key: AuthKey; expiration: number }>;

  /** Whether refreshPeerBounded could act on any entry we know of; true while we know none (after a restart). */
  private refreshMayBeDue(now: number): boolean {
    if (!this.written) {
      this.written = new Map();
      return true; // entries of an earlier agent on this node: look once
    }
    return refreshCandidates([...this.written.values()], (id) => this.svids.get(id), now, this.cfg.rotateAtFraction).length > 0;
  }

  /** When each key was last refreshed for a peer's rotation. */
  private readonly refreshedAt = new Map<string, number>();

  /**
   * The peer renews its SVID on its own clock, and this node holds no SVID of
   * a remote identity, so it never hears of that rotation (Cilium's agents get
   * a rotation event for every identity). An entry that expires before our own
   * SVID is bounded by the peer's certificate; once less than
   * (1 - rotateAtFraction) of an SVID life is left, the peer has renewed it:
   * re-authenticate to pick up the new NotAfter. Retried (at most every
   * max(1 s, life/100)) until the peer has rotated.
   */
  private refreshPeerBounded(entries: AuthEntry[], now: number): void {
    const known = entries.map((e) => ({ key: e.key, expiration: e.expiration.getTime() }));
    this.written = new Map(known.map((e) => [keyText(e.key), e])); // what the map holds now, whoever wrote or deleted it
    const due = refreshCandidates(known, (id) => this.svids.get(id), now, this.cfg.rotateAtFraction);
    for (const entry of due) {
      const svid = this.svids.get(entry.key.localSecLabel)!;
      const life = svid.notAfter.getTime() - svid.notBefore.getTime();
      const k = keyText(entry.key);
      if (now - (this.refreshedAt.get(k) ?? 0) < Math.max(AUTH_BACKOFF_MS, life / 100)) continue;
      this.refreshedAt.set(k, now);
      this.onAuthRequired(entry.key, 'peer rotation');
    }
  }

  /**
   * Mutual TLS to the control plane: our node credential, its certificate
   * checked against the lab CA and by its SPIFFE id (it has no IP SAN).
   */
  private controlTls() {
    return {
      cert: this.nodeCert, key: this.nodeKey, ca: this.trustBundle, minVersion: 'TLSv1.3' as const,
      checkServerIdentity: (_host: string, cert: { subjectaltname?: string }) =>
        cert.subjectaltname?.includes(`URI:${CONTROL_PLANE_SPIFFE_ID}`) ? undefined : new Error(`control plane presented ${cert.subjectaltname}`),
    };
  }

  private controlPost(path: string, body: unknown): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.cfg.controlUrl}${path}`, {
        method: 'POST', ...this.controlTls(), timeout: 5000,
        headers: { 'content-type': 'application/json' },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const json = JSON.parse(text || '{}') as Record<string, unknown>;
          if (res.statusCode === 200) resolve(json);
          else reject(new Error(`control plane answered ${res.statusCode}: ${json.error ?? text}`));
        });
      });
      req.on('timeout', () => req.destroy(new Error('control plane timed out')));
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  // ---- authentication -------------------------------------------------------------

  /** One record of cilium_signals, counted as Cilium's signal manager counts it. */
  private onSignal(s: SignalMsg): void {
    const signal = signalName(SIGNAL_TEXT[s.signalNr], s.signalNr);
    if (s.signalNr !== SIGNAL_AUTH_REQUIRED) {
      this.metrics.signalHandled(signal, '', 'unregistered');
      return;
    }
    const intake = this.onAuthRequired(s.auth);
    this.metrics.signalHandled(signal, authTypeName(s.auth.authType), intake === 'overflow' ? 'channel overflow' : 'received');
  }

  /** Intake of an auth request: skip reserved identities, de-duplicate, back off 1 s per key. */
  onAuthRequired(key: AuthKey, why = 'signal'): Intake {
    const k = keyText(key);
    if (key.localSecLabel < IDENTITY_MIN_CLUSTER || key.remoteSecLabel < IDENTITY_MIN_CLUSTER) {
      this.log('auth-skipped', { key: k, reason: 'reserved identity' });
      return 'reserved';
    }
    if (this.pending.has(k)) return 'pending';
    // Back off 1 s after an entry was written for this key (Cilium: the default TCP RTO);
    // a failed attempt does not hold the next one back.
    const last = this.lastSuccess.get(k) ?? 0;
    if (why === 'signal' && Date.now() - last < AUTH_BACKOFF_MS) return 'backoff';
    if (this.queued >= AUTH_QUEUE_MAX) {
      this.log('auth-queue-full', { key: k, max: AUTH_QUEUE_MAX });
      return 'overflow';
    }
    this.log('auth-requested', { key: k, why, at: unixMs() });
    this.pending.add(k);
    this.queued++;
    this.metrics.pending(this.queued);
    void this.authenticate(key, why).finally(() => {
      this.pending.delete(k);
      this.queued--;
      this.metrics.pending(this.queued);
    });
    return 'queued';
  }

  private async authenticate(key: AuthKey, why: string): Promise<void> {
    const k = keyText(key);
    const started = performance.now();
    const outcome = await authenticateKey(key, {
      handlers: this.handlers,
      nodeIp: (id) => (id === 0 ? this.cfg.underlayIp : this.snapshot?.nodes.find((n) => n.id === id)?.underlayIp),
      writer: { write: (authKey, expiration) => this.writer.apply(authEntryWrite(this.cfg.lab, this.cfg.node, authKey, expiration)) },
    });
    if (!outcome.ok) {
      this.metrics.authAttempt(outcome.authType, 'fail', outcome.reason);
      this.log('auth-failed', { key: k, authType: outcome.authType, reason: outcome.reason, detail: outcome.detail });
      return;
    }
    const r = outcome.response;
    this.lastSuccess.set(k, Date.now());
    this.written?.set(k, { key, expiration: r.expiration.getTime() });
    this.metrics.authAttempt(outcome.authType, 'success');
    // writtenAt: when the kernel had the entry (the map writer's clock), before its answer reached us.
    this.log('auth-completed', {
      at: unixMs(), ...(outcome.entryWrittenAt !== undefined ? { writtenAt: outcome.entryWrittenAt } : {}),
      key: k, why, authType: outcome.authType, peer: r.peer, remoteNodeIp: outcome.remoteNodeIp, expiration: r.expiration.toISOString(),
      ...(r.handshakeMs !== undefined ? { handshakeMs: round(r.handshakeMs) } : {}), totalMs: round(performance.now() - started),
    });
  }

  // ---- garbage collection --------------------------------------------------------

  /**
   * Removes auth entries that are expired, whose remote node or identity is
   * gone, or that no policy of this node requires any more (Cilium's authmap_gc).
   */
  async gc(trigger: string): Promise<number> {
    const snap = this.snapshot;
    if (!snap || !this.compiled) return 0;
    const nodeIds = new Set(snap.nodes.map((n) => n.id));
    const identities = new Set(snap.identities.map((i) => i.id));
    const local = new Map(this.compiled.endpoints.map((e) => [e.lxc, e.identity]));
    const required = new Set<string>();
    for (const p of this.compiled.policy) {
      if ((p.authType & ~AUTH_TYPE_EXPLICIT) === 0) continue;
      required.add(`${local.get(p.lxc)}:${p.peerIdentity}`);
    }
    const requires = (l: number, r: number) => required.has(`${l}:${r}`) || required.has(`${l}:0`);
    let removed = 0;
    const now = Date.now();
    for (const entry of await dumpAuth(this.cfg.lab, this.cfg.node, this.writer).catch(() => [])) {
      const { key } = entry;
      let why: string | undefined;
      if (entry.expiration.getTime() <= now) why = 'expired';
      else if (key.remoteNodeId !== 0 && !nodeIds.has(key.remoteNodeId)) why = 'node deleted';
      else if (!identities.has(key.localSecLabel) || !identities.has(key.remoteSecLabel)) why = 'identity deleted';
      else if (!requires(key.localSecLabel, key.remoteSecLabel)) why = 'no policy requires it';
      if (!why) continue;
      if (await deleteAuthEntry(this.cfg.lab, this.cfg.node, key)) {
        this.written?.delete(keyText(key));
        removed++;
        this.log('auth-gc', { key: keyText(key), why, trigger });
      }
    }
    return removed;
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * Entries bounded by the peer's certificate (they expire before our own
 * SVID) with less than (1 - rotateAtFraction) of an SVID life left: the
 * peer has renewed its SVID by then, and re-authenticating picks up the new
 * NotAfter. Expired ones are GC's; ones bounded by our SVID, our rotation's.
 */
export function refreshCandidates<E extends { key: AuthKey; expiration: number }>(
  entries: E[], svid: (identity: number) => { notBefore: Date; notAfter: Date } | undefined, now: number, rotateAtFraction: number,
): E[] {
  return entries.filter((e) => {
    const s = svid(e.key.localSecLabel);
    if (!s || e.expiration <= now || e.expiration >= s.notAfter.getTime()) return false;
    return e.expiration - now <= (s.notAfter.getTime() - s.notBefore.getTime()) * (1 - rotateAtFraction);
  });
}
