// A sequence (ladder) diagram from a list of timed steps between lanes: one
// row per step in time order, the measured time at the left, a break where
// time jumps (the ~1 s of a SYN retransmit would otherwise squash the rest).
// Pure: layoutLadder() places, renderLadder() draws.
import { arrowMarkers, clip, el, esc, formatMs, svg, text, title } from './svg.ts';

export interface Lane {
  id: string;
  label: string;
  /** A second line: the node, the IP, the identity. */
  sub?: string;
}

/**
 * packet: a frame seen in a capture; drop: a packet the datapath dropped (an X
 * where it died); signal: datapath → agent; tls: a handshake message between
 * agents or proxies; write: a map write; plaintext: a frame whose payload is
 * readable on the wire; note: something at one lane (from = to).
 */
export type StepKind = 'packet' | 'drop' | 'signal' | 'tls' | 'write' | 'plaintext' | 'note';

export interface LadderStep {
  /** Unix-epoch ms (or any common origin): only differences are drawn. */
  tMs: number;
  from: string;
  to: string;
  kind: StepKind;
  label: string;
  /** Hover text: the evidence (capture link and frame, event, log line). */
  detail?: string;
}

export interface Ladder {
  id: string;
  title: string;
  lanes: Lane[];
  steps: LadderStep[];
}

export const STEP_COLOURS: Record<StepKind, string> = {
  packet: '#1f5fbf', drop: '#b00020', signal: '#8a4fbf', tls: '#2a7f62', write: '#c77700', plaintext: '#d43f00', note: '#555555',
};

export interface LadderOptions {
  width?: number;
  rowHeight?: number;
  /** A jump in time longer than this (ms) gets a break row. */
  breakMs?: number;
}

export interface PlacedStep {
  step: LadderStep;
  y: number;
  x1: number;
  x2: number;
  /** Time since the first step (ms). */
  sinceStartMs: number;
  /** The break drawn above this row: the time skipped (ms), and where its band is. */
  breakBeforeMs?: number;
  breakY?: number;
}

export interface LadderLayout {
  width: number;
  height: number;
  lanes: { lane: Lane; x: number }[];
  rows: PlacedStep[];
  /** Steps whose lanes are not among the lanes (left out, never drawn at a wrong place). */
  unplaced: LadderStep[];
}

const LEFT = 92;
const HEADER = 54;
const BREAK_ROW = 22;

export function layoutLadder(ladder: Ladder, opts: LadderOptions = {}): LadderLayout {
  const width = opts.width ?? 1040;
  const rowHeight = opts.rowHeight ?? 30;
  const breakMs = opts.breakMs ?? 200;
  const span = (width - LEFT - 10) / Math.max(1, ladder.lanes.length);
  const lanes = ladder.lanes.map((lane, i) => ({ lane, x: LEFT + span * (i + 0.5) }));
  const xOf = new Map(lanes.map((l) => [l.lane.id, l.x]));
  const placeable = ladder.steps.filter((s) => xOf.has(s.from) && xOf.has(s.to));
  const unplaced = ladder.steps.filter((s) => !xOf.has(s.from) || !xOf.has(s.to));
  // Stable: steps at the same time keep their given order (cause before effect).
  const steps = placeable.map((s, i) => ({ s, i })).sort((a, b) => a.s.tMs - b.s.tMs || a.i - b.i).map((x) => x.s);
  const t0 = steps[0]?.tMs ?? 0;
  let y = HEADER + rowHeight * 0.8;
  const rows: PlacedStep[] = [];
  steps.forEach((step, i) => {
    const gap = i > 0 ? step.tMs - steps[i - 1]!.tMs : 0;
    const breakBeforeMs = gap > breakMs ? gap : undefined;
    // Between the previous row's line (+4 below) and this row's label (17 above).
    const breakY = breakBeforeMs !== undefined ? y - rowHeight + 4 + (rowHeight + BREAK_ROW - 21) / 2 : undefined;
    if (breakBeforeMs !== undefined) y += BREAK_ROW;
    rows.push({ step, y, x1: xOf.get(step.from)!, x2: xOf.get(step.to)!, sinceStartMs: step.tMs - t0, breakBeforeMs, breakY });
    y += rowHeight;
  });
  return { width, height: y + 6, lanes, rows, unplaced };
}

function stepMarkup(r: PlacedStep, id: string, width: number): string {
  const { step, y, x1, x2 } = r;
  const colour = STEP_COLOURS[step.kind];
  const parts: string[] = [];
  const left = Math.min(x1, x2);
  if (x1 === x2) {
    const w = Math.min(width - x1 - 4, 14 + step.label.length * 6.3);
    parts.push(el('rect', { x: x1 - 6, y: y - 13, width: w, height: 18, rx: 4, fill: '#fff', stroke: colour }));
    parts.push(text(x1, y, clip(step.label, Math.floor((w - 10) / 6.3)), { class: 'lbl', fill: colour }));
  } else {
    const head = step.kind === 'drop' ? undefined : `url(#${id}-${step.kind})`;
    parts.push(el('line', {
      x1, y1: y, x2: step.kind === 'drop' ? x2 : x2 + (x2 > x1 ? -2 : 2), y2: y, stroke: colour, 'stroke-width': step.kind === 'plaintext' ? 3 : 1.6,
      'stroke-dasharray': step.kind === 'signal' || step.kind === 'write' ? '5 3' : undefined, 'marker-end': head,
    }));
    if (step.kind === 'drop') {
      parts.push(el('path', { d: `M${x2 - 6},${y - 6} L${x2 + 6},${y + 6} M${x2 - 6},${y + 6} L${x2 + 6},${y - 6}`, stroke: colour, 'stroke-width': 3 }));
    }
    // Left-aligned from the arrow's start; right-aligned to its end when that leaves more room (arrows at the right).
    const right = Math.max(x1, x2);
    const roomLeftAligned = width - left - 16;
    const roomRightAligned = right - LEFT - 8;
    const leftAligned = step.label.length * 6.4 <= roomLeftAligned || roomLeftAligned >= roomRightAligned;
    const room = leftAligned ? roomLeftAligned : roomRightAligned;
    const label = clip(step.label, Math.floor(room / 6.4));
    const w = Math.min(room, label.length * 6.4 + 8);
    const x0 = leftAligned ? left + 4 : right - 4 - w;
    if (step.kind === 'plaintext') parts.push(el('rect', { x: x0, y: y - 17, width: w, height: 14, fill: '#ffe7d6', rx: 3 }));
    parts.push(leftAligned ? text(left + 8, y - 6, label, { class: 'lbl', fill: colour }) : text(right - 8, y - 6, label, { class: 'lbl', fill: colour, 'text-anchor': 'end' }));
  }
  parts.push(text(LEFT - 8, y + 4, r.sinceStartMs === 0 ? '0' : `+${formatMs(r.sinceStartMs)}`, { class: 'time', 'text-anchor': 'end' }));
  return el('g', { class: 'step', 'data-kind': step.kind, 'data-from': step.from, 'data-to': step.to, 'data-t-ms': Math.round(r.sinceStartMs * 1000) / 1000 },
    title(`${step.label}${step.detail ? `\n${step.detail}` : ''}`), ...parts);
}

export function renderLadder(ladder: Ladder, opts: LadderOptions = {}): string {
  const layout = layoutLadder(ladder, opts);
  const id = `ladder-${ladder.id.replace(/[^a-z0-9-]/gi, '-')}`;
  const lanes = layout.lanes.map(({ lane, x }) => el('g', { class: 'lane', 'data-lane': lane.id },
    text(x, 18, lane.label, { class: 'lane-label', 'text-anchor': 'middle' }),
    lane.sub ? text(x, 34, lane.sub, { class: 'lane-sub', 'text-anchor': 'middle' }) : '',
    el('line', { x1: x, y1: HEADER - 12, x2: x, y2: layout.height - 4, stroke: '#9aa', 'stroke-width': 1 })));
  const breaks = layout.rows.filter((r) => r.breakBeforeMs !== undefined).map((r) => {
    const y = r.breakY!;
    return el('g', { class: 'break' },
      el('rect', { x: LEFT - 4, y: y - 9, width: layout.width - LEFT, height: 16, fill: '#f3f3f3' }),
      text(LEFT + 6, y + 3, `… ${formatMs(r.breakBeforeMs!)} later …`, { class: 'time' }));
  });
  return svg(layout.width, layout.height, { class: 'ladder', 'data-ladder': ladder.id, 'aria-label': ladder.title },
    title(ladder.title),
    arrowMarkers(id, STEP_COLOURS),
    ...lanes, ...breaks,
    ...layout.rows.map((r) => stepMarkup(r, id, layout.width)));
}

/** The legend of step kinds, as HTML (shared by every ladder). */
export function ladderLegend(): string {
  const what: Record<StepKind, string> = {
    packet: 'packet (capture)', drop: 'dropped (flow event)', signal: 'signal to the agent', tls: 'TLS handshake message',
    write: 'auth-map write', plaintext: 'payload readable on the wire', note: 'event at one place',
  };
  return `<p class="legend">${(Object.keys(what) as StepKind[]).map((k) => `<span style="color:${STEP_COLOURS[k]}">■</span> ${esc(what[k])}`).join(' &nbsp; ')}</p>`;
}
