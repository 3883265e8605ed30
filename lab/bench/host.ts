// The machine under a benchmark: what it is (kernel, CPUs, load average) and
// how busy its CPUs are (/proc/stat), so a benchmark can wait for other jobs
// to quiet down before a measurement and say how loaded the machine was.
import { readFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';

/** CPU busy fraction under which the host counts as quiet. */
export const QUIET_BUSY = 0.3;

export interface CpuTimes {
  /** idle + iowait ticks, all CPUs. */
  idle: number;
  total: number;
}

export function hostFacts(): { kernel: string; cpus: number } {
  return { kernel: release(), cpus: cpus().length };
}

/** The 1, 5 and 15 minute load averages ("0.52 0.40 0.31"), or '' when /proc/loadavg cannot be read. */
export async function loadavg(): Promise<string> {
  const text = await readFile('/proc/loadavg', 'utf8').catch(() => '');
  return text.split(' ').slice(0, 3).join(' ');
}

/** The first line of /proc/stat: `cpu  user nice system idle iowait irq softirq …`. */
export function parseCpuLine(stat: string): CpuTimes {
  const v = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: (v[3] ?? 0) + (v[4] ?? 0), total: v.reduce((a, b) => a + b, 0) };
}

export async function cpuTimes(): Promise<CpuTimes> {
  return parseCpuLine(await readFile('/proc/stat', 'utf8'));
}

/** Idle fraction (0..1) between two samples; 1 when no tick passed. */
export function idleFraction(a: CpuTimes, b: CpuTimes): number {
  const total = b.total - a.total;
  return total > 0 ? (b.idle - a.idle) / total : 1;
}

/** Busy fraction (0..1) between two samples; 0 when no tick passed. */
export function busyFraction(a: CpuTimes, b: CpuTimes): number {
  return 1 - idleFraction(a, b);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (at most `maxMs`) until the host is quiet: ≤ 30 % CPU busy over
 * 300 ms while the lab is idle. Returns the last busy fraction seen, which
 * is other jobs' load, since nothing of ours runs then.
 */
export async function waitForQuietHost(maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const a = await cpuTimes();
    await sleep(300);
    const busy = busyFraction(a, await cpuTimes());
    if (busy <= QUIET_BUSY || Date.now() >= deadline) return busy;
  }
}

/**
 * Waits until the machine is idle (≥ 90 % idle over 200 ms, 8 s at most):
 * namespace deletion finishes in kernel workers after `ip netns delete`
 * returns, and must not be billed to the next measurement.
 */
export async function waitForIdleHost(): Promise<void> {
  const deadline = Date.now() + 8_000;
  await sleep(100);
  while (Date.now() < deadline) {
    const a = await cpuTimes();
    await sleep(200);
    if (idleFraction(a, await cpuTimes()) >= 0.9) return;
  }
}
