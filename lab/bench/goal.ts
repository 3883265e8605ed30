// A benchmark's goals: each one a verdict (holds, MISSED, NOT MEASURED) with
// the numbers behind it, and, where the run was disturbed, why the verdict
// should not be trusted (NOISY). Pure.

export interface GoalCheck {
  goal: string;
  /** undefined: not measured (e.g. mininet unavailable, no 500-pod size). */
  holds: boolean | undefined;
  detail: string;
  /** Why the verdict should not be trusted (other load, rounds that disagree), if so. */
  noisy?: string;
}

/** `holds`, `MISSED` or `NOT MEASURED`, with `, NOISY` when the verdict is not conclusive. */
export function goalVerdict(g: GoalCheck): string {
  return (g.holds === undefined ? 'NOT MEASURED' : g.holds ? 'holds' : 'MISSED') + (g.noisy ? ', NOISY' : '');
}

/** `goals:` and one line per goal, each noisy one followed by why. */
export function formatGoals<G extends { [K in keyof G]: GoalCheck }>(goals: G): string[] {
  const out = ['goals:'];
  for (const g of Object.values<GoalCheck>(goals)) {
    out.push(`  [${goalVerdict(g)}] ${g.goal}: ${g.detail}`);
    if (g.noisy) out.push(`      not conclusive: ${g.noisy}`);
  }
  return out;
}
