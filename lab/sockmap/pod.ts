// Starting processes in a pod *and* in its node's cgroup. sock_ops runs for
// the sockets of processes in the cgroup it is attached to, and a socket
// belongs to the cgroup its process was in when it created it (an accepted
// socket to the listener's). So the process joins the cgroup first, then
// enters the pod's network namespace, then execs the program.
import { nodeCgroupDir, podNetns, processTag } from '../core/names.ts';
import { TAG_ENV } from '../core/processes.ts';
import { placeArgv, type Place } from '../kernel/run.ts';
import { spawn, type ResultPromise } from '../kernel/spawn.ts';

/** `pod`'s namespace inside `node`'s cgroup (which must exist: the lab runs sockmap). */
export function podInNodeCgroup(lab: string, node: string, pod: string): Place {
  return { netns: podNetns(lab, pod), cgroup: nodeCgroupDir(lab, node) };
}

/** argv that runs `argv` in `pod`'s namespace, inside `node`'s cgroup (which must exist). */
export function podCommand(lab: string, node: string, pod: string, argv: string[]): string[] {
  return placeArgv(podInNodeCgroup(lab, node, pod), argv);
}

/** The role part of the process tag of everything started here. */
export const POD_APP_ROLE = 'sockmap-app';

/** A process in a pod (and its node's cgroup), with its output as lines. */
export class PodProcess {
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  exit?: { code?: number; signal?: string };
  readonly exited: Promise<void>;
  private listeners: (() => void)[] = [];

  constructor(readonly what: string, readonly proc: ResultPromise) {
    const collect = (into: string[]) => {
      let pending = '';
      return (d: Buffer) => {
        pending += d.toString();
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        into.push(...parts);
        for (const l of this.listeners) l();
      };
    };
    proc.stdout?.on('data', collect(this.stdoutLines));
    proc.stderr?.on('data', collect(this.stderrLines));
    this.exited = proc.then(
      (r) => {
        this.exit = { code: r.exitCode, signal: r.signal };
        for (const l of this.listeners) l();
      },
      (e: Error) => {
        this.exit = { signal: `error: ${e.message}` };
        for (const l of this.listeners) l();
      },
    );
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Resolves with the first line (stdout or stderr) matching `re`, or undefined at the deadline or exit. */
  waitForLine(re: RegExp, timeoutMs: number, from = { stdout: 0, stderr: 0 }): Promise<string | undefined> {
    return new Promise((resolve) => {
      const find = () => this.stdoutLines.slice(from.stdout).find((l) => re.test(l)) ?? this.stderrLines.slice(from.stderr).find((l) => re.test(l));
      const check = () => {
        const line = find();
        if (line !== undefined || this.exit) done(line);
      };
      const timer = setTimeout(() => done(find()), timeoutMs);
      const done = (line: string | undefined) => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
        resolve(line);
      };
      this.listeners.push(check);
      check();
    });
  }

  /** Where the output stands now, for waitForLine(…, from). */
  mark(): { stdout: number; stderr: number } {
    return { stdout: this.stdoutLines.length, stderr: this.stderrLines.length };
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.exit) this.proc.kill(sig);
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once the process is reaped. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.exit) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Waits for exit (SIGKILL at the deadline). */
  async wait(timeoutMs: number): Promise<{ code?: number; signal?: string }> {
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    return this.exit!;
  }

  describe(): string {
    const tail = [...this.stderrLines, ...this.stdoutLines].filter((l) => l.trim()).slice(-3).join(' | ');
    const how = this.exit ? (this.exit.signal ? `killed by ${this.exit.signal}` : `exit code ${this.exit.code}`) : 'running';
    return `${this.what}: ${how}${tail ? `: ${tail}` : ''}`;
  }
}

/**
 * Starts `argv` in `pod` inside `node`'s cgroup, tagged so that `mtless down`
 * stops it (which it must: a cgroup with processes cannot be removed).
 */
export function spawnInPod(lab: string, node: string, pod: string, argv: string[], opts: { role?: string } = {}): PodProcess {
  const proc = spawn(argv, { ...podInNodeCgroup(lab, node, pod), env: { [TAG_ENV]: processTag(lab, node, opts.role ?? POD_APP_ROLE) } });
  return new PodProcess(`${argv[0]} in ${pod}`, proc);
}

/** Runs `argv` to completion in `pod` (and `node`'s cgroup); killed at the deadline. */
export async function runInPod(
  lab: string, node: string, pod: string, argv: string[], opts: { role?: string; timeoutMs: number },
): Promise<{ exitCode: number; signal?: string; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const p = spawnInPod(lab, node, pod, argv, opts);
  const exit = await p.wait(opts.timeoutMs);
  return {
    exitCode: exit.code ?? -1,
    signal: exit.signal,
    stdout: p.stdoutLines.join('\n'),
    stderr: p.stderrLines.join('\n'),
    ms: performance.now() - started,
  };
}
