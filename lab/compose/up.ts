// Bring a lab up: claim its name, then apply the plan step by step. Any
// failure (or SIGINT) rolls back everything created so far.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { run } from '../kernel/run.ts';
import type { Topology } from '../topology/model.ts';
import { destroyLab } from './down.ts';
import { planLab, type LabPlan } from '../core/plan.ts';
import { allNetns, fabricLines, FORWARDING_SYSCTL_LINE, inNetnsLines, managementLines, nodeLines, podLines } from '../core/batches.ts';
import { netnsSetup, netnsSetupAvailable } from '../kernel/netns-setup.ts';
import { CommandShell, type ShellCommand } from '../kernel/shell.ts';
import * as names from '../core/names.ts';
import { stateDir } from '../core/names.ts';
import { claimLabName, readState, writeState, type LabState } from '../core/state.ts';
import { step, type Progress } from '../core/progress.ts';
import { checkPreflight } from '../kernel/preflight.ts';
import { LAB_NAME_RE } from '../topology/model.ts';
import type { ExtraStep } from '../core/steps.ts';

/** Test hook: `MTLAB_FAIL_AFTER=<step>` makes `up` fail right after that step. */
export const FAIL_AFTER_ENV = 'MTLAB_FAIL_AFTER';
/** Test hook: `MTLAB_HOLD_AFTER=<step>` makes `up` wait after that step until interrupted (30 s at most). */
export const HOLD_AFTER_ENV = 'MTLAB_HOLD_AFTER';

export class LabInUseError extends Error {
  override name = 'LabInUseError';
}

export interface UpOptions {
  name?: string;
  topologyFile?: string;
  progress?: Progress;
  /** Checked between steps; set by the CLI on SIGINT. */
  signal?: AbortSignal;
  /** Extra steps run after the kernel build (datapath, agents …), in order. */
  extraSteps?: ExtraStep[];
}


export async function upLab(topology: Topology, opts: UpOptions = {}): Promise<LabPlan> {
  const lab = opts.name ?? topology.name;
  if (!LAB_NAME_RE.test(lab)) {
    throw new Error(`invalid lab name "${lab}": use 1-24 characters of a-z, 0-9 and "-", starting with a letter`);
  }
  await checkPreflight();
  const plan = planLab(topology, lab);

  if (!(await claimLabName(lab))) {
    const existing = await readState(lab);
    const since = existing ? ` (${existing.phase} since ${existing.createdAt})` : '';
    throw new LabInUseError(`lab "${lab}" is already in use${since}: run \`mtless down ${lab}\` first, or pick another name with --name`);
  }

  const state: LabState = {
    lab,
    phase: 'creating',
    createdAt: new Date().toISOString(),
    topologyFile: opts.topologyFile,
    podRange: topology.addressing.podCIDR,
    netns: [],
    nodes: plan.nodes.map((n) => ({
      name: n.name, id: n.id, netns: n.netns, underlayIp: n.underlayIp, mgmtIp: n.mgmtIp, podCidr: n.podCidr,
    })),
    pods: plan.nodes.flatMap((n) =>
      n.pods.map((p) => ({ name: p.name, node: n.name, netns: p.netns, ip: p.ip, lxc: p.lxc, labels: p.spec.labels })),
    ),
    processes: [],
  };

  // The kernel build's netns-setup (or `ip`) runs go through one shell (lab/kernel/shell.ts).
  const shell = new CommandShell(stateDir(lab));
  const steps: ExtraStep[] = [
    { name: 'namespaces', run: (plan, state) => createNamespaces(plan, state, shell) },
    {
      name: 'networks',
      run: (plan) => applyLines([{ netns: plan.fabricNetns, lines: fabricLines(plan) }, { netns: plan.controlNetns, lines: managementLines(plan) }], shell),
    },
    { name: 'nodes', run: (plan) => buildNodes(plan, shell) },
    // The shell's last use: closed here, not kept through the daemons' steps.
    { name: 'pods', run: async (plan) => (await buildPods(plan, shell), await shell.close()) },
    ...(opts.extraSteps ?? []),
  ];

  try {
    await writeState(state);
    for (const s of steps) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      await step(opts.progress, s.name, () => s.run(plan, state));
      if (process.env[FAIL_AFTER_ENV] === s.name) throw new Error(`failure injected after step "${s.name}" (${FAIL_AFTER_ENV})`);
      if (process.env[HOLD_AFTER_ENV] === s.name) await holdUntilAborted(s.name, opts);
    }
    if (opts.signal?.aborted) throw new Error('interrupted');
    state.phase = 'up';
    await writeState(state);
    return plan;
  } catch (err) {
    opts.progress?.({ kind: 'rollback', message: `rolling back lab "${lab}": ${(err as Error).message}` });
    await shell.close();
    await destroyLab(lab);
    throw err;
  }
}

async function holdUntilAborted(stepName: string, opts: UpOptions): Promise<void> {
  opts.progress?.({ kind: 'info', message: `holding after step "${stepName}" (${HOLD_AFTER_ENV})` });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    opts.signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** `ip -batch -` (in a namespace: `ip -n NS -batch -`) with the lines on stdin, as ipBatch() runs it. */
function ipBatchCommand(lines: string[], netns?: string): ShellCommand {
  return { argv: netns ? ['ip', '-n', netns, '-batch', '-'] : ['ip', '-batch', '-'], input: lines.join('\n') + '\n', netns };
}

/** A step's `ip` lines, by namespace (none: the host's). */
interface NetnsLines {
  netns?: string;
  lines: string[];
}

/**
 * With bpf/build/netns-setup, one run of it for the whole step (it enters
 * each namespace in turn); without it, one `ip -batch` per namespace, side
 * by side.
 */
async function applyLines(groups: NetnsLines[], shell: CommandShell): Promise<void> {
  if (!netnsSetupAvailable()) return void (await shell.run(groups.map((g) => ipBatchCommand(g.lines, g.netns))));
  // The helper cannot go back to the host's namespace by name: host lines come first.
  if (groups.some((g, i) => i > 0 && !g.netns && groups[i - 1]!.netns)) throw new Error('applyLines: the host\'s lines must come before any namespace\'s');
  await netnsSetup(groups.flatMap((g) => (g.netns ? inNetnsLines(g.netns, g.lines) : g.lines)), shell);
}

async function createNamespaces(plan: LabPlan, state: LabState, shell: CommandShell): Promise<void> {
  const all = allNetns(plan);
  // Recorded before they exist: a crash mid-batch still leaves a full list for `down`.
  state.netns = all;
  await writeState(state);
  await applyLines([{ lines: all.map((ns) => `netns add ${ns}`) }], shell);
}

/** Each node's addresses, routes and pod veths, and its forwarding. */
async function buildNodes(plan: LabPlan, shell: CommandShell): Promise<void> {
  if (netnsSetupAvailable()) {
    return applyLines(plan.nodes.map((n) => ({ netns: n.netns, lines: [...nodeLines(plan, n), FORWARDING_SYSCTL_LINE] })), shell);
  }
  await applyLines(plan.nodes.map((n) => ({ netns: n.netns, lines: nodeLines(plan, n) })), shell);
  await Promise.all(plan.nodes.map((n) => run(['sysctl', '-qw', 'net.ipv4.ip_forward=1'], { netns: n.netns })));
}

/**
 * Each pod's address, gateway neighbour and route. With netns-setup, one
 * run for every pod; without it, one `ip -n POD -batch FILE` per pod, the
 * files written first and xargs running them four at a time.
 */
async function buildPods(plan: LabPlan, shell: CommandShell): Promise<void> {
  const range = plan.topology.addressing.podCIDR;
  const pods = plan.nodes.flatMap((n) => n.pods);
  if (netnsSetupAvailable()) return applyLines(pods.map((p) => ({ netns: p.netns, lines: podLines(range, p) })), shell);
  const dir = await mkdtemp(`${stateDir(plan.lab)}/pods-`);
  try {
    const invocations: string[] = [];
    for (const p of pods) {
      const file = `${dir}/${p.name}.batch`;
      await writeFile(file, podLines(range, p).join('\n') + '\n');
      invocations.push(`-n ${p.netns} -batch ${file}`);
    }
    if (invocations.length > 0) await run(['xargs', '-P', '4', '-L', '1', 'ip'], { input: invocations.join('\n') + '\n' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
