// Which auth entries the agent re-authenticates for a peer's SVID rotation
// (refreshCandidates, lab/agent/agent.ts): the pure rule its once-a-second
// check uses on what it wrote before it dumps the map. No root.
import t from 'tap';
import { refreshCandidates } from '../../lab/agent/agent.ts';

const NOW = 1_000_000;
const key = (local: number) => ({ localSecLabel: local, remoteSecLabel: 300, remoteNodeId: 1, authType: 1 });
// Our SVID for identity 256: a life of 3000 ms, ending at NOW + 2000.
const svid = (id: number) => (id === 256 ? { notBefore: new Date(NOW - 1000), notAfter: new Date(NOW + 2000) } : undefined);

t.test('due: bounded by the peer and within the last third of a life', async (t) => {
  const entries = [
    { key: key(256), expiration: NOW + 900 }, // 900 ≤ 3000 × (1 − 2/3): due
    { key: key(256), expiration: NOW + 1500 }, // more than a third of a life left: not yet
    { key: key(256), expiration: NOW - 1 }, // expired: GC's
    { key: key(256), expiration: NOW + 2000 }, // bounded by our own SVID: our rotation's
    { key: key(999), expiration: NOW + 100 }, // no SVID of ours for it
  ];
  t.same(refreshCandidates(entries, svid, NOW, 2 / 3), [entries[0]]);
  t.same(refreshCandidates([], svid, NOW, 2 / 3), [], 'nothing written, nothing to dump for');
});
