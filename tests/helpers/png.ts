// A minimal PNG decoder (8-bit greyscale, RGB, RGBA; not interlaced), enough
// to look at a browser's screenshot without a dependency: chunks, zlib
// (node:zlib), the five scanline filters.
import { inflateSync } from 'node:zlib';

export interface Image {
  width: number;
  height: number;
  /** Bytes per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. */
  channels: number;
  /** Unfiltered pixel rows, width * channels bytes each. */
  pixels: Buffer;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

export function decodePng(buf: Buffer): Image {
  if (!buf.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG file');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = [data[8]!, data[9]!, data[10]!, data[11]!, data[12]!];
      if (depth !== 8 || CHANNELS[colour] === undefined || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${interlace}`);
      channels = CHANNELS[colour]!;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      let v = line[i]!;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter} on row ${y}`);
      out[i] = v & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Luminance statistics: mean and variance (0–255 scale), and how many distinct colours (capped). */
export function pixelStats(img: Image): { mean: number; variance: number; colours: number } {
  let sum = 0;
  let sq = 0;
  const colours = new Set<number>();
  const n = img.width * img.height;
  for (let p = 0; p < n; p++) {
    const o = p * img.channels;
    const [r, g, b] = img.channels >= 3 ? [img.pixels[o]!, img.pixels[o + 1]!, img.pixels[o + 2]!] : [img.pixels[o]!, img.pixels[o]!, img.pixels[o]!];
    const l = 0.299 * r + 0.587 * g + 0.114 * b;
    sum += l;
    sq += l * l;
    if (colours.size < 4096) colours.add((r << 16) | (g << 8) | b);
  }
  const mean = sum / n;
  return { mean, variance: sq / n - mean * mean, colours: colours.size };
}
