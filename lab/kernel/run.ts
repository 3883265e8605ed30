// The one way the lab runs an external command. Everything that touches the
// kernel (ip, tc, bpftool, wg, nft, tcpdump …) goes through run().
import { execa, type ResultPromise } from 'execa';
import { netnsPath } from '../core/names.ts';

export interface RunOptions {
  /** Run inside this network namespace (by name), through nsenter. */
  netns?: string;
  /** Data written to the command's stdin. */
  input?: string;
  /** Milliseconds before the command is killed. Default 60 s. */
  timeout?: number;
  /** Exit codes that are not errors (e.g. a delete of something already gone). */
  okCodes?: number[];
}

export interface RunResult {
  command: string;
  netns?: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
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

export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNetns(opts.netns, argv);
  const started = performance.now();
  const r = await execa(full[0]!, full.slice(1), {
    reject: false,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    timeout: opts.timeout ?? 60_000,
    stripFinalNewline: false,
  });
  const result: RunResult = {
    command: argv.join(' '),
    netns: opts.netns,
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    durationMs: performance.now() - started,
  };
  if (r.failed && !(r.exitCode !== undefined && opts.okCodes?.includes(r.exitCode))) {
    let reason: string | undefined;
    if ((r as { code?: string }).code === 'ENOENT') reason = `command not found: ${argv[0]} (run \`lab doctor\`)`;
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

/** Starts a long-running command and hands back the child (for captures, agents, event pipes). */
export function spawn(argv: string[], opts: { netns?: string; env?: Record<string, string>; stdin?: 'pipe' | 'ignore' } = {}): ResultPromise {
  const full = inNetns(opts.netns, argv);
  return execa(full[0]!, full.slice(1), { reject: false, buffer: false, env: opts.env, stdin: opts.stdin ?? 'ignore' });
}
