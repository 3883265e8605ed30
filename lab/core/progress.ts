// Progress of long operations, reported as events; the CLI prints them.

export type ProgressEvent =
  | { kind: 'start'; step: string }
  | { kind: 'done'; step: string; ms: number }
  | { kind: 'rollback'; message: string }
  | { kind: 'info'; message: string };

export type Progress = (e: ProgressEvent) => void;

export async function step<T>(progress: Progress | undefined, name: string, fn: () => Promise<T>): Promise<T> {
  progress?.({ kind: 'start', step: name });
  const started = performance.now();
  const result = await fn();
  progress?.({ kind: 'done', step: name, ms: performance.now() - started });
  return result;
}
