// The few SVG and HTML building blocks the report's pictures share: escaping,
// elements with attributes, and text width estimates for layout. Pure.

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text or attribute value → markup-safe (both contexts, always quoted attributes). */
export const esc = (s: string | number): string => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]!);

export type Attrs = Record<string, string | number | undefined | false>;

function attrs(a: Attrs): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined && v !== false)
    .map(([k, v]) => ` ${k}="${esc(typeof v === 'number' ? round(v) : v as string)}"`)
    .join('');
}

/** Two decimals at most: the file stays small and the numbers readable. */
export const round = (n: number): number => Math.round(n * 100) / 100;

/** `<name attrs>children</name>`; children already markup (escape text with `esc`). */
export function el(name: string, a: Attrs = {}, ...children: string[]): string {
  return children.length === 0 ? `<${name}${attrs(a)}/>` : `<${name}${attrs(a)}>${children.join('')}</${name}>`;
}

/** A text element; `content` is escaped here. */
export const text = (x: number, y: number, content: string, a: Attrs = {}): string => el('text', { x, y, ...a }, esc(content));

/** A tooltip for the enclosing element (SVG <title>: shown on hover, read by screen readers). */
export const title = (content: string): string => el('title', {}, esc(content));

/** Rough width of `s` in px at `fontPx` in a sans-serif font: enough to size boxes without a browser. */
export function textWidth(s: string, fontPx: number): number {
  let w = 0;
  for (const ch of s) w += /[ilj.,:;|!'1]/.test(ch) ? 0.3 : /[mwMW@]/.test(ch) ? 0.85 : /[A-Z0-9]/.test(ch) ? 0.65 : 0.55;
  return w * fontPx;
}

/** `s` cut to at most `max` characters, with an ellipsis when cut. */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

/** A complete <svg> with a viewBox, a class and data attributes (what the browser test looks for). */
export function svg(width: number, height: number, a: Attrs, ...children: string[]): string {
  return el('svg', { xmlns: 'http://www.w3.org/2000/svg', width: Math.ceil(width), height: Math.ceil(height), viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`, role: 'img', ...a }, ...children);
}

/** Arrow heads, one marker per colour (ids are local to the picture: `prefix`). */
export function arrowMarkers(prefix: string, colours: Record<string, string>): string {
  return el('defs', {}, ...Object.entries(colours).map(([name, c]) =>
    el('marker', { id: `${prefix}-${name}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
      el('path', { d: 'M0,0 L10,5 L0,10 z', fill: c }))));
}

/** "12.3 ms", "1.004 s": a duration as a reader wants it. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const a = Math.abs(ms);
  if (a >= 1000) return `${(ms / 1000).toFixed(3)} s`;
  if (a >= 100) return `${ms.toFixed(0)} ms`;
  if (a >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}
