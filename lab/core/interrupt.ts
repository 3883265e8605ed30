// How a long command that owns kernel objects is asked to stop: Ctrl-C,
// SIGTERM, or its output pipe closing (`mtless fuzz … | head -1`). Each one
// asks it to finish its step and tear down; none exits mid-way, which would
// leave namespaces and pins behind.
type Stop = (signal: NodeJS.Signals) => void;

const stoppers = new Set<Stop>();

/** Calls `stop` on SIGINT, SIGTERM or a closed output pipe (as SIGPIPE) until the returned function is called. */
export function listenForInterrupt(stop: Stop): () => void {
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  stoppers.add(stop);
  return () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    stoppers.delete(stop);
  };
}

/** The output pipe closed: true if a running command was asked to stop (it then exits by itself). */
export function interruptForClosedOutput(): boolean {
  for (const stop of stoppers) stop('SIGPIPE');
  return stoppers.size > 0;
}
