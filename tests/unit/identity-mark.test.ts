// The identity <-> skb->mark encoding on the TS side (lab/datapath/mark.ts),
// against Cilium's layout; tests/kernel/bpf-prog-run-mark.test.ts holds the
// C side (bpf/lib) to the same encoder.
import t from 'tap';
import { identityFromMark, identityToMark } from '../../lab/datapath/mark.ts';
import { IDENTITY_LOCAL_FLAG, IDENTITY_WORLD, MARK_MAGIC_HOST_MASK, MARK_MAGIC_IDENTITY } from '../../lab/abi/generated.ts';

t.test('layout: identity bits 15..0 in 31..16, the magic in 11..8, identity bits 23..16 in 7..0', async (t) => {
  t.equal(identityToMark(0x123456), 0x34560f12);
  t.equal(identityToMark(256), 0x01000f00);
  t.equal(identityToMark(IDENTITY_WORLD), 0x00020f00);
  t.equal(identityToMark(0xffffff), 0xffff0fff);
  t.equal(identityToMark(0) & MARK_MAGIC_HOST_MASK, MARK_MAGIC_IDENTITY, 'identity 0 still carries the magic (the VNI-0 case never encodes it)');
  t.equal(identityToMark(0xffffff) & 0xf000, 0, 'bits 15..12 stay clear');
});

t.test('24 bits travel; the node-local flag (bit 24) and higher bits do not', async (t) => {
  t.equal(identityToMark(IDENTITY_LOCAL_FLAG | 0x105), identityToMark(0x105));
  t.equal(identityToMark(0xffffffff), identityToMark(0xffffff));
});

t.test('decode: round trip for 24-bit identities; no magic, no identity', async (t) => {
  for (const id of [1, 2, 6, 255, 256, 0xffff, 0x10000, 0x12345, 0xabcdef, 0xffffff]) t.equal(identityFromMark(identityToMark(id)), id, `identity ${id}`);
  t.equal(identityFromMark(0), 0);
  t.equal(identityFromMark(0x01000e00), 0, 'magic 0xE is not the identity magic');
  t.equal(identityFromMark(0x01000000), 0, 'no magic at all');
  t.equal(identityFromMark(0xffffffff), 0xffffff, 'other bits outside 11..8 do not hide the magic');
});
