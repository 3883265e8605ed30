// The `lab` command line: parse arguments, call lab/core, print. Nothing else.
import { parseArgs } from 'node:util';
import { COMMANDS, UsageError, usage } from './commands.ts';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"`);
  const { values, positionals } = parseArgs({
    args: rest,
    options: command.options ?? {},
    allowPositionals: true,
    strict: true,
  });
  return command.run(positionals, values as Record<string, string | boolean | undefined>);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`lab: ${err.message}\n\n${usage()}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`lab: ${err.message}\n`);
    if (process.env.LAB_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 1;
  },
);
