// The lab's daemons (agent, control plane, proxies) log one JSON object per
// line on stdout, which their launcher sends to the daemon log file in the
// lab's state directory (read by `mtless logs`).

export type Log = (event: string, fields?: Record<string, unknown>) => void;

/** One structured JSON line per event. */
export const jsonLog = (component: string, node: string): Log => (event, fields = {}) => {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), component, node, event, ...fields }) + '\n');
};
