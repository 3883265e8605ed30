// Starting the small real applications of lab/apps inside pods: echo.c and
// probe.c, built by `make -C bpf` into bpf/build/.
import { nodeNetns, processTag } from '../core/names.ts';
import { TAG_ENV } from '../core/processes.ts';
import { builtProgram } from '../core/repo.ts';
import { readState } from '../core/state.ts';
import { podPlace, run, type Place } from '../kernel/run.ts';
import { spawn, type ResultPromise } from '../kernel/spawn.ts';

/** argv of lab/apps/echo.c (serve / send). */
const echoArgv = (args: string[]) => [builtProgram('echo'), ...args];
/** argv of lab/apps/probe.c. */
const probeArgv = (args: string[]) => [builtProgram('probe'), ...args];

export interface EchoServer {
  proc: ResultPromise;
  /** Every line it printed so far ("RECV <peer> <text>"). */
  lines: string[];
  /**
   * Whether a line containing `text` arrives within `timeoutMs`. A client
   * exits the moment its echo is back, which can be before the server's own
   * line has reached us through its pipe: wait for it, never read once.
   */
  sawText: (text: string, timeoutMs?: number) => Promise<boolean>;
  stop: () => Promise<void>;
}

/**
 * Where and how an app in a pod runs: through the node's cgroup when the lab
 * runs sockmap (so its sockets are accelerated), tagged so `down` stops it.
 */
async function inPod(lab: string, pod: string): Promise<{ place: Place; env: Record<string, string> }> {
  const node = (await readState(lab))?.pods.find((p) => p.name === pod)?.node;
  return { place: podPlace(lab, node, pod), env: node === undefined ? {} : { [TAG_ENV]: processTag(lab, node, 'pod-app') } };
}

/** Starts the echo server in a pod and waits (with a deadline) for its READY line. */
export async function startEchoServer(lab: string, pod: string, proto: 'tcp' | 'udp', port: number, deadlineMs = 15_000): Promise<EchoServer> {
  const { place, env } = await inPod(lab, pod);
  const proc = spawn(echoArgv(['serve', proto, String(port)]), { ...place, env });
  const lines: string[] = [];
  const onLine: (() => void)[] = [];
  let pending = '';
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`echo server in ${pod} not ready after ${deadlineMs} ms`)), deadlineMs);
    proc.stdout?.on('data', (d: Buffer) => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const l of parts) {
        lines.push(l);
        if (l.startsWith('READY')) {
          clearTimeout(timer);
          resolveReady();
        }
      }
      for (const f of [...onLine]) f();
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`echo server in ${pod} exited with ${code}`));
    });
  });
  const sawText = (text: string, timeoutMs = 10_000) => new Promise<boolean>((resolve) => {
    const done = (seen: boolean) => {
      clearTimeout(timer);
      const i = onLine.indexOf(check);
      if (i >= 0) onLine.splice(i, 1);
      resolve(seen);
    };
    const check = () => {
      if (lines.some((l) => l.includes(text))) done(true);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    onLine.push(check);
    check();
  });
  return {
    proc,
    lines,
    sawText,
    stop: async () => {
      proc.kill('SIGTERM');
      await proc.catch(() => undefined);
    },
  };
}

export interface EchoResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Wall time of the client process, start to exit. */
  ms: number;
  /** Stopped through the signal before it ended by itself. */
  canceled?: boolean;
}

/** Runs the echo client in a pod; resolves with its exit code and output. */
export async function echoSend(
  lab: string, pod: string, proto: 'tcp' | 'udp', host: string, port: number, text: string, extra: string[] = [], signal?: AbortSignal,
): Promise<EchoResult> {
  const { place, env } = await inPod(lab, pod);
  const started = performance.now();
  const r = await run(echoArgv(['send', proto, host, String(port), text, ...extra]), { ...place, env, okCodes: 'any', signal });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started, ...(r.canceled ? { canceled: true } : {}) };
}

/** echoSend from a node's own namespace (a node process, no pod): to show what the node can reach past the mesh. */
export async function echoSendFromNode(
  lab: string, node: string, proto: 'tcp' | 'udp', host: string, port: number, text: string, extra: string[] = [], signal?: AbortSignal,
): Promise<EchoResult> {
  const started = performance.now();
  const r = await run(echoArgv(['send', proto, host, String(port), text, ...extra]), {
    netns: nodeNetns(lab, node), env: { [TAG_ENV]: processTag(lab, node, 'pod-app') }, okCodes: 'any', signal,
  });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started, ...(r.canceled ? { canceled: true } : {}) };
}

export interface ProbeAttempt {
  attempt: number;
  /** The connection's source port (to match it with flow events). */
  sport?: number;
  /** When the attempt started, epoch ms (the pod app's clock). */
  startedAt: number;
  ok: boolean;
  ms: number;
  error?: string;
}

interface ProbePace {
  intervalMs: number;
  count: number;
  durationMs: number;
  attemptTimeoutMs?: number;
  stopAfterFailures?: number;
}

/** lab/apps/probe.c's arguments, shared by runProbe and startProbe. */
const probeArgs = (host: string, port: number, text: string, p: ProbePace) => [host, String(port), text,
  '--interval', String(p.intervalMs), '--count', String(p.count), '--duration', String(p.durationMs),
  '--attempt-timeout', String(p.attemptTimeoutMs ?? 400), '--stop-after-failures', String(p.stopAfterFailures ?? 0)];

/**
 * Runs lab/apps/probe.c in a pod: a new TCP connection every `intervalMs`,
 * bounded by `count` and `durationMs`; resolves with every attempt. It may
 * start as soon as the pod's namespace exists: attempts before the pod's
 * network is ready fail at once and count as attempts.
 */
export async function runProbe(lab: string, pod: string, host: string, port: number, text: string,
  opts: ProbePace & { node?: string; sequential?: boolean }): Promise<ProbeAttempt[]> {
  // With `node`, the pod need not be in the lab's state yet: only its namespace must exist.
  const { place, env } = opts.node !== undefined
    ? { place: podPlace(lab, opts.node, pod), env: { [TAG_ENV]: processTag(lab, opts.node, 'pod-app') } }
    : await inPod(lab, pod);
  const args = [...probeArgs(host, port, text, opts), ...(opts.sequential ? ['--sequential'] : [])];
  const r = await run(probeArgv(args), { ...place, env, okCodes: 'any' });
  if (r.exitCode !== 0) throw new Error(`probe in ${pod} exited with ${r.exitCode}: ${r.stderr.trim()}`);
  return probeAttempts(r.stdout);
}

/** The attempts of lab/apps/probe.c's output (one JSON line each; the closing summary line is not one). */
export function probeAttempts(stdout: string): ProbeAttempt[] {
  return stdout.split('\n').filter((l) => l.startsWith('{"attempt"')).map((l) => JSON.parse(l) as ProbeAttempt);
}

export interface StartedProbe {
  /** The probe process runs (its first line): from here on it waits for the pod's address. */
  ready: Promise<void>;
  /** Every attempt, when it ends. */
  done: Promise<ProbeAttempt[]>;
  /** Ends it: no attempt starts after, the ones under way finish, and `done` resolves with every attempt. */
  stop: () => void;
}

/**
 * Starts lab/apps/probe.c in a pod staged ahead (stagePod, then addPod with
 * `staged`): it says when it runs, then waits (at most `addressWaitMs`)
 * for the pod's address and probes from there, `durationMs` counted from the
 * address. A caller that awaits `ready` before making the pod keeps a process
 * start out of what it measures.
 */
export function startProbe(lab: string, node: string, pod: string, host: string, port: number, text: string,
  opts: ProbePace & { addressWaitMs: number }): StartedProbe {
  const args = [...probeArgs(host, port, text, opts), '--wait-for-address', String(opts.addressWaitMs)];
  const proc = spawn(probeArgv(args), {
    ...podPlace(lab, node, pod), env: { [TAG_ENV]: processTag(lab, node, 'pod-app') },
  });
  let stdout = '';
  let stderr = '';
  let readyNow: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (readyNow = resolve));
  proc.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (stdout.includes('{"ready":true}')) readyNow();
  });
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = (async () => {
    const r = await proc;
    if (r.exitCode !== 0) throw new Error(`probe in ${pod} exited with ${r.exitCode ?? r.signal}: ${stderr.trim()}`);
    return probeAttempts(stdout);
  })();
  // Ready, or the reason it never will be.
  const ended = done.then(() => { throw new Error(`probe in ${pod} ended before it was ready`); });
  return { ready: Promise.race([ready, ended]), done, stop: () => void proc.kill('SIGTERM') };
}
