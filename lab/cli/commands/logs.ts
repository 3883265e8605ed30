// `mtless logs`: see lab/cli/table.ts for its summary. The daemons write one
// JSON object per line; logs prints those lines (anything else, such as the
// READY handshake line or a crash trace, only with --raw), merged by their
// "time" across agents and the control plane, so the output pipes into jq.
import { open, readFile } from 'node:fs/promises';
import { daemonLogFile, rotatedLogFile } from '../../core/names.ts';
import { type Command } from '../command.ts';
import { runningLab } from '../running-lab.ts';

interface Line { time: string; text: string }

/** The JSON lines of a log (with their time), or every line with `raw`. */
export function logLines(text: string, raw = false): Line[] {
  const out: Line[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let time: unknown;
    try {
      time = (JSON.parse(line) as { time?: unknown }).time;
    } catch {
      if (raw) out.push({ time: '', text: line });
      continue;
    }
    out.push({ time: typeof time === 'string' ? time : '', text: line });
  }
  return out;
}

/** Merged by time; lines without one keep their place after the line before them. */
export function mergeByTime(perFile: Line[][]): string[] {
  const keyed = perFile.flatMap((lines, f) => {
    let last = '';
    return lines.map((l, i) => ({ key: (last = l.time || last), f, i, text: l.text }));
  });
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.f - b.f || a.i - b.i));
  return keyed.map((k) => k.text);
}

export const command: Command = {
  options: { follow: { type: 'boolean', short: 'f' }, raw: { type: 'boolean' } },
  run: async ([lab, who], v) => {
    const state = await runningLab(lab, 'logs');
    const files = state.processes
      .filter((p) => !who || p.node === who)
      .map((p) => p.logFile ?? daemonLogFile(state.lab, p.node, p.role));
    if (files.length === 0) throw new Error(who ? `no agent or control plane "${who}" in lab "${state.lab}"` : `lab "${state.lab}" runs no agents (up --no-agents)`);
    const read = (f: string) => readFile(f, 'utf8').catch(() => '');
    const texts = await Promise.all(files.map(read));
    // A capped log's previous copy comes first (lab/core/log.ts).
    const copies = await Promise.all(files.map((f) => read(rotatedLogFile(f))));
    for (const l of mergeByTime(texts.map((t, i) => logLines(copies[i]! + t, Boolean(v.raw))))) process.stdout.write(`${l}\n`);
    if (!v.follow) return 0;
    // --follow: print what each file gains, as it comes, until Ctrl-C.
    const offsets = texts.map((t) => Buffer.byteLength(t));
    const pending = files.map(() => '');
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    process.once('SIGTERM', () => (stop = true));
    while (!stop) {
      for (const [i, f] of files.entries()) {
        const fh = await open(f, 'r').catch(() => undefined);
        if (!fh) continue;
        try {
          const { size } = await fh.stat();
          if (size < offsets[i]!) [offsets[i], pending[i]] = [0, '']; // rotated: the file starts over
          if (size <= offsets[i]!) continue;
          const buf = Buffer.alloc(size - offsets[i]!);
          await fh.read(buf, 0, buf.length, offsets[i]!);
          offsets[i] = size;
          const text = pending[i] + buf.toString('utf8');
          const cut = text.lastIndexOf('\n');
          pending[i] = text.slice(cut + 1);
          for (const l of logLines(text.slice(0, cut + 1), Boolean(v.raw))) process.stdout.write(`${l.text}\n`);
        } finally {
          await fh.close();
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return 0;
  },
};
