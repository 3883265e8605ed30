// Attaching pinned BPF programs to a device's tc hooks: the one attach of the
// datapath (pod veths), the overlay (VXLAN device) and strict mode (underlay
// device), in one of two modes:
//   tcx     one tcx link per hook (kernel ≥ 6.6, what Cilium uses where it
//           can): made by bpf/build/tcx-attach, since this bpftool/libbpf
//           cannot, and pinned under the node's bpffs folder
//           (links/<dev>/<direction>, names.ts), so `down` frees it;
//   clsact  a clsact qdisc and one cls_bpf direct-action filter per hook.
// The mode is chosen once per process: tcx where a trial attach in a
// throwaway namespace works, clsact otherwise or when MTLESS_TC_ATTACH says
// so. Detach removes whichever is there, so nothing records the mode.
import { access, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NETNS_PREFIX, nodeLinkPins, nodeOfNetns, tcxLinkPin } from '../core/names.ts';
import { REPO_ROOT } from '../core/repo.ts';
import { CommandError, run } from './run.ts';

export type TcDirection = 'ingress' | 'egress';
export type TcAttachMode = 'tcx' | 'clsact';
export const TC_ATTACH_MODES: readonly TcAttachMode[] = ['tcx', 'clsact'];

/** Forces a mode (tcx or clsact) instead of the probe's choice. */
export const TC_ATTACH_ENV = 'MTLESS_TC_ATTACH';
/** Built by `make -C bpf` from bpf/tools/tcx-attach.c. */
export const TCX_HELPER = join(REPO_ROOT, 'bpf', 'build', 'tcx-attach');

export interface TcAttachment {
  dev: string;
  direction: TcDirection;
  /** A program pinned in bpffs. */
  pin: string;
}

export interface TcAttachChoice {
  mode: TcAttachMode;
  /** Why this mode: the probe's finding, or the override. */
  why: string;
}

// ---- choosing the mode ------------------------------------------------------------

let probed: Promise<TcAttachChoice> | undefined;

/**
 * The mode attaches use in this process: MTLESS_TC_ATTACH when set, else
 * tcx when this kernel makes tcx links (probed once), else clsact.
 */
export async function tcAttachMode(): Promise<TcAttachChoice> {
  const forced = process.env[TC_ATTACH_ENV];
  if (forced) {
    if (!(TC_ATTACH_MODES as readonly string[]).includes(forced)) throw new Error(`${TC_ATTACH_ENV} must be one of ${TC_ATTACH_MODES.join(', ')}, not "${forced}"`);
    return { mode: forced as TcAttachMode, why: `${TC_ATTACH_ENV}=${forced}` };
  }
  probed ??= probeTcx().then((p) => (p.ok ? { mode: 'tcx', why: p.why } : { mode: 'clsact', why: `no tcx: ${p.why}` }));
  return probed;
}

/**
 * Tries a tcx attach for real: the helper attaches a pass-through program
 * to lo of a throwaway namespace (always deleted). Needs root.
 */
export async function probeTcx(): Promise<{ ok: boolean; why: string }> {
  if (!(await exists(TCX_HELPER))) return { ok: false, why: `${TCX_HELPER} is not built (make -C bpf)` };
  // Like doctor's: "." is in no lab's names, so `down` never takes it for a lab's.
  const ns = `${NETNS_PREFIX}.tcx-probe-${process.pid}`;
  await run(['ip', 'netns', 'add', ns]);
  try {
    await run([TCX_HELPER, 'probe'], { netns: ns, timeout: 10_000 });
    return { ok: true, why: 'a trial tcx link in a throwaway namespace worked' };
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return { ok: false, why: error.result.stderr.trim().split('\n')[0] || error.message };
  } finally {
    await run(['ip', 'netns', 'delete', ns], { okCodes: [1] });
  }
}

// ---- clsact -----------------------------------------------------------------------

// One filter per hook at a fixed prio/handle: `replace` makes attaching
// twice leave one filter, not two, and detach names exactly ours.
const FILTER = ['prio', '1', 'handle', '1', 'bpf'];

/** `tc -batch` lines (pure): a clsact per device, before that device's filters. */
export function tcAttachLines(attachments: TcAttachment[]): string[] {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const a of attachments) {
    if (!seen.has(a.dev)) {
      seen.add(a.dev);
      lines.push(`qdisc replace dev ${a.dev} clsact`);
    }
    lines.push(`filter replace dev ${a.dev} ${a.direction} ${FILTER.join(' ')} da pinned ${a.pin}`);
  }
  return lines;
}

// ---- tcx --------------------------------------------------------------------------

/** The node whose bpffs folder holds a namespace's links: only node namespaces have one. */
function linkOwner(netns: string): { lab: string; node: string } {
  const owner = nodeOfNetns(netns);
  if (!owner) throw new Error(`tcx links are pinned under a node's bpffs folder: ${netns} is not a node namespace (use clsact)`);
  return owner;
}

/** tcx-attach batch lines (pure): one link per hook, pinned under the node's folder. */
export function tcxAttachLines(netns: string, attachments: TcAttachment[]): string[] {
  const { lab, node } = linkOwner(netns);
  return attachments.map((a) => `attach ${a.dev} ${a.direction} ${a.pin} ${tcxLinkPin(lab, node, a.dev, a.direction)}`);
}

// ---- attach, detach, query ------------------------------------------------------------

/**
 * Attaches every program in one process inside `netns` (tc -batch, or the
 * tcx helper's batch), in `mode` or the process's (tcAttachMode). Attaching
 * again replaces the program on that hook in place. Switching a hook to the
 * other mode needs a tcDetach first, or both would run.
 * nsenter (run's netns), not `tc -n`: `tc -n` remounts /sys and would not
 * see the pins.
 */
export async function tcAttach(netns: string, attachments: TcAttachment[], opts: { mode?: TcAttachMode } = {}): Promise<TcAttachMode> {
  const mode = opts.mode ?? (await tcAttachMode()).mode;
  if (attachments.length === 0) return mode;
  if (mode === 'tcx') await run([TCX_HELPER, '-'], { netns, input: tcxAttachLines(netns, attachments).join('\n') + '\n' });
  else await run(['tc', '-batch', '-'], { netns, input: tcAttachLines(attachments).join('\n') + '\n' });
  return mode;
}

/**
 * Removes ours from one hook of `dev`, or, without a direction, from both
 * (the device's clsact with every filter on it): the tcx links found by
 * their pins (detached at once, then unpinned) and the clsact filters.
 * Nothing there to remove is fine.
 */
export async function tcDetach(netns: string, dev: string, direction?: TcDirection): Promise<void> {
  const owner = nodeOfNetns(netns);
  if (owner) {
    const pins = (direction ? [direction] : (['ingress', 'egress'] as const)).map((d) => tcxLinkPin(owner.lab, owner.node, dev, d));
    const present = (await Promise.all(pins.map(async (p) => ((await exists(p)) ? p : undefined)))).filter((p) => p !== undefined);
    if (present.length > 0) {
      await run([TCX_HELPER, '-'], { netns, input: present.map((p) => `detach ${p}`).join('\n') + '\n' });
      // The device's folder, once empty (rmdir refuses otherwise).
      await rmdir(`${nodeLinkPins(owner.lab, owner.node)}/${dev}`).catch(() => undefined);
    }
  }
  if (direction) await run(['tc', 'filter', 'del', 'dev', dev, direction, ...FILTER], { netns, okCodes: [0, 1, 2] });
  else await run(['tc', 'qdisc', 'del', 'dev', dev, 'clsact'], { netns, okCodes: [2] });
}

export interface AttachedProgram {
  id: number;
  /** The program's full name (bpftool reads it from BTF; the kernel keeps 15 characters). */
  name: string;
  via: TcAttachMode;
}

/** The BPF programs on one hook of `dev`, whichever way they were attached (tcx first: it runs first). */
export async function tcAttachedPrograms(netns: string, dev: string, direction: TcDirection): Promise<AttachedProgram[]> {
  const ids: { id: number; via: TcAttachMode }[] = [];
  if (await exists(TCX_HELPER)) {
    // A kernel without tcx refuses the query: then nothing is attached that way.
    const q = await run([TCX_HELPER, 'query', dev, direction], { netns, okCodes: [1] });
    if (q.exitCode === 0) for (const id of q.stdout.trim().split(/\s+/).filter(Boolean)) ids.push({ id: Number(id), via: 'tcx' });
  }
  const tc = await run(['tc', '-j', 'filter', 'show', 'dev', dev, direction], { netns, okCodes: [1, 2] });
  if (tc.exitCode === 0 && tc.stdout.trim()) {
    const filters = JSON.parse(tc.stdout) as { kind?: string; options?: { prog?: { id?: number } } }[];
    for (const f of filters) if (f.kind === 'bpf' && f.options?.prog?.id !== undefined) ids.push({ id: f.options.prog.id, via: 'clsact' });
  }
  return Promise.all(
    ids.map(async ({ id, via }) => {
      const r = await run(['bpftool', '-j', 'prog', 'show', 'id', String(id)], { okCodes: [255] });
      const name = r.exitCode === 0 ? ((JSON.parse(r.stdout) as { name?: string }).name ?? '') : '';
      return { id, name, via };
    }),
  );
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
