// The one way the lab starts a process. Everything that touches the kernel
// (ip, tc, bpftool, wg, nft, tcpdump …) and every lab process goes through
// one of these shapes:
//   run()          to completion, output collected, a typed CommandError
//   spawn()        a long-lived child with streamed output; it dies with us (spawn.ts)
//   startDetached  a daemon that outlives us, logging to a file
//   runAttached()  on our terminal (stdio inherited), for `mtless exec`
// Each runs at a Place: a network namespace, and optionally a cgroup
// (podPlace: a pod's namespace and its node's cgroup).
import { spawn as spawnChild } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { netnsPath, nodeCgroupDir, podNetns } from '../core/names.ts';

/** Where a process runs. */
export interface Place {
  /** Inside this network namespace (by name), through nsenter. */
  netns?: string;
  /**
   * Inside this cgroup v2 directory, joined before the namespace is entered:
   * a socket belongs to the cgroup its process was in when it made it
   * (sockmap's sock_ops runs for the node cgroup's sockets).
   */
  cgroup?: string;
}

export interface RunOptions extends Place {
  /** Data written to the command's stdin. */
  input?: string;
  /** Milliseconds before the command is killed. Default 60 s. */
  timeout?: number;
  /** Exit codes that are not errors (e.g. a delete of something already gone); 'any': the caller judges the exit code. */
  okCodes?: number[] | 'any';
  /** Added to our environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Stops the command (SIGTERM). With okCodes 'any' a stopped command is a result (exitCode -1, `canceled`), not an error. */
  signal?: AbortSignal;
}

export interface RunResult {
  command: string;
  netns?: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** Stopped through RunOptions.signal. */
  canceled?: boolean;
}

/** The single error type of every failed command: says what, where, how and why. */
export class CommandError extends Error {
  constructor(readonly result: RunResult, readonly reason?: string) {
    const where = result.netns ? ` (in netns ${result.netns})` : '';
    const why = reason ?? (result.stderr.trim() || result.stdout.trim() || `exit code ${result.exitCode}`);
    super(`${result.command}${where} failed: ${why}`);
    this.name = 'CommandError';
  }
}

/**
 * nsenter --net keeps the host's mount namespace, so /sys/fs/bpf and the
 * cgroup tree stay visible (`ip netns exec` would remount /sys and hide them).
 */
export function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['nsenter', `--net=${netnsPath(netns)}`, '--', ...argv] : argv;
}

// $0 = the cgroup directory, "$@" = the rest. The shell writes its own pid,
// then exec keeps that pid through nsenter (which execs too: --net alone
// needs no fork) into the program: joined first, namespace second.
const JOIN_CGROUP = 'echo $$ > "$0/cgroup.procs" || exit 125; exec "$@"';

/** argv that runs `argv` at `place` (the pid stays the program's). */
export function placeArgv(place: Place, argv: string[]): string[] {
  const entered = inNetns(place.netns, argv);
  return place.cgroup ? ['sh', '-c', JOIN_CGROUP, place.cgroup, ...entered] : entered;
}

/**
 * A pod's place: its namespace, and its node's cgroup when the node has one
 * (the lab runs sockmap), so the pod's sockets are accelerated there.
 */
export function podPlace(lab: string, node: string | undefined, pod: string): Place {
  const cgroup = node === undefined ? undefined : nodeCgroupDir(lab, node);
  return { netns: podNetns(lab, pod), cgroup: cgroup !== undefined && existsSync(cgroup) ? cgroup : undefined };
}

/**
 * execa is loaded on first use: importing it costs about as much as starting
 * Node itself, and commands such as `mtless exec` or `--help` never need it.
 */
let execaModule: Promise<typeof import('execa')> | undefined;
const loadExeca = () => (execaModule ??= import('execa'));

export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = placeArgv(opts, argv);
  const started = performance.now();
  const { execa } = await loadExeca();
  const r = await execa(full[0]!, full.slice(1), {
    reject: false,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    timeout: opts.timeout ?? 60_000,
    stripFinalNewline: false,
    env: opts.env,
    cwd: opts.cwd,
    cancelSignal: opts.signal,
  });
  const result: RunResult = {
    command: argv.join(' '),
    netns: opts.netns,
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    durationMs: performance.now() - started,
    ...(r.isCanceled ? { canceled: true } : {}),
  };
  const ok = (r.exitCode !== undefined && (opts.okCodes === 'any' || opts.okCodes?.includes(r.exitCode))) || (r.isCanceled && opts.okCodes === 'any');
  if (r.failed && !ok) {
    let reason: string | undefined;
    if ((r as { code?: string }).code === 'ENOENT') reason = `command not found: ${argv[0]} (run \`mtless doctor\`)`;
    else if (r.timedOut) reason = `timed out after ${opts.timeout ?? 60_000} ms`;
    else if (r.signal) reason = `killed by ${r.signal}`;
    throw new CommandError(result, reason);
  }
  return result;
}

/** Runs `ip -batch -` (optionally inside a namespace): one process for many changes. */
export async function ipBatch(lines: string[], netns?: string): Promise<RunResult | undefined> {
  if (lines.length === 0) return undefined;
  const argv = netns ? ['ip', '-n', netns, '-batch', '-'] : ['ip', '-batch', '-'];
  return run(argv, { input: lines.join('\n') + '\n' });
}

/** Runs a command on our terminal (stdin, stdout, stderr inherited): `mtless exec`. */
export async function runAttached(argv: string[], place: Place = {}): Promise<{ exitCode?: number; signal?: string }> {
  const full = placeArgv(place, argv);
  const child = spawnChild(full[0]!, full.slice(1), { stdio: 'inherit' });
  return new Promise((resolve) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      process.stderr.write(`mtless: ${full[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
      resolve({ exitCode: 127 });
    });
    child.on('close', (code, signal) => resolve({ exitCode: code ?? undefined, signal: signal ?? undefined }));
  });
}

export interface DetachedOptions extends Place {
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Added to our environment. */
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Starts a daemon detached from us (own session, no pipes), so it outlives
 * the CLI that started it. `logOffset` is where its output starts in the log
 * (a restart appends to the same file).
 */
export async function startDetached(argv: string[], opts: DetachedOptions): Promise<{ pid: number; logOffset: number }> {
  const log = await open(opts.logFile, 'a', 0o600);
  try {
    const logOffset = (await log.stat()).size;
    const full = placeArgv(opts, argv);
    const child = spawnChild(full[0]!, full.slice(1), {
      cwd: opts.cwd, detached: true, stdio: ['ignore', log.fd, log.fd], env: { ...process.env, ...opts.env },
    });
    child.on('error', () => {}); // a failed start shows as a missing pid
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')}`);
    return { pid: child.pid, logOffset };
  } finally {
    await log.close();
  }
}
