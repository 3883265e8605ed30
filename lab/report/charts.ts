// The report's charts, from measured rows: the C6 matrix as a coloured grid,
// the C10 exposure window as W against D, and benchmark ratios to their
// floors as bars on a log scale. Pure.
import type { MatrixRow } from '../scenarios/confusion-matrix.ts';
import type { WindowRow } from '../scenarios/exposure-window.ts';
import { clip, el, esc, svg, text, title } from './svg.ts';

// ---- the matrix ---------------------------------------------------------------

type Tone = 'bad' | 'good' | 'cost' | 'none';
const TONES: Record<Tone, string> = { bad: '#f7c6c6', good: '#cdebd0', cost: '#fbe3b5', none: '#eeeeee' };

interface Cell {
  text: string;
  tone: Tone;
  evidence: string;
}

const yesNo = (v: boolean | undefined, yes: Tone, no: Tone): { text: string; tone: Tone } =>
  v === undefined ? { text: 'not measured', tone: 'none' } : v ? { text: 'yes', tone: yes } : { text: 'no', tone: no };
const pair = (a?: number, b?: number, unit = '') => `${a ?? '?'}${unit} / ${b ?? '?'}${unit}`;

/** Column titles, each as its two header lines. */
export const MATRIX_COLUMNS = ['attack admitted: verdict at the server\'s node', 'plaintext: on the underlay', 'first packet: dropped', 'extra ms to first byte: new pair / same pair', 'handshakes: per connection, new / same'];

export function matrixCells(r: MatrixRow): Cell[] {
  const attack = yesNo(r.attackAdmitted, 'bad', 'good');
  return [
    { ...attack, text: `${attack.text.toUpperCase()} · ${r.attackVerdict}`, evidence: r.evidence.attackAdmitted },
    { ...yesNo(r.plaintextOnUnderlay, 'bad', 'good'), evidence: r.evidence.plaintextOnUnderlay },
    { ...yesNo(r.firstPacketDropped, 'cost', 'good'), evidence: r.evidence.firstPacketDropped },
    { text: pair(r.newConnectionExtraMs.newPair, r.newConnectionExtraMs.samePair, ' ms'), tone: 'none', evidence: r.evidence.newConnectionExtraMs },
    { text: pair(r.handshakesPerConnection.newPair, r.handshakesPerConnection.samePair), tone: r.handshakesPerConnection.samePair ? 'cost' : 'none', evidence: r.evidence.handshakesPerConnection },
  ];
}

export function renderMatrix(rows: MatrixRow[]): string {
  const modeW = 170;
  const colW = [290, 120, 110, 180, 165];
  const rowH = 38;
  const headH = 44;
  const width = modeW + colW.reduce((a, b) => a + b, 0) + 2;
  const height = headH + rows.length * rowH + 2;
  const xs = colW.map((_, i) => modeW + colW.slice(0, i).reduce((a, b) => a + b, 0));
  const head = MATRIX_COLUMNS.map((c, i) => {
    const words = c.split(': ');
    return el('g', {}, text(xs[i]! + 6, 18, words[0]!, { class: 'b' }), words[1] ? text(xs[i]! + 6, 34, words[1], { class: 's' }) : '');
  });
  const body = rows.map((r, ri) => {
    const y = headH + ri * rowH;
    const cells = matrixCells(r).map((c, ci) => el('g', { class: 'cell', 'data-mode': r.mode, 'data-column': MATRIX_COLUMNS[ci]!.split(':')[0], 'data-tone': c.tone },
      title(`${r.mode} · ${MATRIX_COLUMNS[ci]}: ${c.text}\nevidence: ${c.evidence || 'none recorded'}`),
      el('rect', { x: xs[ci]!, y, width: colW[ci]!, height: rowH, fill: TONES[c.tone], stroke: '#fff', 'stroke-width': 2 }),
      text(xs[ci]! + 6, y + 23, clip(c.text, Math.floor(colW[ci]! / 6.6)))));
    return el('g', { class: 'row', 'data-mode': r.mode },
      text(4, y + 23, r.mode, { class: 'b' }), r.problems.length > 0 ? title(`problems: ${r.problems.join('; ')}`) : '', ...cells);
  });
  return svg(width, height, { class: 'matrix', 'aria-label': 'identity confusion by mode (C6)' }, ...head, ...body);
}

export const matrixLegend = () =>
  `<p class="legend"><span style="background:${TONES.bad}">&nbsp;&nbsp;&nbsp;</span> insecure &nbsp; <span style="background:${TONES.good}">&nbsp;&nbsp;&nbsp;</span> secure &nbsp; <span style="background:${TONES.cost}">&nbsp;&nbsp;&nbsp;</span> a cost (a lost first packet, a handshake on every connection) &nbsp; hover a cell for its evidence</p>`;

// ---- axes -----------------------------------------------------------------------

/** About `n` round tick values covering [0, max]. */
export function niceTicks(max: number, n = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.5 && ticks.length < 20; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  if (ticks.at(-1)! < max) ticks.push(ticks.at(-1)! + step);
  return ticks;
}

// ---- the exposure window --------------------------------------------------------

export interface WindowPoint {
  d: number;
  w: number;
  label: string;
  series: 'delay' | 'other';
}

/** The W(D) points: the delay series (native, reuse at once, no partition), and every other case with its D. */
export function windowPoints(rows: WindowRow[]): WindowPoint[] {
  return rows.map((r) => ({
    d: r.delayMs, w: r.windowMs, label: r.case,
    series: r.mode === 'native' && r.reuse === 'at once' && r.partition === 'none' ? 'delay' as const : 'other' as const,
  }));
}

export function renderWindowPlot(rows: WindowRow[]): string {
  const pts = windowPoints(rows);
  const plotted = pts.filter((p) => p.series === 'delay' || p.d > 0);
  const W = 840;
  const H = 330;
  const L = 64;
  const B = 44;
  const T = 16;
  const R = 270;
  const xTicks = niceTicks(Math.max(...plotted.map((p) => p.d), 1));
  const yTicks = niceTicks(Math.max(...plotted.map((p) => p.w), ...plotted.map((p) => p.d), 1));
  const xMax = xTicks.at(-1)!;
  const yMax = yTicks.at(-1)!;
  const x = (d: number) => L + (d / xMax) * (W - L - R);
  const y = (w: number) => H - B - (w / yMax) * (H - B - T);
  const axes = [
    el('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#333' }),
    el('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#333' }),
    ...xTicks.map((v) => el('g', {}, el('line', { x1: x(v), y1: H - B, x2: x(v), y2: H - B + 4, stroke: '#333' }), text(x(v), H - B + 16, String(v), { class: 's', 'text-anchor': 'middle' }))),
    ...yTicks.map((v) => el('g', {}, el('line', { x1: L - 4, y1: y(v), x2: W - R, y2: y(v), stroke: '#e4e4e4' }), text(L - 7, y(v) + 4, String(v), { class: 's', 'text-anchor': 'end' }))),
    text((L + W - R) / 2, H - 6, 'D: delay of the control plane\'s updates to the server\'s node (ms)', { class: 's', 'text-anchor': 'middle' }),
    text(14, (T + H - B) / 2, 'W: exposure window (ms)', { class: 's', 'text-anchor': 'middle', transform: `rotate(-90 14 ${(T + H - B) / 2})` }),
    // W = D: the window cannot end before the update arrives.
    el('line', { class: 'bound', x1: x(0), y1: y(0), x2: x(Math.min(xMax, yMax)), y2: y(Math.min(xMax, yMax)), stroke: '#999', 'stroke-dasharray': '4 4' }),
    text(x(Math.min(xMax, yMax)) + 4, y(Math.min(xMax, yMax)) + 12, 'W = D', { class: 's', fill: '#777' }),
  ];
  const delay = plotted.filter((p) => p.series === 'delay').sort((a, b) => a.d - b.d);
  const line = delay.length > 1 ? el('polyline', { points: delay.map((p) => `${x(p.d)},${y(p.w)}`).join(' '), fill: 'none', stroke: '#b00020', 'stroke-width': 2 }) : '';
  // A label that would overlap an earlier one moves up a line.
  const placed: { x: number; y: number; w: number }[] = [];
  const labelAt = (lx: number, ly: number, s: string) => {
    const w = s.length * 6;
    let yy = ly;
    while (placed.some((q) => Math.abs(q.y - yy) < 12 && lx < q.x + q.w && q.x < lx + w)) yy -= 13;
    placed.push({ x: lx, y: yy, w });
    return text(lx, yy, s, { class: 's' });
  };
  const dots = plotted.map((p) => {
    const label = p.series === 'delay' ? `W ${p.w}` : `${clip(p.label, 34)}: W ${p.w}`;
    return el('g', { class: 'point', 'data-series': p.series, 'data-d': p.d, 'data-w': p.w },
      title(`${p.label}: D = ${p.d} ms, W = ${p.w} ms`),
      p.series === 'delay'
        ? el('circle', { cx: x(p.d), cy: y(p.w), r: 5, fill: '#b00020' })
        : el('rect', { x: x(p.d) - 5, y: y(p.w) - 5, width: 10, height: 10, fill: '#2a7f62' }),
      labelAt(x(p.d) + 8, y(p.w) - 8, label));
  });
  const key = [
    el('circle', { cx: W - R + 20, cy: T + 10, r: 5, fill: '#b00020' }), text(W - R + 30, T + 14, 'native, IP reused at once', { class: 's' }),
    el('rect', { x: W - R + 15, y: T + 25, width: 10, height: 10, fill: '#2a7f62' }), text(W - R + 30, T + 34, 'other cases (hover)', { class: 's' }),
  ];
  return svg(W, H, { class: 'window-plot', 'aria-label': 'exposure window W against delay D (C10)' }, ...axes, line, ...dots, ...key);
}

// ---- benchmark ratios -----------------------------------------------------------

export interface Ratio {
  bench: string;
  name: string;
  value: number;
  /** When the report says which way is better (a `better: 'lower'|'higher'` beside the ratio). */
  better?: 'lower' | 'higher';
}

const RATIO_KEY = /^ratios?$|Ratio/;
/** Array elements are named by one of these fields; unnamed ones (per-round repeats) are left out. */
const NAME_KEYS = ['name', 'case', 'label', 'mode', 'what'];

/** Every ratio of a benchmark report: keys named ratio/ratios/…Ratio, numbers or summaries (their median). */
export function collectRatios(bench: string, data: unknown): Ratio[] {
  const out: Ratio[] = [];
  const num = (v: unknown): number | undefined => typeof v === 'number' && Number.isFinite(v) ? v
    : v && typeof v === 'object' && typeof (v as { median?: unknown }).median === 'number' ? (v as { median: number }).median : undefined;
  const walk = (v: unknown, path: string[], depth: number) => {
    if (depth > 6 || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      for (const item of v) {
        const name = item && typeof item === 'object' ? NAME_KEYS.map((k) => (item as Record<string, unknown>)[k]).find((n) => typeof n === 'string') : undefined;
        if (typeof name === 'string') walk(item, [...path, name], depth + 1);
      }
      return;
    }
    const b = (v as { better?: unknown }).better;
    const better: { better?: 'lower' | 'higher' } = b === 'lower' || b === 'higher' ? { better: b } : {};
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      if (RATIO_KEY.test(k)) {
        const direct = num(child);
        if (direct !== undefined) out.push({ bench, name: [...path, k].join(' · '), value: direct, ...better });
        else if (child && typeof child === 'object' && !Array.isArray(child)) {
          for (const [sub, sv] of Object.entries(child as Record<string, unknown>)) {
            const n = num(sv);
            if (n !== undefined) out.push({ bench, name: [...path, k, sub].join(' · '), value: n, ...better });
          }
        }
      } else walk(child, [...path, k], depth + 1);
    }
  };
  walk(data, [], 0);
  return out;
}

export function renderRatioBars(ratios: Ratio[]): string {
  const rowH = 22;
  const L = 330;
  const W = 900;
  const T = 26;
  const H = T + ratios.length * rowH + 30;
  const values = ratios.map((r) => r.value).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(0.5, ...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(2, ...values)));
  const x = (v: number) => L + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (W - L - 60);
  const ticks: number[] = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) for (const m of [1, 2, 5]) if (d * m <= hi * 1.0001) ticks.push(d * m);
  const grid = ticks.map((t) => el('g', {}, el('line', { x1: x(t), y1: T - 4, x2: x(t), y2: H - 24, stroke: t === 1 ? '#333' : '#e4e4e4', 'stroke-width': t === 1 ? 1.5 : 1 }),
    text(x(t), H - 10, `${t}×`, { class: 's', 'text-anchor': 'middle' })));
  const bars = ratios.map((r, i) => {
    const y = T + i * rowH;
    // Coloured good/bad only where the report says which way is better; else neutral.
    const good = r.better === undefined ? undefined : r.better === 'lower' ? r.value <= 1 : r.value >= 1;
    const fill = good === undefined ? '#8fa8d0' : good ? '#7fbf8a' : '#e0a060';
    return el('g', { class: 'ratio', 'data-bench': r.bench, 'data-name': r.name, 'data-value': r.value, 'data-better': r.better },
      title(`${r.bench}: ${r.name} = ${r.value.toFixed(3)}× its floor${r.better ? ` (${r.better} is better)` : ''}`),
      text(L - 8, y + 14, clip(`${r.bench} · ${r.name}`, 52), { class: 's', 'text-anchor': 'end' }),
      el('rect', { x: Math.min(x(1), x(r.value)), y: y + 3, width: Math.max(1, Math.abs(x(r.value) - x(1))), height: rowH - 8, fill }),
      text(Math.max(x(1), x(r.value)) + 4, y + 14, `${r.value.toFixed(2)}×`, { class: 's' }));
  });
  return svg(W, H, { class: 'bench-ratios', 'aria-label': 'benchmark ratios to their floors' },
    text(x(1), 14, 'floor = 1×', { class: 's', 'text-anchor': 'middle' }), ...grid, ...bars);
}

export interface BenchGoal {
  bench: string;
  goal: string;
  holds: boolean | undefined;
  detail: string;
  noisy?: string;
}

/** The goals of a benchmark report (`goals: {key: {goal, holds, detail}}`), in order. */
export function collectGoals(bench: string, data: unknown): BenchGoal[] {
  const goals = (data as { goals?: Record<string, unknown> } | undefined)?.goals;
  if (!goals || typeof goals !== 'object') return [];
  return Object.values(goals).filter((g): g is BenchGoal => !!g && typeof g === 'object' && typeof (g as BenchGoal).goal === 'string')
    .map((g) => ({ bench, goal: g.goal, holds: g.holds, detail: String(g.detail ?? ''), ...(g.noisy ? { noisy: String(g.noisy) } : {}) }));
}

export const goalsTable = (goals: BenchGoal[]) => `<table class="goals"><tr><th>bench</th><th>goal</th><th>verdict</th><th>measured</th></tr>${goals.map((g) =>
  `<tr><td>${esc(g.bench)}</td><td>${esc(g.goal)}</td><td class="${g.holds === undefined ? '' : g.holds ? 'pass' : 'fail'}">${g.holds === undefined ? 'NOT MEASURED' : g.holds ? 'holds' : 'MISSED'}${g.noisy ? ', NOISY' : ''}</td><td>${esc(g.detail)}${g.noisy ? ` <span class="detail">(${esc(g.noisy)})</span>` : ''}</td></tr>`).join('')}</table>`;
