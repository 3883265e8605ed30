// A long-lived /bin/sh for a burst of short commands, as mininet keeps a
// shell per node: `up` builds a lab with a handful of `ip -batch` and
// netns-setup runs, and starting each from Node forks this whole process
// (~10 ms each here, against ~1 ms for the shell's fork of `ip`). The
// commands, their exit codes and their errors are the same as through
// run(); only the process that forks them differs.
//
// One group at a time: run() writes a script that starts every command of
// the group in the background, stdin from a here-document (quoted, so the
// shell expands nothing), stdout and stderr to files, then prints one
// "<token> <index> <status>" line per command and "<token> end" after `wait`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { CommandError, type RunResult } from './run.ts';
import { spawn, type ResultPromise } from './spawn.ts';

export interface ShellCommand {
  argv: string[];
  /** The command's stdin. */
  input?: string;
  /** For the error message only (the command enters it itself, e.g. `ip -n`). */
  netns?: string;
}

/** Single-quoted for sh: nothing inside is expanded. */
export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The script of one group (pure; exported for the unit test). */
export function groupScript(commands: readonly ShellCommand[], dir: string, token: string): string {
  const eof = `__MTLESS_INPUT_${token}`;
  const parts: string[] = [];
  commands.forEach((c, i) => {
    const input = c.input ?? '';
    if (input.split('\n').includes(eof)) throw new Error(`command input contains the here-document terminator ${eof}`);
    const argv = c.argv.map(shellQuote).join(' ');
    const io = `>${shellQuote(`${dir}/${i}.out`)} 2>${shellQuote(`${dir}/${i}.err`)}`;
    // The input ends with a newline so the terminator stands on its own line.
    const body = input.endsWith('\n') || input === '' ? input : `${input}\n`;
    parts.push(`{ ${argv} ${io} <<'${eof}'\n${body}${eof}\necho "${token} ${i} $?"; } &\n`);
  });
  parts.push(`wait; echo "${token} end"\n`);
  return parts.join('');
}

export class CommandShell {
  private readonly child: ResultPromise;
  private readonly dir: string;
  private readonly lines: string[] = [];
  private waiting?: () => void;
  private exited = false;
  private busy = false;
  private closed = false;

  /** `parent`: where its output files go (`up`: the lab's state directory, which `down` removes). */
  constructor(parent = tmpdir()) {
    this.dir = mkdtempSync(join(parent, 'shell-'));
    this.child = spawn(['sh'], { stdin: 'pipe' });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiting?.();
    });
    void this.child.then(() => {
      this.exited = true;
      this.waiting?.();
    });
  }

  /**
   * Runs the commands side by side and waits for all of them; throws the
   * CommandError of the first (in order) that exited non-zero.
   */
  async run(commands: readonly ShellCommand[], timeoutMs = 120_000): Promise<RunResult[]> {
    if (commands.length === 0) return [];
    if (this.busy) throw new Error('CommandShell runs one group at a time');
    if (this.exited) throw new Error('the command shell has exited');
    this.busy = true;
    const token = randomBytes(6).toString('hex');
    const started = performance.now();
    const status = new Map<number, number>();
    try {
      this.child.stdin!.write(groupScript(commands, this.dir, token));
      const deadline = started + timeoutMs;
      for (;;) {
        let ended = false;
        for (const l of this.lines.splice(0)) {
          const [t, what, code] = l.split(' ');
          if (t !== token) continue;
          if (what === 'end') ended = true;
          else status.set(Number(what), Number(code));
        }
        if (ended) break;
        if (this.exited) throw new Error('the command shell exited in the middle of a group');
        const left = deadline - performance.now();
        if (left <= 0) {
          this.child.kill('SIGKILL');
          throw new Error(`commands did not finish within ${timeoutMs} ms: ${commands.map((c) => c.argv.join(' ')).join('; ')}`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          this.waiting = () => (clearTimeout(timer), resolve());
        });
        this.waiting = undefined;
      }
      const durationMs = performance.now() - started;
      const results = commands.map((c, i): RunResult => {
        const read = (ext: string) => {
          try {
            return readFileSync(`${this.dir}/${i}.${ext}`, 'utf8');
          } catch {
            return '';
          }
        };
        return { command: c.argv.join(' '), netns: c.netns, exitCode: status.get(i) ?? -1, stdout: read('out'), stderr: read('err'), durationMs };
      });
      const failed = results.find((r) => r.exitCode !== 0);
      if (failed) throw new CommandError(failed, failed.exitCode === 127 ? `command not found: ${failed.command.split(' ')[0]} (run \`mtless doctor\`)` : undefined);
      return results;
    } finally {
      this.busy = false;
    }
  }

  /** Ends the shell and removes its files (again: nothing). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.exited) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.child.catch(() => undefined);
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
