// Starting the small real applications of lab/apps inside pods.
import { execa, type ResultPromise } from 'execa';
import { resolve } from 'node:path';
import { podNetns, netnsPath, processTag } from '../core/names.ts';
import { TAG_ENV } from '../core/processes.ts';
import { readState } from '../core/state.ts';
import { podLaunchArgv } from '../sockmap/pod.ts';

const REPO = resolve(import.meta.dirname, '../..');
const ECHO_APP = resolve(REPO, 'lab/apps/echo.ts');

export interface EchoServer {
  proc: ResultPromise;
  /** Every line it printed so far ("RECV <peer> <text>"). */
  lines: string[];
  stop: () => Promise<void>;
}

/**
 * argv and environment of an app in a pod: through the node's cgroup when the
 * lab runs sockmap (so its sockets are accelerated), tagged so `down` stops it.
 */
async function inPod(lab: string, pod: string, args: string[]): Promise<{ argv: string[]; env: Record<string, string> }> {
  const app = [process.execPath, '--import', 'tsx', ECHO_APP, ...args];
  const node = (await readState(lab))?.pods.find((p) => p.name === pod)?.node;
  if (!node) return { argv: ['nsenter', `--net=${netnsPath(podNetns(lab, pod))}`, '--', ...app], env: {} };
  return { argv: podLaunchArgv(lab, node, pod, app), env: { [TAG_ENV]: processTag(lab, node, 'pod-app') } };
}

/** Starts the echo server in a pod and waits (with a deadline) for its READY line. */
export async function startEchoServer(lab: string, pod: string, proto: 'tcp' | 'udp', port: number, deadlineMs = 15_000): Promise<EchoServer> {
  const { argv, env } = await inPod(lab, pod, ['serve', proto, String(port)]);
  const proc = execa(argv[0]!, argv.slice(1), { reject: false, buffer: false, cwd: REPO, env });
  const lines: string[] = [];
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
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`echo server in ${pod} exited with ${code}`));
    });
  });
  return {
    proc,
    lines,
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
}

/** Runs the echo client in a pod; resolves with its exit code and output. */
export async function echoSend(lab: string, pod: string, proto: 'tcp' | 'udp', host: string, port: number, text: string, extra: string[] = []): Promise<EchoResult> {
  const { argv, env } = await inPod(lab, pod, ['send', proto, host, String(port), text, ...extra]);
  const started = performance.now();
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, cwd: REPO, env });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), ms: performance.now() - started };
}
