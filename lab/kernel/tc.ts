// Attaching pinned BPF programs with tc (clsact + cls_bpf, direct action):
// the one tc sequence of the datapath (pod veths), the overlay (VXLAN
// device) and strict mode (underlay device). tcx is out of reach of this
// bpftool/libbpf (lab/kernel notes).
import { run } from './run.ts';

export type TcDirection = 'ingress' | 'egress';

export interface TcAttachment {
  dev: string;
  direction: TcDirection;
  /** A program pinned in bpffs. */
  pin: string;
}

// One filter per hook at a fixed prio/handle: `replace` makes attaching
// twice leave one filter, not two, and detach names exactly ours.
const FILTER = ['prio', '1', 'handle', '1', 'bpf'];

/** `tc -batch` lines (pure): a clsact per device, before that device's filters. */
export function tcAttachLines(attachments: TcAttachment[]): string[] {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const a of attachments) {
    if (!seen.has(a.dev)) {
      seen.add(a.dev);
      lines.push(`qdisc replace dev ${a.dev} clsact`);
    }
    lines.push(`filter replace dev ${a.dev} ${a.direction} ${FILTER.join(' ')} da pinned ${a.pin}`);
  }
  return lines;
}

/**
 * Attaches every program in one tc process inside `netns`. nsenter (run's
 * netns), not `tc -n`: `tc -n` remounts /sys and would not see the pins.
 */
export async function tcAttach(netns: string, attachments: TcAttachment[]): Promise<void> {
  if (attachments.length === 0) return;
  await run(['tc', '-batch', '-'], { netns, input: tcAttachLines(attachments).join('\n') + '\n' });
}

/**
 * Removes our filter from one hook of `dev`, or, without a direction, the
 * device's clsact with every filter on it. Nothing there to remove is fine.
 */
export async function tcDetach(netns: string, dev: string, direction?: TcDirection): Promise<void> {
  if (direction) await run(['tc', 'filter', 'del', 'dev', dev, direction, ...FILTER], { netns, okCodes: [0, 1, 2] });
  else await run(['tc', 'qdisc', 'del', 'dev', dev, 'clsact'], { netns, okCodes: [2] });
}
