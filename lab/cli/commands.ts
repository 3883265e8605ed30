// One entry per CLI verb: its options, its help line, and a thin run().
import type { ParseArgsConfig } from 'node:util';
import { destroyLab, listLabsOnHost } from '../compose/down.ts';
import { kernelChecks, toolChecks } from '../compose/doctor.ts';
import { upLab, LabInUseError } from '../compose/up.ts';
import { labStatus, allLabStatuses, type LabStatus } from '../compose/status.ts';
import { readState } from '../core/state.ts';
import { netnsPath } from '../core/names.ts';
import { isRoot, PreflightError } from '../kernel/preflight.ts';
import { loadTopologyFile, formatIssues, TopologyError } from '../topology/validate.ts';
import { printProgress } from './print.ts';
import { execa } from 'execa';
import { podLaunchArgv } from '../sockmap/pod.ts';

import { UsageError } from './errors.ts';
import { CLUSTER_COMMANDS } from './cluster-commands.ts';
import { SCENARIO_COMMANDS } from './scenario-commands.ts';
import { BENCH_COMMANDS } from './bench-commands.ts';
import { captureCommand } from '../capture/cli.ts';
import { LAB_NAME_RE } from '../topology/model.ts';
export { UsageError };

type Values = Record<string, string | boolean | undefined>;
export interface Command {
  summary: string;
  args: string;
  options?: ParseArgsConfig['options'];
  run: (args: string[], values: Values) => Promise<number>;
}

function requireRoot(what: string): void {
  if (!isRoot()) throw Object.assign(new PreflightError(`${what} needs root: the lab creates namespaces and loads BPF programs (run it with sudo)`), { exitCode: 1 });
}

function oneLabName(args: string[], what: string): string {
  const [lab, extra] = args;
  if (!lab) throw new UsageError(`${what}: missing lab name`);
  if (extra) throw new UsageError(`${what}: unexpected argument "${extra}"`);
  if (!LAB_NAME_RE.test(lab)) throw new UsageError(`${what}: invalid lab name "${lab}"`);
  return lab;
}

export const COMMANDS: Record<string, Command> = {
  validate: {
    summary: 'check topology files; touches no kernel state (exit 2 when any is invalid)',
    args: 'FILE…',
    run: async (files) => {
      if (files.length === 0) throw new UsageError('validate: missing FILE');
      let code = 0;
      for (const file of files) {
        try {
          const topo = await loadTopologyFile(file);
          const pods = topo.nodes.reduce((n, node) => n + node.pods.length, 0);
          console.log(`${file}: valid (lab "${topo.name}", ${topo.nodes.length} nodes, ${pods} pods, ${topo.policies.length} policies)`);
        } catch (e) {
          if (!(e instanceof TopologyError)) throw e;
          process.stderr.write(formatIssues(e.issues, file).join('\n') + '\n');
          code = 2;
        }
      }
      return code;
    },
  },

  up: {
    summary: 'build a lab from a topology file',
    args: 'FILE [--name N] [--no-agents] [--svid-ttl S] [--gc-interval S]',
    options: {
      name: { type: 'string', short: 'n' },
      'no-agents': { type: 'boolean' },
      'svid-ttl': { type: 'string' },
      'gc-interval': { type: 'string' },
    },
    run: async ([file], v) => {
      if (!file) throw new UsageError('up: missing FILE');
      let topo;
      try {
        topo = await loadTopologyFile(file);
      } catch (e) {
        if (e instanceof TopologyError) {
          process.stderr.write(formatIssues(e.issues, file).join('\n') + '\n');
          return 2;
        }
        throw e;
      }
      requireRoot('up');
      const lab = (v.name as string | undefined) ?? topo.name;
      const abort = new AbortController();
      const onSignal = () => {
        process.stderr.write('\ninterrupted: finishing the current step, then rolling back…\n');
        abort.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const started = performance.now();
      try {
        const { upWithDatapath } = await import('../compose/lab.ts');
        const plan = await upWithDatapath(topo, {
          name: lab, topologyFile: file, progress: printProgress, signal: abort.signal,
          agents: !v['no-agents'],
          svidTtlMs: seconds(v['svid-ttl'], 'svid-ttl'),
          gcIntervalMs: seconds(v['gc-interval'], 'gc-interval'),
        });
        const pods = plan.nodes.reduce((n, node) => n + node.pods.length, 0);
        console.log(`lab "${lab}" is up: ${plan.nodes.length} nodes, ${pods} pods in ${Math.round(performance.now() - started)} ms`);
        return 0;
      } catch (e) {
        if (e instanceof LabInUseError) {
          process.stderr.write(`lab: ${e.message}\n`);
          return 2;
        }
        throw e;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    },
  },

  down: {
    summary: 'remove a lab and everything it created (no topology file needed)',
    args: 'NAME | --all',
    options: { all: { type: 'boolean' } },
    run: async (args, v) => {
      requireRoot('down');
      const labs = v.all ? await listLabsOnHost() : [oneLabName(args, 'down')];
      if (v.all && args.length > 0) throw new UsageError('down: give a NAME or --all, not both');
      if (labs.length === 0) console.log('no labs on this host');
      for (const lab of labs) {
        const r = await destroyLab(lab);
        const what = [`${r.netns.length} namespaces`, `${r.processes} processes`, r.removedPins ? 'pins' : '', r.removedCgroups ? 'cgroups' : '']
          .filter(Boolean).join(', ');
        console.log(`lab "${lab}" is down (removed ${what})`);
      }
      return 0;
    },
  },

  status: {
    summary: 'nodes, pods, addresses and processes of one lab or all',
    args: '[NAME] [--json]',
    options: { json: { type: 'boolean' } },
    run: async (args, v) => {
      const statuses = args.length > 0 ? [await labStatus(oneLabName(args, 'status'))] : await allLabStatuses();
      const found = statuses.filter((s): s is LabStatus => s !== undefined);
      if (v.json) {
        console.log(JSON.stringify(args.length > 0 ? (found[0] ?? null) : found, null, 2));
      } else if (found.length === 0) {
        console.log(args.length > 0 ? `no lab named "${args[0]}"` : 'no labs on this host');
      } else {
        for (const s of found) console.log(formatStatus(s));
      }
      return args.length > 0 && found.length === 0 ? 1 : 0;
    },
  },

  exec: {
    summary: 'run a command inside a pod (or node) namespace',
    args: 'NAME/POD -- CMD…',
    run: async ([target, ...cmd]) => {
      requireRoot('exec');
      const m = /^([^/]+)\/([^/]+)$/.exec(target ?? '');
      if (!m) throw new UsageError('exec: expected NAME/POD');
      if (cmd.length === 0) throw new UsageError('exec: missing command after --');
      const [, lab, who] = m as unknown as [string, string, string];
      const state = await readState(lab);
      if (!state) throw new Error(`no lab named "${lab}" (see \`lab status\`)`);
      const pod = state.pods.find((p) => p.name === who);
      const node = state.nodes.find((n) => n.name === who);
      if (!pod && !node) {
        const valid = [...state.pods.map((p) => p.name), ...state.nodes.map((n) => n.name)].join(', ');
        throw new Error(`lab "${lab}" has no pod or node "${who}" (valid: ${valid})`);
      }
      // A pod's command joins its node's cgroup when the lab runs sockmap.
      const argv = pod ? podLaunchArgv(lab, pod.node, pod.name, cmd) : ['nsenter', `--net=${netnsPath(node!.netns)}`, '--', ...cmd];
      const r = await execa(argv[0]!, argv.slice(1), { stdio: 'inherit', reject: false });
      return r.exitCode ?? 1;
    },
  },

  doctor: {
    summary: 'check the kernel features and tools the lab needs',
    args: '[--json]',
    options: { json: { type: 'boolean' } },
    run: async (_args, v) => {
      const [kernel, tools] = await Promise.all([kernelChecks(), toolChecks()]);
      if (v.json) {
        console.log(JSON.stringify({ kernel, tools }, null, 2));
      } else {
        console.log('kernel:');
        for (const c of kernel) console.log(`  ${c.ok ? 'yes' : c.optional ? 'no ' : 'NO '}  ${c.name.padEnd(30)} ${c.detail}`);
        console.log('tools:');
        for (const t of tools) {
          const status = t.ok ? 'yes' : t.requiredForUp ? 'NO ' : 'no ';
          console.log(`  ${status}  ${t.name.padEnd(13)} ${(t.ok ? t.version : `missing: ${t.hint}`)?.padEnd(52)} ${t.purpose}`);
        }
      }
      const bad = kernel.some((c) => !c.ok && !c.optional) || tools.some((t) => !t.ok && t.requiredForUp);
      return bad ? 1 : 0;
    },
  },
};

/** A positive number of seconds from an option, in ms. */
function seconds(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0)) throw new UsageError(`--${name}: expected a positive number of seconds, got "${value}"`);
  return n * 1000;
}

Object.assign(COMMANDS, { capture: captureCommand }, CLUSTER_COMMANDS, SCENARIO_COMMANDS, BENCH_COMMANDS);

function formatStatus(s: LabStatus): string {
  const lines = [`lab ${s.lab}: ${s.phase}${s.createdAt ? ` since ${s.createdAt}` : ''}${s.topologyFile ? ` (${s.topologyFile})` : ''}`];
  for (const n of s.nodes) {
    lines.push(`  node ${n.name} (id ${n.id})  underlay ${n.underlayIp}  mgmt ${n.mgmtIp}  pods ${n.podCidr}${n.netnsPresent ? '' : '  [namespace missing]'}`);
    for (const p of s.pods.filter((p) => p.node === n.name)) {
      const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',');
      const id = p.identity !== undefined ? `  ID:${p.identity}` : '';
      lines.push(`    pod ${p.name.padEnd(12)} ${p.ip.padEnd(15)} ${p.lxc.padEnd(15)}${id}  ${labels}${p.netnsPresent ? '' : '  [namespace missing]'}`);
    }
  }
  for (const p of s.processes) lines.push(`  process ${p.pid} ${p.role ?? p.tag} ${p.alive ? 'running' : 'DEAD'}`);
  if (s.strayNetns.length > 0) lines.push(`  stray namespaces (run \`lab down ${s.lab}\`): ${s.strayNetns.join(', ')}`);
  return lines.join('\n');
}

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  lab ${n} ${c.args}\n      ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n`;
}
