// The `mtless` command line: find the verb in the table, load only its
// module, parse its options, run it, and turn errors into messages and exit
// codes. Nothing else.
import { parseArgs } from 'node:util';
import { COMMAND_TABLE, type CommandEntry } from './table.ts';
import { UsageError } from './command.ts';
import { interruptForClosedOutput } from '../core/interrupt.ts';

const PROG = 'mtless';

export function usage(): string {
  const lines = Object.entries(COMMAND_TABLE).map(([n, c]) => `  ${PROG} ${n} ${c.args}\n      ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n\n${PROG} help CMD (or ${PROG} CMD --help) shows one command.\n`;
}

function commandUsage(name: string, entry: CommandEntry): string {
  return `usage: ${PROG} ${name} ${entry.args}\n  ${entry.summary}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic) {
      const entry = COMMAND_TABLE[topic];
      if (!entry) throw new UsageError(`unknown command "${topic}"`);
      process.stdout.write(commandUsage(topic, entry));
      return 0;
    }
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  // Hidden: what the completion scripts ask on each Tab (never in usage).
  if (name === '__complete') {
    const { complete, completionLines } = await import('./completion.ts');
    const [cword, , ...words] = rest;
    process.stdout.write(completionLines(await complete(words, Number(cword) - 1)));
    return 0;
  }
  const entry = COMMAND_TABLE[name];
  if (!entry) throw new UsageError(`unknown command "${name}"`);
  // `CMD --help` before `--`: help, whatever else the line says.
  const beforeDashes = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) {
    process.stdout.write(commandUsage(name, entry));
    return 0;
  }
  const command = await entry.load();
  let parsed;
  try {
    // A wrapper of another tool takes that tool's options unparsed.
    parsed = command.passThrough ? { positionals: rest, values: {} } : parseArgs({ args: rest, options: command.options ?? {}, allowPositionals: true, strict: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) throw new CommandUsageError(name, entry, (e as Error).message);
    throw e;
  }
  try {
    return await command.run(parsed.positionals, parsed.values as Record<string, string | boolean | undefined>);
  } catch (e) {
    if (e instanceof UsageError && !(e instanceof CommandUsageError)) throw new CommandUsageError(name, entry, e.message);
    throw e;
  }
}

/** A usage error of one command: printed with that command's usage only. */
class CommandUsageError extends UsageError {
  constructor(readonly command: string, readonly entry: CommandEntry, message: string) {
    super(message);
  }
}

// A closed pipe (`mtless logs LAB | head -1`) ends the command quietly. A
// command that owns kernel objects is asked to stop instead, so that it still
// tears them down; what it writes meanwhile is dropped.
let outputClosed = false;
const onOutputError = (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
  if (outputClosed) return;
  outputClosed = true;
  if (!interruptForClosedOutput()) process.exit(process.exitCode ?? 0);
};
process.stdout.on('error', onOutputError);
process.stderr.on('error', onOutputError);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    if (err instanceof CommandUsageError) {
      process.stderr.write(`${PROG}: ${err.message}\n\n${commandUsage(err.command, err.entry)}`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`${PROG}: ${err.message}\n\n${usage()}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`${PROG}: ${err.message}\n`);
    if (process.env.MTLESS_DEBUG || process.env.LAB_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
  },
);
