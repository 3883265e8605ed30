// The node agent's log as the auth benchmark reads it: one JSON object per
// line (lab/core/log.ts), of which it uses
//   svid-received   {identity}                      an SVID for a local identity
//   auth-requested  {key}                           the signal reached the agent
//   auth-completed  {key, totalMs, handshakeMs}     the auth entry is written
//   auth-failed     {key, reason}
// each with `time` (ISO, ms resolution). Keys are
// localSecLabel:remoteSecLabel:remoteNodeId:authType.
import { readFile } from 'node:fs/promises';
import { daemonLogFile } from '../../core/names.ts';

export type AgentLogLine = Record<string, unknown> & { event?: string; key?: string; time?: string };

/** The JSON lines of a log; others (READY, a line cut by a concurrent write) are skipped. */
export function parseAgentLog(text: string): AgentLogLine[] {
  const lines: AgentLogLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as AgentLogLine);
    } catch {
      /* a line cut by a concurrent write */
    }
  }
  return lines;
}

/** The agent's log on `node` so far ([] before it exists). */
export async function readAgentLog(lab: string, node: string): Promise<AgentLogLine[]> {
  return parseAgentLog(await readFile(daemonLogFile(lab, node, 'agent'), 'utf8').catch(() => ''));
}

/** Identities the agent holds an SVID for. */
export function svidIdentities(log: readonly AgentLogLine[]): Set<number> {
  return new Set(log.filter((l) => l.event === 'svid-received').map((l) => Number(l.identity)));
}

/** auth-failed lines counted by reason. */
export function failureCounts(log: readonly AgentLogLine[]): Record<string, number> {
  const failures: Record<string, number> = {};
  for (const l of log) if (l.event === 'auth-failed') failures[String(l.reason)] = (failures[String(l.reason)] ?? 0) + 1;
  return failures;
}

/** What the agent logged about one key: its first request and completion. */
export interface KeyAuth {
  /** Unix ms of the first auth-requested line. */
  requestedAt?: number;
  /** Unix ms of the first auth-completed line. */
  completedAt?: number;
  /** The agent's own signal → entry time, ms. */
  totalMs?: number;
  handshakeMs?: number;
  /** auth-failed reasons, in log order. */
  failures: string[];
}

export function keyAuth(log: readonly AgentLogLine[], key: string): KeyAuth {
  const requested = log.find((l) => l.event === 'auth-requested' && l.key === key);
  const completed = log.find((l) => l.event === 'auth-completed' && l.key === key);
  const at = (l: AgentLogLine | undefined) => (l?.time ? Date.parse(l.time) : undefined);
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return {
    requestedAt: at(requested),
    completedAt: at(completed),
    totalMs: num(completed?.totalMs),
    handshakeMs: num(completed?.handshakeMs),
    failures: log.filter((l) => l.event === 'auth-failed' && l.key === key).map((l) => String(l.reason)),
  };
}
