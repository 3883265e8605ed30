// The relay's two buffers, pure:
// - SortBuffer puts the events of every node (and the agents' auth events,
//   which arrive later, through their logs) in time order: each waits a
//   short window after it arrived for earlier events still on their way
//   (hubble-relay's sort buffer with its drain timeout does the same).
// - Ring keeps the last N events of one node, for --since and --last.

export interface Timed {
  /** Unix ns of the event itself. */
  timeNs: bigint;
}

export class SortBuffer<T extends Timed> {
  private pending: { item: T; arrivedMs: number }[] = [];

  constructor(private readonly windowMs: number) {}

  get size(): number {
    return this.pending.length;
  }

  push(item: T, nowMs: number): void {
    // Kept sorted by event time; a late event goes before the later ones still waiting.
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1]!.item.timeNs > item.timeNs) at--;
    this.pending.splice(at, 0, { item, arrivedMs: nowMs });
  }

  /** When the first waiting event's window ends (ms, the clock of push), or undefined when none waits. */
  nextDueMs(): number | undefined {
    let due: number | undefined;
    for (const p of this.pending) if (due === undefined || p.arrivedMs < due) due = p.arrivedMs;
    return due === undefined ? undefined : due + this.windowMs;
  }

  /**
   * The events whose window has passed, in time order, together with every
   * event older than the newest of them (it cannot wait any more without
   * coming out after a later one).
   */
  drain(nowMs: number): T[] {
    let last = -1;
    for (let i = 0; i < this.pending.length; i++) if (this.pending[i]!.arrivedMs + this.windowMs <= nowMs) last = i;
    const out = this.pending.splice(0, last + 1);
    return out.map((p) => p.item);
  }

  /** Everything, in time order (at shutdown). */
  flush(): T[] {
    const out = this.pending.map((p) => p.item);
    this.pending = [];
    return out;
  }
}

export class Ring<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError('a ring needs a positive capacity');
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Oldest first. */
  toArray(): T[] {
    const start = (this.next - this.count + this.capacity) % this.capacity;
    return Array.from({ length: this.count }, (_, i) => this.items[(start + i) % this.capacity] as T);
  }
}

/** Several time-ordered lists as one, by time (stable: equal times keep list order). */
export function mergeByTime<T extends Timed>(lists: T[][]): T[] {
  return lists
    .flatMap((list, l) => list.map((item, i) => ({ item, l, i })))
    .sort((a, b) => (a.item.timeNs < b.item.timeNs ? -1 : a.item.timeNs > b.item.timeNs ? 1 : a.l - b.l || a.i - b.i))
    .map((x) => x.item);
}
