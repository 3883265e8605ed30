// Shared helpers of the root-only test tiers: skip reasons, host snapshots,
// leftovers of a lab, and real applications started inside pods.
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as names from '../../lab/core/names.ts';
import { run } from '../../lab/kernel/run.ts';
import { findTaggedProcesses } from '../../lab/core/processes.ts';

export const ROOT = process.getuid?.() === 0;
/** tap's skip option: a reason when not root, false otherwise. */
export const needsRoot: string | false = ROOT ? false : 'needs root: builds real namespaces and BPF programs (CI runs as root)';

export const REPO = resolve(import.meta.dirname, '../..');
/** The real `mtless` command, as users run it: the compiled build (scripts/setup makes it). */
export const LAB_CLI = resolve(REPO, 'bin/mtless');

/** Runs the real `mtless` command. */
export function labCli(args: string[], opts: { env?: Record<string, string> } = {}) {
  return execa(LAB_CLI, args, { reject: false, env: opts.env, all: true });
}

/** The host namespace's links, addresses and routes, to compare before and after. */
export async function hostNetSnapshot(): Promise<string> {
  const parts = await Promise.all([
    run(['ip', '-o', 'link', 'show']),
    run(['ip', '-o', 'addr', 'show']),
    run(['ip', 'route', 'show', 'table', 'all']),
    run(['ip', '-6', 'route', 'show', 'table', 'all']),
  ]);
  // Counters and timers change on their own; keep what the lab could alter.
  return parts.map((p) => p.stdout.replace(/valid_lft \S+ preferred_lft \S+/g, '')).join('\n---\n');
}

/** Everything of a lab still on the host: namespaces, pins, cgroups, state, tagged processes. */
export async function labLeftovers(lab: string): Promise<string[]> {
  const left: string[] = [];
  const prefix = names.labNetnsPrefix(lab);
  for (const ns of await readdir('/run/netns').catch(() => [])) if (ns.startsWith(prefix)) left.push(`netns ${ns}`);
  for (const dir of [names.labBpffsDir(lab), names.labCgroupDir(lab), names.stateDir(lab)]) {
    if ((await readdir(dir).catch(() => null)) !== null) left.push(`dir ${dir}`);
  }
  // Lab processes carry their tag in the environment (MTLAB_TAG), not in argv.
  for (const p of await findTaggedProcesses(lab)) left.push(`process ${p.pid} ${p.tag}`);
  return left;
}

/** BPF programs loaded on the host, by id (to check that nothing of ours stays). */
export async function bpfProgIds(): Promise<number[]> {
  const r = await run(['bpftool', '-j', 'prog', 'show']);
  return (JSON.parse(r.stdout || '[]') as { id: number }[]).map((p) => p.id);
}

export function podNetns(lab: string, pod: string): string {
  return names.podNetns(lab, pod);
}

export async function inPod(lab: string, pod: string, argv: string[], okCodes?: number[]) {
  return run(argv, { netns: names.podNetns(lab, pod), okCodes });
}

export async function ping(lab: string, pod: string, ip: string) {
  return inPod(lab, pod, ['ping', '-c', '1', '-W', '2', ip], [1]);
}

export { startEchoServer, echoSend, type EchoServer as Server } from '../../lab/apps/pod-apps.ts';
