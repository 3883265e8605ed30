// The screenshot test's PNG decoder, on images built here with each scanline filter.
import t from 'tap';
import { deflateSync } from 'node:zlib';
import { decodePng, pixelStats } from '../helpers/png.ts';

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, Buffer.from(type, 'latin1'), data, Buffer.alloc(4)]); // the CRC is not checked
}

/** A PNG of RGB rows, each row filtered with `filters[y]` (encoded here as the decoder must undo it). */
function png(width: number, rows: number[][], filters: number[]): Buffer {
  const ch = 3;
  const stride = width * ch;
  const raw: number[] = [];
  rows.forEach((row, y) => {
    raw.push(filters[y]!);
    const prev = y > 0 ? rows[y - 1]! : new Array<number>(stride).fill(0);
    for (let i = 0; i < stride; i++) {
      const a = i >= ch ? row[i - ch]! : 0;
      const b = prev[i]!;
      const c = i >= ch ? prev[i - ch]! : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][filters[y]!]!;
      raw.push((row[i]! - pred) & 0xff);
    }
  });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(rows.length, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.from(raw))), chunk('IEND', Buffer.alloc(0))]);
}

t.test('every filter type decodes to the pixels it encoded', async (t) => {
  const rows = Array.from({ length: 5 }, (_, y) => Array.from({ length: 4 * 3 }, (_, i) => (y * 53 + i * 29 + (i % 3) * 7) & 0xff));
  const img = decodePng(png(4, rows, [0, 1, 2, 3, 4]));
  t.match(img, { width: 4, height: 5, channels: 3 });
  t.same([...img.pixels], rows.flat());
});

t.test('blank and not blank', async (t) => {
  const white = Array.from({ length: 3 }, () => new Array<number>(9).fill(255));
  const s = pixelStats(decodePng(png(3, white, [0, 2, 4])));
  t.equal(s.variance, 0);
  t.equal(s.colours, 1);
  const mixed = [[255, 255, 255, 0, 0, 0, 255, 0, 0], [0, 0, 255, 255, 255, 255, 0, 0, 0]];
  const m = pixelStats(decodePng(png(3, mixed, [1, 3])));
  t.ok(m.variance > 1000, `variance ${m.variance.toFixed(0)}`);
  t.equal(m.colours, 4);
  t.throws(() => decodePng(Buffer.from('GIF89a')), /not a PNG/);
});
