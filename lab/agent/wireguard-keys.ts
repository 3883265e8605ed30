// The agent's side of node-to-node WireGuard, as Cilium's pkg/wireguard/agent
// does it: the node's key pair is made here and stays in the node's state;
// the public key goes to the control plane (Cilium: the CiliumNode
// annotation network.cilium.io/wg-pub-key); the peers follow the node list
// of every snapshot. A rotation makes a new pair, sets it on the device and
// publishes it; peers that do not hear of it (a partitioned node) keep the
// old key and cannot complete a handshake with this node until they do.
import type { ClusterSnapshot } from '../control/registry.ts';
import type { Log } from '../core/log.ts';
import { desiredPeers, ensureNodeKey, setDeviceKey, syncPeers, wgFingerprint, writeNewNodeKey } from '../wireguard/index.ts';

export interface WireguardKeeperOptions {
  lab: string;
  node: string;
  netns: string;
  /** VXLAN inside WireGuard: a peer's allowed-ips is its node IP, not its pod CIDR. */
  encapsulate: boolean;
  /** POST to the control plane (mutual TLS, node credential). */
  post: (path: string, body: unknown) => Promise<unknown>;
  log: Log;
}

/** Retry a failed publication this often (the control plane may be unreachable for a while). */
const PUBLISH_RETRY_MS = 1000;

export class WireguardKeeper {
  private publicKey = '';
  private published = '';
  private retry?: NodeJS.Timeout;
  private queue = Promise.resolve();

  constructor(private readonly o: WireguardKeeperOptions) {}

  /** The node's key (kept across agent restarts) on its device. */
  async start(): Promise<void> {
    const key = await ensureNodeKey(this.o.lab, this.o.node);
    await setDeviceKey(this.o.lab, this.o.node, this.o.netns);
    this.publicKey = key.publicKey;
    this.o.log('wireguard-key', { publicKey: key.publicKey, fingerprint: wgFingerprint(key.publicKey), created: key.created });
  }

  stop(): void {
    clearTimeout(this.retry);
  }

  /** Called on every (re)connection too: a restarted control plane has forgotten the keys. */
  publish(): void {
    clearTimeout(this.retry);
    const key = this.publicKey;
    this.o.post('/v1/wireguard-key', { publicKey: key }).then(
      () => {
        this.published = key;
        this.o.log('wireguard-key-published', { publicKey: key, fingerprint: wgFingerprint(key) });
      },
      (e: Error) => {
        this.o.log('wireguard-publish-failed', { fingerprint: wgFingerprint(key), error: e.message });
        if (this.publicKey === key) this.retry = setTimeout(() => this.publish(), PUBLISH_RETRY_MS);
      },
    );
  }

  /** A new key pair on the device at once (peers that still hold the old one fail their handshakes), then published. */
  rotate(): Promise<void> {
    return this.serial(async () => {
      const old = this.publicKey;
      const pair = await writeNewNodeKey(this.o.lab, this.o.node);
      await setDeviceKey(this.o.lab, this.o.node, this.o.netns);
      this.publicKey = pair.publicKey;
      this.o.log('wireguard-key-rotated', { old: wgFingerprint(old), new: wgFingerprint(pair.publicKey), publicKey: pair.publicKey });
      this.publish();
    });
  }

  /** Peers from the snapshot's node list: add, update, remove. */
  onSnapshot(snap: ClusterSnapshot): Promise<void> {
    return this.serial(async () => {
      const want = desiredPeers(this.o.node, snap.nodes, this.o.encapsulate);
      try {
        const { added, removed } = await syncPeers(this.o.lab, this.o.node, this.o.netns, want);
        if (added.length > 0 || removed.length > 0) {
          this.o.log('wireguard-peers', {
            version: snap.version, peers: want.map((w) => `${w.node}=${wgFingerprint(w.publicKey)}`),
            added: added.map(wgFingerprint), removed: removed.map(wgFingerprint),
          });
        }
      } catch (e) {
        this.o.log('wireguard-peers-failed', { version: snap.version, error: (e as Error).message });
      }
    });
  }

  /** Key changes and peer updates one at a time, in order. */
  private serial(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(work, work);
    return this.queue;
  }
}
