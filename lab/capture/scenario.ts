// Scenario captures: record chosen links while a scenario runs, into
// captures/<lab>/<scenario>/ — one pcapng per link and merged.pcapng, named
// interfaces, the scenario and its outcome in the capture comment, key logs
// embedded and drops commented. Always stopped and flushed: on success, on
// failure and on SIGINT/SIGTERM.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, release } from 'node:os';
import { join, resolve } from 'node:path';
import { readState, type LabState } from '../core/state.ts';
import { CaptureError, startCapture, type CaptureHandle, type CaptureOptions, type CaptureResult } from './capture.ts';
import type { CaptureLink } from './links.ts';
import { dropComment, matchDropEvents, replaceFile, type DropEvent, type DropMatch, type KeyLogs } from './merge.ts';
import { mergeCapturesWithOrigins, readCapture, writeCapture, type PacketCapture } from './pcapng.ts';
import { PROFILE_HINT } from './profile.ts';
import { embedInCapture, joinSecrets, keyLogFileSecrets } from './secrets.ts';
import { REPO_ROOT } from '../core/repo.ts';
import { listenForInterrupt } from '../core/interrupt.ts';

/** captures/ at the repository root (git-ignored except its README). */
export const CAPTURES_ROOT = resolve(REPO_ROOT, 'captures');
export const MERGED_FILE = 'merged.pcapng';
const SCENARIO_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

let outputRoot = CAPTURES_ROOT;
/** Where this process's scenario captures and reports go: captures/, or `--out DIR` of the run. */
export function setOutputRoot(dir: string): void {
  outputRoot = resolve(dir);
}
export const outputRootDir = () => outputRoot;

export const scenarioDir = (lab: string, scenario: string, root = outputRoot) => join(root, lab, scenario);

export interface CaptureFiles {
  dir: string;
  /** merged.pcapng: every link, named, with comments and secrets. */
  merged: string;
  /** Per link name, its own pcapng. */
  links: Record<string, string>;
  packets: number;
  /** Drop events and the frames they were matched to (unmatched ones have no frame). */
  drops: DropMatch[];
  /** What secrets every file embeds, as its comment says (none: nothing to embed, or `secrets: false`). */
  secrets: string[];
}

export interface FinishOptions {
  /** Capture comments of merged.pcapng (the section header's shb_comment). */
  comments: string[];
  /** Key logs to embed besides the lab's own (which the capture embeds unless started with `secrets: false`). */
  keylogs?: KeyLogs;
  /** Drops to comment, in merged.pcapng and in the file of the link where each matched. */
  drops?: DropEvent[];
  dropWindowMs?: number;
  interrupted?: boolean;
}

/**
 * Stops a capture and builds merged.pcapng from the links that ended well.
 * Every file (merged and per link) holds the secrets and the drop comments.
 * If some links failed, the rest is still merged and a CaptureError names
 * the failed ones.
 */
export async function finishCapture(handle: CaptureHandle, opts: FinishOptions): Promise<CaptureFiles> {
  let result: CaptureResult | undefined;
  let captureError: CaptureError | undefined;
  try {
    result = await handle.stop({ interrupted: opts.interrupted });
  } catch (e) {
    if (!(e instanceof CaptureError)) throw e;
    captureError = e;
    result = e.result;
  }
  const merged = join(handle.dir, MERGED_FILE);
  const files: CaptureFiles = { dir: handle.dir, merged, links: {}, packets: 0, drops: [], secrets: [] };
  if (result && result.links.length > 0) {
    const extra = await keyLogFileSecrets(opts.keylogs ?? {});
    const secrets = joinSecrets(result.secrets, extra);
    files.secrets = secrets.comments;
    const failed = captureError?.failures.map((f) => f.link) ?? [];
    const comments = [
      ...opts.comments,
      `links: ${result.links.map((l) => `${l.link} = ${l.description}`).join('; ')}`,
      ...(failed.length > 0 ? [`NOT INCLUDED (capture failed): ${[...new Set(failed)].join(', ')}`] : []),
      `captured ${result.startedAt.toISOString()} to ${result.stoppedAt.toISOString()} on ${hostname()} (Linux ${release()}) by mtless-lab`,
      ...secrets.comments,
      PROFILE_HINT,
    ];
    const perLink: PacketCapture[] = await Promise.all(result.links.map(async (l) => readCapture(await readFile(l.file))));
    const { capture, origins } = mergeCapturesWithOrigins(
      perLink.map((c, i) => ({ capture: c, name: result!.links[i]!.link, description: result!.links[i]!.description })),
      { comments, application: 'mtless-lab (tcpdump --immediate-mode)' },
    );
    embedInCapture(capture, secrets);
    const write = (file: string, c: PacketCapture) => replaceFile(file, (tmp) => writeFile(tmp, writeCapture(c)));
    await write(merged, capture);
    files.packets = capture.packets.length;
    for (const l of result.links) files.links[l.link] = l.file;

    // Drops are matched once, in merged.pcapng; each comment goes to that frame and to the same packet in its link's file.
    const touched = new Set<number>(extra.secrets.length > 0 ? perLink.map((_, i) => i) : []);
    if (opts.drops && opts.drops.length > 0) {
      files.drops = await matchDropEvents(merged, opts.drops, { windowMs: opts.dropWindowMs });
      for (const m of files.drops) {
        if (m.frame === undefined) continue;
        const comment = dropComment(m.event);
        capture.packets[m.frame - 1]!.comments.push(comment);
        const from = origins[m.frame - 1]!;
        perLink[from.input]!.packets[from.packet]!.comments.push(comment);
        touched.add(from.input);
      }
      if (files.drops.some((m) => m.frame !== undefined)) await write(merged, capture);
    }
    await Promise.all([...touched].map((i) => {
      embedInCapture(perLink[i]!, extra);
      return write(result!.links[i]!.file, perLink[i]!);
    }));
  }
  if (captureError) throw Object.assign(captureError, { files });
  return files;
}

export interface ScenarioContext {
  lab: string;
  dir: string;
  links: CaptureLink[];
  /** Aborted on SIGINT/SIGTERM: long waits in the scenario should give up. */
  signal: AbortSignal;
  /** A key log to embed when the capture ends (the node agents write it during the run). */
  addKeyLog(type: keyof KeyLogs, file: string): void;
  /** Drop events to match to frames and comment ("DROPPED: …") in merged.pcapng. */
  addDropEvents(events: DropEvent[]): void;
  /** One more line for the capture comment. */
  comment(text: string): void;
}

export interface ScenarioOptions extends CaptureOptions {
  /** Where captures/ is (default: the repository's). */
  root?: string;
  keylogs?: KeyLogs;
  dropWindowMs?: number;
}

/** The scenario failed (its error is `cause`); its captures were still written (`files`). */
export class ScenarioFailedError extends Error {
  override name = 'ScenarioFailedError';
  constructor(message: string, readonly files?: CaptureFiles, options?: ErrorOptions) {
    super(message, options);
  }
}

export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/**
 * Runs `fn` while capturing `links`, then stops, merges and returns the
 * files (and fn's value). If fn fails, the captures are still written and a
 * ScenarioFailedError says where; on SIGINT/SIGTERM the capture is stopped
 * and flushed and an InterruptedError is the cause (the caller's own
 * `finally`, e.g. destroyLab, still runs).
 */
export async function withScenarioCapture<T>(
  lab: string | LabState,
  scenario: string,
  links: (string | CaptureLink)[],
  fn: (ctx: ScenarioContext) => Promise<T>,
  opts: ScenarioOptions = {},
): Promise<CaptureFiles & { value: T }> {
  if (!SCENARIO_NAME_RE.test(scenario)) throw new Error(`invalid scenario name "${scenario}": letters, digits, ".", "_", "-"`);
  const state = typeof lab === 'string' ? await readState(lab) : lab;
  if (!state) throw new Error(`no lab named "${String(lab)}" (see \`mtless status\`)`);
  const dir = scenarioDir(state.lab, scenario, opts.root);
  await mkdir(dir, { recursive: true });
  await rm(join(dir, MERGED_FILE), { force: true }); // never leave last run's merge next to this run's links

  const handle = await startCapture(state, links, dir, opts);
  const keylogs: KeyLogs = { ...opts.keylogs };
  const drops: DropEvent[] = [];
  const extra: string[] = [];
  const abort = new AbortController();
  let interrupted = false;
  let onInterrupt!: (signal: NodeJS.Signals) => void;
  const interruptedPromise = new Promise<never>((_, reject) => {
    onInterrupt = (signal) => {
      interrupted = true;
      const e = new InterruptedError(`interrupted by ${signal}`);
      abort.abort(e);
      reject(e);
    };
  });
  interruptedPromise.catch(() => undefined); // only raced, never awaited alone
  const stopListening = listenForInterrupt(onInterrupt);

  const ctx: ScenarioContext = {
    lab: state.lab, dir, links: handle.links, signal: abort.signal,
    addKeyLog: (type, file) => void (keylogs[type] = file),
    addDropEvents: (events) => void drops.push(...events),
    comment: (text) => void extra.push(text),
  };

  let value: T | undefined;
  let failure: unknown;
  try {
    value = await Promise.race([fn(ctx), interruptedPromise]);
  } catch (e) {
    failure = e;
  } finally {
    stopListening();
  }

  const outcome = failure === undefined ? 'passed' : `FAILED: ${(failure as Error).message ?? String(failure)}`;
  const comments = [
    `mtless-lab scenario "${scenario}" on lab "${state.lab}"${state.topologyFile ? ` (topology ${state.topologyFile})` : ''}: ${outcome}`,
    ...extra,
  ];
  let files: CaptureFiles | undefined;
  let captureFailure: Error | undefined;
  try {
    files = await finishCapture(handle, { comments, keylogs, drops, dropWindowMs: opts.dropWindowMs, interrupted });
  } catch (e) {
    captureFailure = e as Error;
    files = (e as { files?: CaptureFiles }).files;
  }

  if (failure !== undefined) {
    const also = captureFailure ? `; and its capture failed too: ${captureFailure.message}` : '';
    throw new ScenarioFailedError(`scenario "${scenario}" failed: ${(failure as Error).message ?? String(failure)}${also} (captures in ${dir})`, files, { cause: failure });
  }
  if (captureFailure) throw captureFailure;
  return { ...files!, value: value as T };
}
