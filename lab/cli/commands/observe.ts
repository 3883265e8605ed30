// `mtless observe`: see lab/cli/table.ts for its summary. Like `hubble
// observe`: the lab's flow relay (lab/observe) merges every node's events by
// time and applies the filters; this prints what it sends.
import { buildFilters, ensureRelay, FilterError, OUTPUT_FORMATS, parseTimeFlag, Printer, subscribe, type FilterFlags } from '../../observe/index.ts';
import { UsageError, type Command } from '../command.ts';
import { colourVerdicts } from '../format.ts';
import { runningLab } from '../running-lab.ts';

/** `hubble observe` without --follow, --last, --since, --first prints the last 20 events. */
const DEFAULT_LAST = 20;

const many = { type: 'string', multiple: true } as const;
const FILTER_FLAGS = [
  'ip', 'from-ip', 'to-ip', 'pod', 'from-pod', 'to-pod', 'identity', 'from-identity', 'to-identity',
  'port', 'from-port', 'to-port', 'protocol', 'verdict', 'type', 'node', 'drop-reason-desc', 'traffic-direction',
] as const satisfies readonly (keyof FilterFlags)[];

function count(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(String(value))) throw new UsageError(`--${flag}: expected a number of events, got "${String(value)}"`);
  return Number(value);
}

export const command: Command = {
  options: {
    ...Object.fromEntries(FILTER_FLAGS.map((f) => [f, many])),
    'node-name': many,
    type: { ...many, short: 't' },
    follow: { type: 'boolean', short: 'f' },
    seconds: { type: 'string' },
    last: { type: 'string' },
    first: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    output: { type: 'string', short: 'o' },
    json: { type: 'boolean', short: 'j' },
    'print-node-name': { type: 'boolean' },
  },
  run: async ([lab, extra], values) => {
    if (extra) throw new UsageError(`observe: unexpected argument "${extra}"`);
    const v = values as Record<string, string | boolean | string[] | undefined>;
    const format = v.json ? 'json' : OUTPUT_FORMATS[String(v.output ?? 'compact')];
    if (!format) throw new UsageError(`observe: -o ${String(v.output)}: expected compact, dict, json or jsonpb`);
    const seconds = v.seconds === undefined ? undefined : Number(v.seconds);
    if (seconds !== undefined && !(seconds > 0)) throw new UsageError('observe: --seconds must be a positive number');
    const follow = Boolean(v.follow) || seconds !== undefined;
    const now = Date.now();
    let filters;
    let since: number | undefined;
    let until: number | undefined;
    try {
      const flags: FilterFlags = Object.fromEntries(FILTER_FLAGS.map((f) => [f, v[f] as string[] | undefined]));
      flags.node = [...(flags.node ?? []), ...((v['node-name'] as string[] | undefined) ?? [])];
      filters = buildFilters(flags);
      since = v.since === undefined ? undefined : parseTimeFlag(String(v.since), now, 'since');
      until = v.until === undefined ? undefined : parseTimeFlag(String(v.until), now, 'until');
    } catch (e) {
      if (e instanceof FilterError) throw new UsageError(`observe: ${e.message}`);
      throw e;
    }
    let last = count(v.last, 'last');
    const first = count(v.first, 'first');
    if (last !== undefined && first !== undefined) throw new UsageError('observe: --last and --first cannot be combined');
    if (first !== undefined && follow) throw new UsageError('observe: --first cannot be combined with --follow');
    if (!follow && last === undefined && first === undefined && since === undefined && until === undefined) last = DEFAULT_LAST;
    // A follow without --last/--since starts from now, as `hubble observe -f`.
    if (follow && last === undefined && since === undefined) last = 0;

    const state = await runningLab(lab, 'observe');
    await ensureRelay(state.lab);
    const printer = new Printer({ format, nodeName: Boolean(v['print-node-name']) });
    const colour = format === 'compact' ? (s: string) => colourVerdicts(s) : (s: string) => s;
    const sub = subscribe(state.lab, { filters, since, until, last, first, follow }, (event, line) => {
      process.stdout.write(format === 'json' ? `${line}\n` : colour(printer.format(event)));
    });
    const stop = () => sub.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await sub.caughtUp;
      if (follow) {
        process.stderr.write(`observing ${state.lab} (${state.nodes.map((n) => n.name).join(', ')}) ${seconds ? `for ${seconds} s` : '(Ctrl-C to stop)'}\n`);
        if (seconds) setTimeout(stop, seconds * 1000).unref();
      }
      await sub.done;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  },
};
