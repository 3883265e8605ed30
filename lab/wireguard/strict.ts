// WireGuard strict mode (`encryption.strict: true`), like Cilium's
// --encryption-strict-mode-cidr: bpf/strict.c's cil_to_netdev_strict at tc
// egress of every node's underlay device (eth0) drops pod traffic to another
// node's pod that would leave the node unencrypted (reason 195, a flow event
// in the node's cilium_events, the node's cilium_metrics bumped), e.g. when
// the route into the WireGuard device is missing.
//
// Pins, one load per node next to the datapath, sharing ALL of its maps:
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/strict/strict_config     (its own map)
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/strict/progs/cil_to_netdev_strict
//
// strict_config (one slot: net, mask, network byte order) holds the strict
// CIDR, the lab's pod range. It is created and filled before the program is
// loaded, so the program never runs unconfigured. Teardown needs nothing of
// its own: the filter dies with the node namespace, the pins with the lab's
// bpffs folder (`mtless down`).
import { rm } from 'node:fs/promises';
import { NODE_UNDERLAY_IFNAME, nodeBpffsDir, strictDir, strictProgPins } from '../core/names.ts';
import type { LabPlan } from '../core/plan.ts';
import { tcAttach, tcAttachedPrograms, tcDetach } from '../kernel/tc.ts';

import { mapUpdate } from '../datapath/bpftool.ts';
import { DROP_UNENCRYPTED_TRAFFIC, MAP_CODECS, STRICT_MAP_CODECS, STRICT_MAP_SPECS, STRICT_MAPS, STRICT_PROGRAMS, encodeStrictConfig } from '../abi/generated.ts';
import { BPF_DIR, loadNodeObject } from '../datapath/load.ts';
import { run } from '../kernel/run.ts';
import { type ExtraStep } from '../core/steps.ts';

export const STRICT_OBJECT = `${BPF_DIR}/build/strict.o`;
export const STRICT_PROGRAM = STRICT_PROGRAMS.toNetdev;
export const STRICT_CONFIG_MAP = STRICT_MAPS.config;
const STRICT_CONFIG_CODECS = STRICT_MAP_CODECS[STRICT_CONFIG_MAP];
const STRICT_CONFIG_SPEC = STRICT_MAP_SPECS[STRICT_CONFIG_MAP];
/** Every datapath map: strict.o includes bpf/lib/maps.h (for drop.h), so it reuses them all. */
export const STRICT_SHARED_MAPS = Object.keys(MAP_CODECS) as (keyof typeof MAP_CODECS)[];
/** Cilium's DROP_UNENCRYPTED_TRAFFIC. */
export const DROP_UNENCRYPTED = DROP_UNENCRYPTED_TRAFFIC;

export const strictConfigPin = (lab: string, node: string) => `${strictDir(lab, node)}/${STRICT_CONFIG_MAP}`;
export const strictProgPin = (lab: string, node: string) => `${strictProgPins(lab, node)}/${STRICT_PROGRAM}`;

/** The `up` step for encryption.strict: run after the datapath and WIREGUARD_STEP (it reuses the datapath's pinned maps). */
export const STRICT_STEP: ExtraStep = {
  name: 'wireguard-strict',
  run: async (plan) => void (await installStrict(plan)),
};

/** strict_config's value: net and mask of an IPv4 CIDR, network byte order (pure). */
export function strictConfigValue(cidr: string): Buffer {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`strict mode: "${cidr}" is not an IPv4 CIDR`);
  const bits = Number(m[5]);
  if (bits < 1 || bits > 32) throw new Error(`strict mode: prefix /${bits} of ${cidr} is out of range (1-32)`);
  const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  const addr = m.slice(1, 5).reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
  const dotted = (n: number) => [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
  return encodeStrictConfig({ net: dotted((addr & mask) >>> 0), mask: dotted(mask) });
}

/** Load and attach on every node; the strict CIDR is the lab's pod range. */
export async function installStrict(plan: LabPlan, opts: { objectPath?: string; cidr?: string } = {}): Promise<void> {
  const cidr = opts.cidr ?? plan.topology.addressing.podCIDR;
  const results = await Promise.allSettled(
    plan.nodes.map(async (n) => {
      await loadStrict(plan.lab, n.name, cidr, opts);
      await attachStrict(plan.lab, n.name, n.netns);
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Creates and fills strict_config, then loads bpf/build/strict.o reusing it and the node's datapath maps. */
export async function loadStrict(lab: string, node: string, cidr: string, opts: { objectPath?: string } = {}): Promise<string> {
  const value = strictConfigValue(cidr);
  await loadNodeObject({
    lab, node, feature: 'strict mode', object: opts.objectPath ?? STRICT_OBJECT,
    dir: strictDir(lab, node), progPins: strictProgPins(lab, node), sharedMaps: STRICT_SHARED_MAPS,
    ownMaps: { [STRICT_CONFIG_MAP]: strictConfigPin(lab, node) },
    prepare: async () => {
      // Same type and sizes as strict.c declares, or libbpf refuses to reuse it.
      await run(['bpftool', 'map', 'create', strictConfigPin(lab, node), 'type', STRICT_CONFIG_SPEC.type,
        'key', String(STRICT_CONFIG_CODECS.key.size), 'value', String(STRICT_CONFIG_CODECS.value.size), 'entries', String(STRICT_CONFIG_SPEC.maxEntries), 'name', STRICT_CONFIG_MAP]);
      await mapUpdate(strictConfigPin(lab, node), STRICT_CONFIG_CODECS.key.encode(0), value);
    },
  });
  return strictProgPin(lab, node);
}

/** cil_to_netdev_strict at tc egress of the node's underlay device. */
export async function attachStrict(lab: string, node: string, netns: string): Promise<void> {
  await tcAttach(netns, [{ dev: NODE_UNDERLAY_IFNAME, direction: 'egress', pin: strictProgPin(lab, node) }]);
}

/** Removes the filter (the node falls back to no strict check) and the pins. */
export async function detachStrict(lab: string, node: string, netns: string): Promise<void> {
  await tcDetach(netns, NODE_UNDERLAY_IFNAME, 'egress');
  await rm(strictDir(lab, node), { recursive: true, force: true });
}

/** Is cil_to_netdev_strict attached at eth0 egress of this node? */
export async function strictAttached(netns: string): Promise<boolean> {
  return (await tcAttachedPrograms(netns, NODE_UNDERLAY_IFNAME, 'egress')).some((p) => p.name === STRICT_PROGRAM);
}
