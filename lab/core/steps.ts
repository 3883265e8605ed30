// A step of `up` after the kernel build. Each feature (tunnel, WireGuard,
// strict mode, sockmap …) exports its own; lab/compose/lab.ts puts them in
// order, and lab/compose/up.ts runs them and rolls everything back on failure.
import type { LabPlan } from './plan.ts';
import type { LabState } from './state.ts';

export interface ExtraStep {
  name: string;
  run: (plan: LabPlan, state: LabState) => Promise<void>;
}
