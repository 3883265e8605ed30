// `mtless capture`: the verb's options and a thin run(), shaped like the
// verbs of lab/cli/table.ts (its `capture` entry loads captureCommand).
//
//   mtless capture NAME --list              the lab's links
//   mtless capture NAME [LINK…] [-w DIR]    files until Ctrl-C (or --duration S)
//   mtless capture NAME [LINK…] -w -        live pcapng on stdout: | wireshark -k -i -
//
// Files embed the running lab's secrets (TLS key log, WireGuard keys) and
// carry its drops as packet comments, read from the flow events while the
// capture runs; the stream embeds the secrets as they appear.
import { join } from 'node:path';
import { isRoot } from '../kernel/preflight.ts';

import { readState } from '../core/state.ts';
import { CaptureError, startCapture, streamCapture, type CaptureFailure } from './capture.ts';
import { listLinks, UnknownLinkError } from './links.ts';
import { CAPTURES_ROOT, finishCapture } from './scenario.ts';
import { watchDrops, type DropWatch } from './drops.ts';
import { LAB_NAME_RE } from '../topology/model.ts';

type Values = Record<string, string | boolean | undefined>;

export const captureCommand = {
  summary: 'capture links of a lab (pcapng, named interfaces); -w - streams to stdout for `| wireshark -k -i -`',
  args: 'NAME [LINK…] [-w DIR|-] [--duration S] [--no-secrets] [--keylog FILE] [--wg-keylog FILE] [--filter EXPR] | NAME --list',
  options: {
    write: { type: 'string', short: 'w' },
    list: { type: 'boolean' },
    duration: { type: 'string' },
    'no-secrets': { type: 'boolean' },
    keylog: { type: 'string' },
    'wg-keylog': { type: 'string' },
    filter: { type: 'string', short: 'f' },
  },
  run: (args: string[], values: Values) => runCaptureCommand(args, values),
} as const;

const say = (line: string) => process.stderr.write(`${line}\n`);
const printFailure = (f: CaptureFailure) => say(`mtless capture: link ${f.link} (${f.device} in ${f.netns}): ${f.reason}`);

/** Runs `mtless capture`; resolves with the exit code (2: usage, 1: failure). Messages go to stderr: stdout may carry packets. */
export async function runCaptureCommand(args: string[], v: Values): Promise<number> {
  const [lab, ...linkNames] = args;
  if (!lab || !LAB_NAME_RE.test(lab)) {
    say(`mtless capture: ${lab ? `invalid lab name "${lab}"` : 'missing lab name'}\nusage: mtless capture ${captureCommand.args}`);
    return 2;
  }
  const state = await readState(lab);
  if (!state) {
    say(`mtless capture: no lab named "${lab}" (see \`mtless status\`)`);
    return 1;
  }
  if (v.list) {
    for (const l of listLinks(state)) {
      console.log(`${l.name.padEnd(24)} ${l.taps.map((t) => `${t.device}${t.direction === 'inout' ? '' : `(${t.direction})`}`).join(' ').padEnd(30)} ${l.description}`);
    }
    return 0;
  }
  if (!isRoot()) {
    say('mtless capture: needs root (captures run inside the lab namespaces); run it with sudo');
    return 1;
  }
  const duration = v.duration === undefined ? undefined : Number(v.duration);
  if (duration !== undefined && !(duration > 0)) {
    say(`mtless capture: --duration must be a number of seconds, got "${String(v.duration)}"`);
    return 2;
  }
  const links = linkNames.length > 0 ? linkNames : listLinks(state).map((l) => l.name);
  const filter = typeof v.filter === 'string' ? v.filter : undefined;
  const secrets = !v['no-secrets'];
  const keylogs = { tls: v.keylog as string | undefined, wg: v['wg-keylog'] as string | undefined };

  // Ctrl-C, SIGTERM, --duration, or (streaming) the reader going away: all mean "stop well".
  let stopReason: string | undefined;
  let wake!: () => void;
  const stopped = new Promise<void>((r) => (wake = r));
  const stop = (why: string) => {
    stopReason ??= why;
    wake();
  };
  const onSignal = (s: NodeJS.Signals) => stop(s);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const timer = duration ? setTimeout(() => stop('duration'), duration * 1000) : undefined;
  let drops: DropWatch | undefined;

  try {
    if (v.write === '-') {
      if (process.stdout.isTTY) {
        say('mtless capture: -w - writes binary pcapng; pipe it, e.g. `mtless capture NAME LINK -w - | wireshark -k -i -`');
        return 2;
      }
      const stream = await streamCapture(state, links, process.stdout, { filter, onFailure: printFailure, secrets, keylogs });
      say(`capturing ${links.join(', ')} of lab "${lab}" to stdout${secrets ? ' (with the lab\'s secrets, as they appear)' : ''}; Ctrl-C stops`);
      void stream.closed.then(() => stop('reader closed'));
      await stopped;
      const r = await stream.stop({ interrupted: stopReason === 'SIGINT' || stopReason === 'SIGTERM' });
      say(`stopped (${stopReason}): ${Object.entries(r.packets).map(([l, n]) => `${l} ${n}`).join(', ')} packets`);
      return 0;
    }

    const dir = typeof v.write === 'string' ? v.write : join(CAPTURES_ROOT, lab, `capture-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    // Flow events first: a drop in the capture's first packets must already be seen.
    drops = await watchDrops(state, links);
    for (const u of drops.unread) say(`mtless capture: no drop comments for node ${u.node}: ${u.reason}`);
    const handle = await startCapture(state, links, dir, { filter, onFailure: printFailure, secrets });
    say(`capturing ${links.length} links of lab "${lab}" into ${dir}; ${duration ? `${duration} s, or ` : ''}Ctrl-C stops`);
    await stopped;
    const interrupted = stopReason === 'SIGINT' || stopReason === 'SIGTERM';
    await handle.stop({ interrupted }).catch(() => undefined); // finishCapture reports its failures
    await drops.stop();
    const events = drops.drops();
    const files = await finishCapture(handle, {
      comments: [`mtless capture of lab "${lab}"${state.topologyFile ? ` (topology ${state.topologyFile})` : ''}, stopped by ${stopReason}`],
      keylogs, drops: events, interrupted,
    });
    for (const [link, file] of Object.entries(files.links)) say(`  ${link.padEnd(24)} ${file}`);
    say(`  ${'merged'.padEnd(24)} ${files.merged} (${files.packets} packets)`);
    const commented = files.drops.filter((m) => m.frame !== undefined).length;
    say(`  drops: ${commented} of ${events.length} commented${events.length > commented ? ' (the others were on links not captured)' : ''}`);
    say(`  secrets: ${files.secrets.length > 0 ? files.secrets.join('; ') : secrets ? 'none (the lab has no key log yet: no handshake, no WireGuard)' : 'none (--no-secrets)'}`);
    return 0;
  } catch (e) {
    if (e instanceof UnknownLinkError) {
      say(`mtless capture: ${e.message}`);
      return 2;
    }
    if (e instanceof CaptureError) {
      say(`mtless capture: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    await drops?.stop();
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
