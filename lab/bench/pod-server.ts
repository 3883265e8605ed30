// The servers a benchmark runs in its pods (sockperf, iperf3, socat): tagged
// so that `mtless down` stops them if the benchmark dies, and started only once
// they listen; and the sockperf and iperf3 clients that measure against them.
import type { PodPlan } from '../core/plan.ts';
import { processTag } from '../core/names.ts';
import { TAG_ENV } from '../core/processes.ts';
import { run } from '../kernel/run.ts';
import { spawn } from '../kernel/spawn.ts';
import { parseIperf3, parseSockperf } from './tool-output.ts';

/** What one sockperf run and one iperf3 run between two pods measured, with the host's CPU around them. */
export interface PathSample {
  /** sockperf pp --tcp --full-rtt, µs. */
  rttP50Us: number;
  rttAvgUs: number;
  rttP99Us: number;
  /** Round trips sockperf counted in its valid window. */
  roundTrips: number;
  /** iperf3 receiver side, Gbit/s. */
  throughputGbps: number;
  retransmits: number;
  /** Host CPU busy fraction (0..1) during the runs (ours included). */
  hostBusy: number;
  /** Host CPU busy fraction just before the runs, while the lab was idle: other jobs on the machine. */
  backgroundBusy: number;
}

/** The benchmarks' server ports in their pods. */
export const SOCKPERF_PORT = 11111;
export const IPERF_PORT = 5201;

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

/** sockperf ping-pong over TCP from `clientNetns` to the sockperf server on `serverIp`, for `seconds`. */
export async function sockperfRun(clientNetns: string, serverIp: string, seconds: number) {
  const r = await run(['sockperf', 'pp', '--tcp', '--full-rtt', '-i', serverIp, '-p', String(SOCKPERF_PORT), '-t', String(seconds)], {
    netns: clientNetns,
    timeout: (seconds + 15) * 1000,
  });
  return parseSockperf(r.stdout + '\n' + r.stderr);
}

/** One iperf3 run from `clientNetns` to the iperf3 server on `serverIp`, for `seconds`. */
export async function iperfRun(clientNetns: string, serverIp: string, seconds: number): Promise<{ throughputGbps: number; retransmits: number }> {
  // The server serves one test at a time and may still be closing the last one: one retry.
  for (let attempt = 1; ; attempt++) {
    const r = await run(['iperf3', '-c', serverIp, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', '--connect-timeout', '3000'], {
      netns: clientNetns,
      timeout: (seconds + 15) * 1000,
      okCodes: [1],
    });
    const out = parseIperf3(r.stdout);
    if (!out) throw new Error(`iperf3 printed no JSON: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
    if (!out.error && out.throughputGbps !== undefined) return { throughputGbps: out.throughputGbps, retransmits: out.retransmits };
    if (attempt >= 2 || !/busy/i.test(out.error ?? '')) throw new Error(`iperf3 failed: ${out.error ?? 'no result'}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
