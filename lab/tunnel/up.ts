// Bringing up a lab in tunnel mode from inside lab/tunnel, whether or not
// lab/core/lab.ts runs TUNNEL_STEP itself yet.
//
// Once lab.ts no longer refuses `routing: tunnel` (the hook adds TUNNEL_STEP
// after the datapath step), this is plain upWithDatapath. Until then it
// builds the lab with native routes and adds TUNNEL_STEP at the end, whose
// `route replace` moves the other nodes' pod CIDRs onto cilium_vxlan: the
// packets then take the same path as with the hook.
import { unsupported, upWithDatapath, type LabOptions } from '../core/lab.ts';
import type { LabPlan } from '../core/plan.ts';
import type { Topology } from '../topology/model.ts';
import { TUNNEL_STEP } from './tunnel.ts';

/** True while lab/core/lab.ts still refuses tunnel routing (the lead's hook is not in). */
export function coreRefusesTunnel(topology: Topology): boolean {
  return unsupported({ ...topology, routing: 'tunnel' }).some((p) => p.startsWith('routing "tunnel"'));
}

export async function upTunnelLab(topology: Topology, opts: LabOptions): Promise<LabPlan> {
  if (topology.routing !== 'tunnel' || !coreRefusesTunnel(topology)) return upWithDatapath(topology, opts);
  return upWithDatapath({ ...topology, routing: 'native' }, { ...opts, extraSteps: [TUNNEL_STEP, ...(opts.extraSteps ?? [])] });
}
