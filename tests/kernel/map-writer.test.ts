// The long-lived map writer, both kinds (bpf/build/map-batch and bpftool's
// batch): answers per line, survives a failing command, dumps as bpftool
// does; the helper also refuses a key of the wrong size, follows a pin that
// was replaced, refuses per-CPU dumps and lists the namespace's links.
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { run } from '../../lab/kernel/run.ts';
import { ensureBpffs } from '../../lab/kernel/preflight.ts';
import { labBpffsDir } from '../../lab/core/names.ts';
import { MAP_BATCH_HELPER, MapWriter, mapWriterArgv, sharedDumpIo } from '../../lab/datapath/map-writer.ts';
import { dumpMapRaw } from '../../lab/datapath/bpftool.ts';
import { needsRoot } from '../helpers/kernel.ts';

const key = (n: number) => Buffer.from([n, 0, 0, 0]);
const value = (n: number) => Buffer.from([n, 0, 0, 0, 0, 0, 0, 0]);
const createMap = (pin: string) => run(['bpftool', 'map', 'create', pin, 'type', 'hash', 'key', '4', 'value', '8', 'entries', '64', 'name', 't_mapwriter']);

t.test('the helper when built, bpftool otherwise', async (t) => {
  t.same(mapWriterArgv(true), [MAP_BATCH_HELPER]);
  t.same(mapWriterArgv(false), ['stdbuf', '-o0', 'bpftool', '-j', 'batch', 'file', '-']);
});

for (const [kind, argv] of [['map-batch', mapWriterArgv(true)], ['bpftool', mapWriterArgv(false)]] as const) {
  t.test(`MapWriter (${kind})`, { skip: needsRoot || (kind === 'map-batch' && !existsSync(MAP_BATCH_HELPER) ? 'bpf/build/map-batch is not built (make -C bpf)' : false) }, async (t) => {
    await ensureBpffs();
    const dir = labBpffsDir(`t-mapwriter-${kind}`);
    const pin = `${dir}/m`;
    await mkdir(dir, { recursive: true });
    const writer = new MapWriter([...argv]);
    try {
      await createMap(pin);
      writer.start();
      const sent = Date.now();
      const doneAt = await writer.apply({ op: 'update', pin, key: key(1), value: value(1) });
      const answered = Date.now();
      if (kind === 'map-batch') t.ok(doneAt !== undefined && doneAt >= sent - 1 && doneAt <= answered + 1, `the helper says when the kernel had it (${doneAt} in [${sent}, ${answered}])`);
      else t.equal(doneAt, undefined, 'bpftool cannot say when');
      for (let i = 2; i <= 20; i++) await writer.apply({ op: 'update', pin, key: key(i), value: value(i) });
      t.equal((await dumpMapRaw(pin)).length, 20, 'every update landed before its promise resolved');
      await t.rejects(writer.apply({ op: 'delete', pin, key: key(99) }), /delete failed/, 'a failing command rejects with the reason');
      await writer.apply({ op: 'delete', pin, key: key(1) });
      t.equal((await dumpMapRaw(pin)).length, 19, 'the writer restarts after a failure and goes on');
      const sorted = (rows: { key: Buffer; value: Buffer }[]) => rows.map((e) => `${e.key.toString('hex')}=${e.value.toString('hex')}`).sort();
      t.same(sorted(await writer.dump(pin)), sorted(await dumpMapRaw(pin)), 'its dump holds what bpftool\'s holds, byte for byte');
      await writer.applyAll([
        { op: 'update', pin, key: key(40), value: value(40) },
        { op: 'delete', pin, key: key(2) },
        { op: 'update', pin, key: key(41), value: value(41) },
      ]);
      const after = await writer.dump(pin);
      t.ok(after.some((e) => e.key[0] === 40) && after.some((e) => e.key[0] === 41) && !after.some((e) => e.key[0] === 2), 'applyAll ran every line, in order');
      await t.rejects(writer.applyAll([
        { op: 'delete', pin, key: key(98) },
        { op: 'update', pin, key: key(42), value: value(42) },
      ]), /delete failed/, 'applyAll rejects at the first failing line');
      if (kind === 'map-batch') {
        await t.rejects(writer.apply({ op: 'update', pin, key: Buffer.from([1, 0, 0]), value: value(1) }), /key has 3 bytes, value 8: the map takes 4 and 8/, 'a short key is refused');
        await writer.apply({ op: 'update', pin, key: key(30), value: value(30) });
        await rm(pin);
        await createMap(pin);
        await writer.apply({ op: 'update', pin, key: key(31), value: value(31) });
        t.same((await dumpMapRaw(pin)).map((e) => e.key[0]), [31], 'a replaced pin is opened again: the write lands in the new map');
        await writer.apply({ op: 'delete', pin, key: key(31) });
        t.same(await writer.dump(pin), [], 'an emptied map dumps as []');
        const links = await writer.ifindexes();
        t.equal(links?.get('lo'), 1, 'link list names this namespace\'s interfaces (lo is 1)');
        const percpu = `${dir}/percpu`;
        await run(['bpftool', 'map', 'create', percpu, 'type', 'percpu_hash', 'key', '4', 'value', '8', 'entries', '4', 'name', 't_mw_percpu']);
        await t.rejects(writer.dump(percpu), /per-CPU maps are not supported/, 'a per-CPU dump is refused, not misread');
      } else {
        t.equal(await writer.ifindexes(), undefined, 'bpftool lists no links: the caller falls back to ip link');
      }
    } finally {
      writer.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

t.test('the process-wide dump reader', { skip: needsRoot || (!existsSync(MAP_BATCH_HELPER) ? 'bpf/build/map-batch is not built (make -C bpf)' : false) }, async (t) => {
  await ensureBpffs();
  const dir = labBpffsDir('t-mapreader');
  const pin = `${dir}/m`;
  await mkdir(dir, { recursive: true });
  try {
    await createMap(pin);
    await run(['bpftool', 'map', 'update', 'pinned', pin, 'key', 'hex', '07', '00', '00', '00', 'value', 'hex', '01', '02', '03', '04', '05', '06', '07', '08']);
    const io = sharedDumpIo();
    t.same((await io.dump(pin)).map((e) => `${e.key.toString('hex')}=${e.value.toString('hex')}`), ['07000000=0102030405060708'], 'it dumps what the map holds');
    const id = (JSON.parse((await run(['bpftool', '-j', 'map', 'show', 'pinned', pin])).stdout) as { id: number }).id;
    await rm(pin);
    const ids = async () => (JSON.parse((await run(['bpftool', '-j', 'map', 'show'])).stdout || '[]') as { id: number }[]).map((m) => m.id);
    let gone = false;
    for (let i = 0; i < 200 && !gone; i++) {
      gone = !(await ids()).includes(id);
      if (!gone) await new Promise((r) => setTimeout(r, 25));
    }
    t.ok(gone, 'once its pin is removed the map is freed: the reader holds no descriptor of it');
    await t.rejects(io.dump(pin), /No such file or directory/, 'a missing pin is an error (bpftool\'s)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
