// Starting the small real applications of lab/apps inside pods.
import { execa, type ResultPromise } from 'execa';
import { resolve } from 'node:path';
import { podNetns, netnsPath } from '../core/names.ts';

const REPO = resolve(import.meta.dirname, '../..');
const ECHO_APP = resolve(REPO, 'lab/apps/echo.ts');

export interface EchoServer {
  proc: ResultPromise;
  /** Every line it printed so far ("RECV <peer> <text>"). */
  lines: string[];
  stop: () => Promise<void>;
}

function inPod(lab: string, pod: string, args: string[]): [string, string[]] {
  return ['nsenter', [`--net=${netnsPath(podNetns(lab, pod))}`, '--', process.execPath, '--import', 'tsx', ECHO_APP, ...args]];
}

/** Starts the echo server in a pod and waits (with a deadline) for its READY line. */
export async function startEchoServer(lab: string, pod: string, proto: 'tcp' | 'udp', port: number, deadlineMs = 15_000): Promise<EchoServer> {
  const [cmd, args] = inPod(lab, pod, ['serve', proto, String(port)]);
  const proc = execa(cmd, args, { reject: false, buffer: false, cwd: REPO });
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
  const [cmd, args] = inPod(lab, pod, ['send', proto, host, String(port), text, ...extra]);
  const started = performance.now();
  const r = await execa(cmd, args, { reject: false, cwd: REPO });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), ms: performance.now() - started };
}
