// The agent's counters and the Prometheus text format (lab/agent/metrics.ts):
// what the agent serves parses back to the same samples, Cilium's names and
// labels, escaping, and a parser that rejects what Prometheus would. Pure.
import t from 'tap';
import {
  AGENT_METRIC_FAMILIES,
  AgentMetrics,
  AUTH_ATTEMPTS,
  AUTH_PENDING,
  MetricSet,
  parsePrometheus,
  renderLabels,
  renderPrometheus,
  sampleValue,
  signalName,
  SIGNALS_HANDLED,
} from '../../lab/agent/metrics.ts';
import { SIGNAL_TEXT, SIGNAL_AUTH_REQUIRED, SIGNAL_NAT_FILL_UP } from '../../lab/abi/generated.ts';

t.test('Cilium\'s metric and signal names', async (t) => {
  t.equal(SIGNALS_HANDLED.name, 'cilium_datapath_signals_handled_total');
  t.ok(AGENT_METRIC_FAMILIES.every((f) => f.name.startsWith('cilium_')), 'all in the cilium_ namespace');
  t.ok(AGENT_METRIC_FAMILIES.filter((f) => f.type === 'counter').every((f) => f.name.endsWith('_total')), 'counters end in _total');
  t.equal(signalName(SIGNAL_TEXT[SIGNAL_AUTH_REQUIRED], SIGNAL_AUTH_REQUIRED), 'auth_required');
  t.equal(signalName(SIGNAL_TEXT[SIGNAL_NAT_FILL_UP], SIGNAL_NAT_FILL_UP), 'nat_fill_up');
  t.equal(signalName(undefined, 9), 'signal_9');
});

t.test('counters move by label set, and the text parses back to them', async (t) => {
  const m = new AgentMetrics();
  const before = parsePrometheus(m.render());
  t.equal(sampleValue(before.samples, AUTH_PENDING.name), 0, 'the gauge is there from the start');
  t.equal(sampleValue(before.samples, SIGNALS_HANDLED.name), 0, 'no signal yet');
  t.same(before.types, { [SIGNALS_HANDLED.name]: 'counter', [AUTH_ATTEMPTS.name]: 'counter', [AUTH_PENDING.name]: 'gauge' }, 'every family has a TYPE, even without samples');

  m.signalHandled('auth_required', 'spire', 'received');
  m.signalHandled('auth_required', 'spire', 'received');
  m.signalHandled('auth_required', 'spire', 'channel overflow');
  m.signalHandled('auth_required', 'Unknown-auth-type-3', 'received');
  m.authAttempt('spire', 'success');
  m.authAttempt('test-always-fail', 'fail', 'always-fail');
  m.authAttempt('test-always-fail', 'fail', 'always-fail');
  m.pending(3);
  m.pending(1);
  const text = m.render();
  const { samples, help } = parsePrometheus(text);
  t.equal(help[SIGNALS_HANDLED.name], SIGNALS_HANDLED.help);
  t.equal(sampleValue(samples, SIGNALS_HANDLED.name, { signal: 'auth_required', data: 'spire', status: 'received' }), 2);
  t.equal(sampleValue(samples, SIGNALS_HANDLED.name, { status: 'channel overflow' }), 1);
  t.equal(sampleValue(samples, SIGNALS_HANDLED.name, { data: 'Unknown-auth-type-3' }), 1);
  t.equal(sampleValue(samples, SIGNALS_HANDLED.name), 4, 'all signals');
  t.equal(sampleValue(samples, AUTH_ATTEMPTS.name, { auth_type: 'spire', outcome: 'success' }), 1);
  t.equal(sampleValue(samples, AUTH_ATTEMPTS.name, { auth_type: 'test-always-fail', outcome: 'fail', reason: 'always-fail' }), 2);
  t.equal(sampleValue(samples, AUTH_ATTEMPTS.name, { outcome: 'success', reason: '' }), 1, 'a success has no reason label');
  t.equal(sampleValue(samples, AUTH_PENDING.name), 1, 'a gauge holds its last value');
  t.match(text, /^cilium_datapath_signals_handled_total\{signal="auth_required",data="spire",status="channel overflow"\} 1$/m, 'one line per series, labels in order');
  t.match(text, /^cilium_auth_attempts_total\{auth_type="spire",outcome="success"\} 1$/m);
  t.match(text, /^# TYPE cilium_auth_pending gauge\ncilium_auth_pending 1$/m);
  t.ok(text.endsWith('\n'), 'ends with a newline');
});

t.test('label values and HELP are escaped; the parser undoes it', async (t) => {
  const odd = 'a "quoted" back\\slash\nnewline';
  t.equal(renderLabels({ v: odd }), '{v="a \\"quoted\\" back\\\\slash\\nnewline"}');
  const family = { name: 'x_total', type: 'counter' as const, help: 'line one\nback\\slash' };
  const set = new MetricSet([family]);
  set.add(family, { v: odd, w: '}' }, 2.5);
  const parsed = parsePrometheus(set.render());
  t.same(parsed.samples, [{ name: 'x_total', labels: { v: odd, w: '}' }, value: 2.5 }]);
  t.equal(parsed.help.x_total, family.help);
});

t.test('the parser reads what other exporters write and refuses broken lines', async (t) => {
  const { samples } = parsePrometheus([
    '# A comment that is neither HELP nor TYPE',
    'up 1',
    'go_gc_duration_seconds{quantile="0.5"} 1.2e-05 1700000000000',
    'spaced { a = "1" , b="2",} +Inf',
    'nan_metric NaN',
    '',
  ].join('\n'));
  t.same(samples, [
    { name: 'up', labels: {}, value: 1 },
    { name: 'go_gc_duration_seconds', labels: { quantile: '0.5' }, value: 1.2e-5 },
    { name: 'spaced', labels: { a: '1', b: '2' }, value: Infinity },
    { name: 'nan_metric', labels: {}, value: NaN },
  ]);
  t.throws(() => parsePrometheus('9bad 1'), /line 1: no metric name/);
  t.throws(() => parsePrometheus('ok 1\nm{a="1" 2'), /line 2: expected , or \}/);
  t.throws(() => parsePrometheus('m{a=1} 2'), /no quoted value/);
  t.throws(() => parsePrometheus('m{a="1} 2'), /unterminated value/);
  t.throws(() => parsePrometheus('m one'), /not a number: one/);
  t.throws(() => parsePrometheus('m'), /expected a value/);
  t.throws(() => parsePrometheus('m 1 2 3'), /expected a value/);
});

t.test('renderPrometheus keeps families apart and in their order', async (t) => {
  const a = { name: 'a_total', type: 'counter' as const, help: 'A' };
  const b = { name: 'b', type: 'gauge' as const, help: 'B' };
  const text = renderPrometheus([b, a], [{ name: 'a_total', labels: {}, value: 1 }, { name: 'b', labels: { x: 'y' }, value: -2 }]);
  t.equal(text, '# HELP b B\n# TYPE b gauge\nb{x="y"} -2\n# HELP a_total A\n# TYPE a_total counter\na_total 1\n');
});
