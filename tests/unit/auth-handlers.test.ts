// The agent's dispatch by auth type (lab/agent/auth-handlers.ts) with fake
// handlers and a fake auth-map writer: which handler runs, what gets written,
// and that a failure or an unknown auth type writes nothing. Also the
// topology's authentication modes → auth types. Pure: no kernel, no network.
import t from 'tap';
import {
  ALWAYS_FAIL_MESSAGE,
  alwaysFailHandler,
  AuthHandlerTable,
  authenticateKey,
  authTypeName,
  spireHandler,
  type AuthEntryWriter,
  type AuthHandler,
  type AuthRequest,
} from '../../lab/agent/auth-handlers.ts';
import { AUTH_TYPE_OF_MODE, compilePolicies } from '../../lab/policy/compile.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import { parseTopology } from '../../lab/topology/validate.ts';
import * as gen from '../../lab/abi/generated.ts';
import type { AuthKey } from '../../lab/abi/generated.ts';

const EXPIRATION = new Date('2030-01-01T00:00:00Z');

/** Records every write; can be told to fail. */
function fakeWriter(fail = false): AuthEntryWriter & { writes: { key: AuthKey; expiration: Date }[] } {
  const writes: { key: AuthKey; expiration: Date }[] = [];
  return {
    writes,
    async write(key, expiration) {
      if (fail) throw new Error('bpftool: map is full');
      writes.push({ key, expiration });
    },
  };
}

/** A spire-typed handler that answers without a handshake, recording its requests. */
function fakeSpire(): AuthHandler & { requests: AuthRequest[] } {
  const requests: AuthRequest[] = [];
  return {
    requests,
    authType: gen.AUTH_TYPE_SPIRE,
    async authenticate(req) {
      requests.push(req);
      return { expiration: EXPIRATION, peer: `spiffe://spiffe.cilium/identity/${req.remoteIdentity}` };
    },
  };
}

const key = (authType: number, remoteNodeId = 2): AuthKey => ({ localSecLabel: 256, remoteSecLabel: 257, remoteNodeId, authType });
const NODES: Record<number, string> = { 0: '172.30.0.10', 2: '172.30.0.11' };
const nodeIp = (id: number) => NODES[id];

t.test('auth type names are Cilium\'s AuthType.String()', async (t) => {
  t.equal(authTypeName(gen.AUTH_TYPE_DISABLED), 'disabled');
  t.equal(authTypeName(gen.AUTH_TYPE_SPIRE), 'spire');
  t.equal(authTypeName(gen.AUTH_TYPE_ALWAYS_FAIL), 'test-always-fail');
  t.equal(authTypeName(3), 'Unknown-auth-type-3');
  t.equal(authTypeName(127), 'Unknown-auth-type-127');
});

t.test('the table is keyed by auth type and refuses two handlers for one type', async (t) => {
  const table = new AuthHandlerTable([fakeSpire(), alwaysFailHandler()]);
  t.same(table.types, [gen.AUTH_TYPE_SPIRE, gen.AUTH_TYPE_ALWAYS_FAIL]);
  t.equal(table.get(gen.AUTH_TYPE_ALWAYS_FAIL)?.authType, gen.AUTH_TYPE_ALWAYS_FAIL);
  t.equal(table.get(3), undefined);
  t.throws(() => new AuthHandlerTable([fakeSpire(), fakeSpire()]), /multiple handlers for auth type: spire/);
});

t.test('spire: the spire handler runs against the remote node\'s IP, and the entry is written', async (t) => {
  const spire = fakeSpire();
  const writer = fakeWriter();
  const outcome = await authenticateKey(key(gen.AUTH_TYPE_SPIRE), { handlers: new AuthHandlerTable([spire, alwaysFailHandler()]), nodeIp, writer });
  t.match(outcome, { ok: true, authType: 'spire', remoteNodeIp: '172.30.0.11', response: { expiration: EXPIRATION } });
  t.same(spire.requests, [{ localIdentity: 256, remoteIdentity: 257, remoteNodeIp: '172.30.0.11' }]);
  t.same(writer.writes, [{ key: key(gen.AUTH_TYPE_SPIRE), expiration: EXPIRATION }], 'one entry, under the signal\'s own key (auth type included)');
  // A peer on this node (remote_node_id 0) is dialled at this node's own address.
  await authenticateKey(key(gen.AUTH_TYPE_SPIRE, 0), { handlers: new AuthHandlerTable([spire]), nodeIp, writer });
  t.equal(spire.requests.at(-1)?.remoteNodeIp, '172.30.0.10');
  t.notOk('entryWrittenAt' in outcome, 'a writer that cannot say when: no entryWrittenAt');
  const timed: AuthEntryWriter = { write: async () => 1_780_000_000_123.456 };
  t.match(await authenticateKey(key(gen.AUTH_TYPE_SPIRE), { handlers: new AuthHandlerTable([spire]), nodeIp, writer: timed }), { ok: true, entryWrittenAt: 1_780_000_000_123.456 }, 'the writer\'s time of the entry, for the agent\'s log');
});

t.test('test-always-fail: refused with Cilium\'s message, nothing written, every time', async (t) => {
  const spire = fakeSpire();
  const writer = fakeWriter();
  const handlers = new AuthHandlerTable([spire, alwaysFailHandler()]);
  for (let i = 0; i < 3; i++) {
    const outcome = await authenticateKey(key(gen.AUTH_TYPE_ALWAYS_FAIL), { handlers, nodeIp, writer });
    t.same(outcome, { ok: false, authType: 'test-always-fail', remoteNodeIp: '172.30.0.11', reason: 'always-fail', detail: ALWAYS_FAIL_MESSAGE }, `attempt ${i + 1}`);
  }
  t.same(writer.writes, [], 'no entry');
  t.same(spire.requests, [], 'the spire handler never ran');
});

t.test('an unknown auth type is refused before anything else, and nothing is written', async (t) => {
  const spire = fakeSpire();
  const writer = fakeWriter();
  let asked = false;
  const outcome = await authenticateKey(key(3), {
    handlers: new AuthHandlerTable([spire, alwaysFailHandler()]),
    nodeIp: (id) => ((asked = true), nodeIp(id)),
    writer,
  });
  t.match(outcome, { ok: false, authType: 'Unknown-auth-type-3', reason: 'unknown-auth-type' });
  t.match(!outcome.ok && outcome.detail, /unknown requested auth type: Unknown-auth-type-3 \(handlers: spire, test-always-fail\)/);
  t.same(writer.writes, [], 'no entry');
  t.same(spire.requests, []);
  t.notOk(asked, 'the node IP is not even looked up (Cilium: handler first)');
  // Disabled (0) has no handler either: a signal for it is a datapath bug, refused the same way.
  t.match(await authenticateKey(key(gen.AUTH_TYPE_DISABLED), { handlers: new AuthHandlerTable([spire]), nodeIp, writer }), { ok: false, reason: 'unknown-auth-type', authType: 'disabled' });
});

t.test('an unknown node, a failing handler and a failing write write nothing and say why', async (t) => {
  const writer = fakeWriter();
  const handlers = new AuthHandlerTable([fakeSpire()]);
  t.match(await authenticateKey(key(gen.AUTH_TYPE_SPIRE, 9), { handlers, nodeIp, writer }), { ok: false, reason: 'unknown-node', detail: /no node with id 9/ });
  const throwing: AuthHandler = { authType: gen.AUTH_TYPE_SPIRE, authenticate: () => Promise.reject(Object.assign(new Error('peer reset'), { reason: 'rejected-by-peer' })) };
  t.match(await authenticateKey(key(gen.AUTH_TYPE_SPIRE), { handlers: new AuthHandlerTable([throwing]), nodeIp, writer }), { ok: false, reason: 'rejected-by-peer', detail: 'peer reset' });
  const plain: AuthHandler = { authType: gen.AUTH_TYPE_SPIRE, authenticate: () => Promise.reject(new Error('boom')) };
  t.match(await authenticateKey(key(gen.AUTH_TYPE_SPIRE), { handlers: new AuthHandlerTable([plain]), nodeIp, writer }), { ok: false, reason: 'error', detail: 'boom' });
  t.same(writer.writes, []);
  t.match(await authenticateKey(key(gen.AUTH_TYPE_SPIRE), { handlers, nodeIp, writer: fakeWriter(true) }), { ok: false, reason: 'map-write-failed', detail: /map is full/ });
});

t.test('the spire handler refuses a local identity it holds no SVID for, without dialling', async (t) => {
  const handler = spireHandler({ svid: () => undefined, trustBundlePem: () => '' });
  t.equal(handler.authType, gen.AUTH_TYPE_SPIRE);
  await t.rejects(handler.authenticate({ localIdentity: 256, remoteIdentity: 257, remoteNodeIp: '192.0.2.1' }), { reason: 'no-local-svid', message: /no SVID for identity 256/ });
});

t.test('authentication modes map to Cilium\'s auth types, marked explicit', async (t) => {
  t.same(AUTH_TYPE_OF_MODE, { disabled: gen.AUTH_TYPE_DISABLED, required: gen.AUTH_TYPE_SPIRE, 'test-always-fail': gen.AUTH_TYPE_ALWAYS_FAIL });
  const parsed = parseTopology(`
name: modes
nodes:
  - name: n1
    pods:
      - { name: client, labels: { app: client } }
      - { name: server, labels: { app: server } }
policies:
  - name: server-test-fail
    endpointSelector: { matchLabels: { app: server } }
    ingress:
      - fromEndpoints: [{ matchLabels: { app: client } }]
        toPorts: [{ ports: [{ port: "8080", protocol: TCP }] }]
        authentication: { mode: test-always-fail }
      - fromEndpoints: [{ matchLabels: { app: client } }]
        toPorts: [{ ports: [{ port: "9090", protocol: TCP }] }]
        authentication: { mode: required }
`);
  t.same(parsed.issues, [], 'test-always-fail is a valid mode');
  const topology = parsed.topology!;
  const policies = compilePolicies(topology, allocateIdentities(topology));
  const server = policies.get('server')!;
  const byPort = (port: number) => server.entries.find((e) => e.direction === 'ingress' && e.port === port);
  t.match(byPort(8080), { authType: gen.AUTH_TYPE_ALWAYS_FAIL, explicitAuth: true });
  t.match(byPort(9090), { authType: gen.AUTH_TYPE_SPIRE, explicitAuth: true });
});
