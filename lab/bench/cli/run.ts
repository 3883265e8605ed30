// Measures `mtless bench cli` (see report.ts): each case N times, each time
// right after the floor (`node -e 0`), so both see the same machine load.
import { run } from '../../kernel/run.ts';
import { REPO_ROOT } from '../../core/repo.ts';
import { prefixedLabName } from '../../core/names.ts';
import { hostFacts, loadavg } from '../host.ts';
import { refuseLeftovers } from '../leftovers.ts';
import { CLI_CASES, parseStepMs, type CliBenchReport, type CliCase, type CliSample } from './report.ts';

export const BENCH_CLI_LAB = 'b-cli';
export const BENCH_CLI_UP_LAB = 'b-cli-up';
const MTLESS = `${REPO_ROOT}/bin/mtless`;
const TOPOLOGY = `${REPO_ROOT}/topologies/two-node-auth.yaml`;

async function timed(argv: string[]): Promise<{ ms: number; stderr: string }> {
  const started = performance.now();
  const r = await run(argv, { timeout: 120_000 });
  return { ms: performance.now() - started, stderr: r.stderr };
}

export async function benchCli(opts: { runs?: number; log: (line: string) => void; signal?: AbortSignal; prefix?: string }): Promise<CliBenchReport> {
  const runs = opts.runs ?? 20;
  // Its labs, under --name PREFIX: PREFIX-b-cli and PREFIX-b-cli-up.
  const execLab = prefixedLabName(opts.prefix, BENCH_CLI_LAB);
  const upLab = prefixedLabName(opts.prefix, BENCH_CLI_UP_LAB);
  const started = performance.now();
  await refuseLeftovers(execLab);
  await refuseLeftovers(upLab);
  const commands: Record<CliCase, string[]> = {
    help: [MTLESS, '--help'],
    validate: [MTLESS, 'validate', `${REPO_ROOT}/topologies/two-node.yaml`],
    exec: [MTLESS, 'exec', `${execLab}/client`, '--', 'true'],
    up: [MTLESS, 'up', TOPOLOGY, '--name', upLab],
  };
  const samples = Object.fromEntries(CLI_CASES.map((c) => [c, [] as CliSample[]])) as Record<CliCase, CliSample[]>;
  const agentsStepMs: number[] = [];
  const floor = async () => (await timed([process.execPath, '-e', '0'])).ms;
  const loadavgBefore = await loadavg();
  opts.log(`bench cli: ${runs} runs of each case; bringing up ${execLab} for exec`);
  await run([MTLESS, 'up', TOPOLOGY, '--name', execLab], { timeout: 120_000 });
  try {
    for (let i = 0; i < runs && !opts.signal?.aborted; i++) {
      for (const c of ['help', 'validate', 'exec'] as const) {
        const floorMs = await floor();
        samples[c].push({ ms: (await timed(commands[c])).ms, floorMs });
      }
    }
  } finally {
    await run([MTLESS, 'down', execLab], { timeout: 120_000 });
  }
  for (let i = 0; i < runs && !opts.signal?.aborted; i++) {
    const floorMs = await floor();
    try {
      const up = await timed(commands.up);
      samples.up.push({ ms: up.ms, floorMs });
      const agents = parseStepMs(up.stderr, 'agents');
      if (agents !== undefined) agentsStepMs.push(agents);
    } finally {
      await run([MTLESS, 'down', upLab], { timeout: 120_000 });
    }
    opts.log(`  up ${i + 1}/${runs}: ${samples.up.at(-1)?.ms.toFixed(0)} ms`);
  }
  return {
    machine: { ...hostFacts(), node: process.version, loadavgBefore, loadavgAfter: await loadavg() },
    runs,
    commands: Object.fromEntries(CLI_CASES.map((c) => [c, commands[c].join(' ').replace(`${REPO_ROOT}/`, '')])) as Record<CliCase, string>,
    samples,
    agentsStepMs,
    tookMs: performance.now() - started,
  };
}
