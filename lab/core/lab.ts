// The whole lab: the kernel build of up.ts plus the datapath on top.
import type { Topology } from '../topology/model.ts';
import { upLab, type UpOptions } from './up.ts';
import type { LabPlan } from './plan.ts';

export async function upWithDatapath(topology: Topology, opts: UpOptions): Promise<LabPlan> {
  return upLab(topology, { ...opts, extraSteps: [...(opts.extraSteps ?? [])] });
}
