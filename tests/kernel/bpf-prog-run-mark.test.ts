// The identity <-> skb->mark encoding on the C side (bpf/lib/overlay.h
// identity_to_mark, bpf/lib/identity.h identity_from_mark), run through
// BPF_PROG_RUN in tests/fixtures/bpf/identity-harness.c, held to the TS
// encoder (lab/datapath/mark.ts) the tests and tools use. Needs root. Pins
// live under a test-only lab name and are removed in teardown, which also
// checks that the programs are gone.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { labBpffsDir } from '../../lab/core/names.ts';
import { identityFromMark, identityToMark, ipv4Packet, runProgram } from '../../lab/datapath/index.ts';
import { IDENTITY_HOST, IDENTITY_LOCAL_FLAG, IDENTITY_REMOTE_NODE, IDENTITY_WORLD } from '../../lab/abi/generated.ts';
import { needsRoot } from '../helpers/kernel.ts';
import { expectProgramsGone, loadFixture, progId, TC_ACT_OK } from '../helpers/progrun.ts';

const LAB = 't-progrun-mark';
const PINS = join(labBpffsDir(LAB), 'harness');
let progs = '';
const ids: number[] = [];

const IDENTITIES = [0, IDENTITY_HOST, IDENTITY_WORLD, IDENTITY_REMOTE_NODE, 255, 256, 257, 0x1234, 0xffff, 0x10000, 0x12345, 0xabcdef, 0xffffff,
  IDENTITY_LOCAL_FLAG | 0x105, 0xffffffff];
/** Marks with and without the identity magic, and with bits around it. */
const MARKS = [0, 0x00000f00, 0x01000f00, 0x01000e00, 0x01000000, 0x0100ff00, 0xdeadbeef, 0x34561f12, 0xffffffff, ...IDENTITIES.map(identityToMark)];

t.before(async () => {
  if (needsRoot) return;
  await rm(labBpffsDir(LAB), { recursive: true, force: true }); // a crashed earlier run
  progs = (await loadFixture('identity-harness.c', PINS)).progs;
  for (const p of ['mark_from_identity', 'identity_of_mark']) ids.push(await progId(join(progs, p)));
});

t.teardown(async () => {
  if (needsRoot) return;
  await rm(labBpffsDir(LAB), { recursive: true, force: true });
  await expectProgramsGone(ids);
});

t.test('identity_to_mark (C) writes the mark identityToMark (TS) computes', { skip: needsRoot }, async (t) => {
  for (const identity of IDENTITIES) {
    const r = await runProgram(join(progs, 'mark_from_identity'), packet(), { priority: identity });
    t.equal(r.retval, TC_ACT_OK);
    t.equal(r.mark, identityToMark(identity), `identity 0x${identity.toString(16)} -> mark 0x${r.mark.toString(16)}`);
  }
  // The layout itself, so that both sides cannot be wrong the same way.
  t.equal((await runProgram(join(progs, 'mark_from_identity'), packet(), { priority: 0x123456 })).mark, 0x34560f12, "Cilium's layout");
});

t.test('identity_from_mark (C) reads what identityFromMark (TS) reads', { skip: needsRoot }, async (t) => {
  for (const mark of MARKS) {
    const r = await runProgram(join(progs, 'identity_of_mark'), packet(), { mark });
    t.equal(r.retval, identityFromMark(mark), `mark 0x${mark.toString(16)} -> identity 0x${r.retval.toString(16)}`);
  }
  t.equal((await runProgram(join(progs, 'identity_of_mark'), packet(), { mark: 0x34560f12 })).retval, 0x123456, "Cilium's layout");
  t.equal((await runProgram(join(progs, 'identity_of_mark'), packet(), { mark: 0x34560e12 })).retval, 0, 'no magic, no identity');
});

/** Any valid frame: the programs never read it. */
const packet = () => ipv4Packet({ src: '10.244.0.2', dst: '10.244.1.2', protocol: 'udp', sport: 1, dport: 2 });
