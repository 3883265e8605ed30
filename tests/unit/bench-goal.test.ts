// Goal verdicts as the benchmarks print them (lab/bench/goal.ts).
import t from 'tap';
import { formatGoals, goalVerdict, type GoalCheck } from '../../lab/bench/goal.ts';

const goal = (holds: boolean | undefined, noisy?: string): GoalCheck => ({ goal: 'p50 ≤ 10 ms', holds, detail: '4.2 ms', ...(noisy ? { noisy } : {}) });

t.test('verdicts: holds, MISSED, NOT MEASURED, and NOISY on top of either', async (t) => {
  t.equal(goalVerdict(goal(true)), 'holds');
  t.equal(goalVerdict(goal(false)), 'MISSED');
  t.equal(goalVerdict(goal(undefined)), 'NOT MEASURED');
  t.equal(goalVerdict(goal(true, 'busy')), 'holds, NOISY');
  t.equal(goalVerdict(goal(false, 'busy')), 'MISSED, NOISY');
});

t.test('the goals section: one line per goal, and why a noisy one is not conclusive', async (t) => {
  t.same(formatGoals({ a: goal(true), b: goal(false, 'other jobs kept the CPUs up to 94 % busy before a run') }), [
    'goals:',
    '  [holds] p50 ≤ 10 ms: 4.2 ms',
    '  [MISSED, NOISY] p50 ≤ 10 ms: 4.2 ms',
    '      not conclusive: other jobs kept the CPUs up to 94 % busy before a run',
  ]);
});
