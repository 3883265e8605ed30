// The long-lived bpftool writer: answers per line, survives a failing command.
import t from 'tap';
import { mkdir, rm } from 'node:fs/promises';
import { run } from '../../lab/kernel/run.ts';
import { ensureBpffs } from '../../lab/kernel/preflight.ts';
import { labBpffsDir } from '../../lab/core/names.ts';
import { MapWriter } from '../../lab/datapath/map-writer.ts';
import { dumpMapRaw } from '../../lab/datapath/bpftool.ts';
import { needsRoot } from '../helpers/kernel.ts';

t.test('MapWriter', { skip: needsRoot }, async (t) => {
  await ensureBpffs();
  const dir = labBpffsDir('t-mapwriter');
  const pin = `${dir}/m`;
  await mkdir(dir, { recursive: true });
  const writer = new MapWriter();
  try {
    await run(['bpftool', 'map', 'create', pin, 'type', 'hash', 'key', '4', 'value', '8', 'entries', '64', 'name', 't_mapwriter']);
    const key = (n: number) => Buffer.from([n, 0, 0, 0]);
    const value = (n: number) => Buffer.from([n, 0, 0, 0, 0, 0, 0, 0]);
    writer.start();
    for (let i = 1; i <= 20; i++) await writer.apply({ op: 'update', pin, key: key(i), value: value(i) });
    t.equal((await dumpMapRaw(pin)).length, 20, 'every update landed before its promise resolved');
    await t.rejects(writer.apply({ op: 'delete', pin, key: key(99) }), /delete failed/, 'a failing command rejects with bpftool\'s reason');
    await writer.apply({ op: 'delete', pin, key: key(1) });
    t.equal((await dumpMapRaw(pin)).length, 19, 'the writer restarts after a failure and goes on');
  } finally {
    writer.close();
    await rm(dir, { recursive: true, force: true });
  }
});
