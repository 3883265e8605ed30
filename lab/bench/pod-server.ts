// The servers a benchmark runs in its pods (sockperf, iperf3, socat): tagged
// so that `mtless down` stops them if the benchmark dies, and started only once
// they listen.
import type { PodPlan } from '../core/plan.ts';
import { processTag } from '../core/names.ts';
import { TAG_ENV } from '../core/processes.ts';
import { run } from '../kernel/run.ts';
import { spawn } from '../kernel/spawn.ts';

export interface PodServer {
  stop(): Promise<void>;
}

/** The tag of a benchmark's processes in a pod of `pod.node`: `mtless down` (destroyLab) stops them if the benchmark dies. */
export const benchTag = (lab: string, pod: Pick<PodPlan, 'node'>) => processTag(lab, pod.node, 'bench');

/**
 * Starts a server in a pod (spawn), tagged with `tag` (benchTag) so a killed
 * benchmark's servers die with its lab, and waits, with a deadline, until it
 * listens on the TCP port.
 */
export async function startPodServer(netns: string, argv: string[], port: number, tag: string, deadlineMs = 5000): Promise<PodServer> {
  const child = spawn(argv, { netns, env: { [TAG_ENV]: tag } });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000); // drained, so a chatty server never blocks on a full pipe
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  const done = child.then(() => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    const timer = setTimeout(() => !exited && child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(timer);
  };
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (exited) throw new Error(`${argv[0]} exited before listening: ${output.trim().slice(-400)}`);
    const ss = await run(['ss', '-Hltn', `sport = :${port}`], { netns });
    if (ss.stdout.trim()) return { stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${argv.join(' ')} not listening on :${port} after ${deadlineMs} ms: ${output.trim().slice(-400)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
