// A small pcap/pcapng reader and pcapng writer (pure, no tools). It exists
// because mergecap keeps each device's own name, and every link of the lab is
// called "eth0" somewhere: we rewrite interface names and descriptions, add
// the capture comment, and merge packets in timestamp order.
//
// Format reference: draft-ietf-opsawg-pcapng (pcapng), draft-ietf-opsawg-pcap.
//
// Every block:            Section Header Block (SHB):
//   +---------------+       block type 0x0A0D0D0A, total length,
//   | block type    |       byte-order magic 0x1A2B3C4D, major 1, minor 0,
//   | total length  |       section length (-1 = unknown), options
//   | body …        |     Interface Description Block (IDB, type 1):
//   | options …     |       link type u16, reserved u16, snap length u32, options
//   | total length  |     Enhanced Packet Block (EPB, type 6):
//   +---------------+       interface id, timestamp high/low, captured length,
//                           original length, data (padded to 4), options
// Options: code u16, length u16, value padded to 4; code 0 ends the list.

export const LINKTYPE_ETHERNET = 1;

const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 0x00000001;
const BT_OPB = 0x00000002; // obsolete Packet Block
const BT_SPB = 0x00000003;
const BT_EPB = 0x00000006;
const BT_DSB = 0x0000000a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_HARDWARE = 2;
const SHB_OS = 3;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;

/** Secrets types of the Decryption Secrets Block. */
export const SECRETS_TLS_KEYLOG = 0x544c534b;
export const SECRETS_WIREGUARD = 0x57474b4c;

export interface PcapngOption {
  code: number;
  value: Buffer;
}

export interface CaptureInterface {
  linkType: number;
  snapLen: number;
  name?: string;
  description?: string;
  /** Other IDB options as read (if_filter, if_os …). Name, description and time resolution are the fields above. */
  options: PcapngOption[];
}

export interface CapturedPacket {
  /** Index into PacketCapture.interfaces. */
  interfaceId: number;
  /** Nanoseconds since the Unix epoch: every interface's resolution is normalised to this. */
  timestampNs: bigint;
  originalLength: number;
  data: Buffer;
  comments: string[];
  /** Other EPB options as read (flags, hash, drop count …). */
  options: PcapngOption[];
}

export interface DecryptionSecrets {
  type: number;
  data: Buffer;
}

/** One capture file, of either format, flattened into a single section. */
export interface PacketCapture {
  comments: string[];
  hardware?: string;
  os?: string;
  application?: string;
  interfaces: CaptureInterface[];
  packets: CapturedPacket[];
  secrets: DecryptionSecrets[];
  /** Blocks the reader does not keep (name resolution, statistics, custom): counted, not lost silently. */
  skippedBlocks: number;
}

export class CaptureFormatError extends Error {
  override name = 'CaptureFormatError';
}

export function emptyCapture(): PacketCapture {
  return { comments: [], interfaces: [], packets: [], secrets: [], skippedBlocks: 0 };
}

// ---- reading ------------------------------------------------------------------

export type CaptureFormat = 'pcap' | 'pcapng';

export function detectFormat(buf: Buffer): CaptureFormat | undefined {
  if (buf.length < 4) return undefined;
  const le = buf.readUInt32LE(0);
  if (le === BT_SHB) return 'pcapng';
  if ([0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1].includes(le)) return 'pcap';
  return undefined;
}

/** Reads a pcap or pcapng file. Throws CaptureFormatError on anything truncated or malformed. */
export function readCapture(buf: Buffer): PacketCapture {
  const format = detectFormat(buf);
  if (format === 'pcapng') return readPcapng(buf);
  if (format === 'pcap') return readPcap(buf);
  throw new CaptureFormatError(buf.length === 0 ? 'empty file (not even a file header)' : 'not a pcap or pcapng file');
}

interface PcapHeader {
  bigEndian: boolean;
  nanoseconds: boolean;
  snapLen: number;
  linkType: number;
}

const PCAP_HEADER_LEN = 24;
const PCAP_RECORD_HEADER_LEN = 16;

function readPcapHeader(buf: Buffer): PcapHeader {
  if (buf.length < PCAP_HEADER_LEN) throw new CaptureFormatError(`pcap file header truncated (${buf.length} of ${PCAP_HEADER_LEN} bytes)`);
  const magicLE = buf.readUInt32LE(0);
  const bigEndian = magicLE === 0xd4c3b2a1 || magicLE === 0x4d3cb2a1;
  const magic = bigEndian ? buf.readUInt32BE(0) : magicLE;
  const u32 = (o: number) => (bigEndian ? buf.readUInt32BE(o) : buf.readUInt32LE(o));
  return {
    bigEndian,
    nanoseconds: magic === 0xa1b23c4d,
    snapLen: u32(16),
    linkType: u32(20) & 0xffff, // upper bits carry FCS length flags
  };
}

/** Reads pcap records from `offset`; returns the packets and how far it got (a partial record stays unread). */
function readPcapRecords(buf: Buffer, header: PcapHeader, offset: number, out: CapturedPacket[]): number {
  const u32 = (o: number) => (header.bigEndian ? buf.readUInt32BE(o) : buf.readUInt32LE(o));
  while (offset + PCAP_RECORD_HEADER_LEN <= buf.length) {
    const sec = u32(offset);
    const frac = u32(offset + 4);
    const capLen = u32(offset + 8);
    const origLen = u32(offset + 12);
    if (offset + PCAP_RECORD_HEADER_LEN + capLen > buf.length) break;
    out.push({
      interfaceId: 0,
      timestampNs: BigInt(sec) * 1_000_000_000n + BigInt(frac) * (header.nanoseconds ? 1n : 1000n),
      originalLength: origLen,
      data: buf.subarray(offset + PCAP_RECORD_HEADER_LEN, offset + PCAP_RECORD_HEADER_LEN + capLen),
      comments: [],
      options: [],
    });
    offset += PCAP_RECORD_HEADER_LEN + capLen;
  }
  return offset;
}

function readPcap(buf: Buffer): PacketCapture {
  const header = readPcapHeader(buf);
  const capture = emptyCapture();
  capture.interfaces.push({ linkType: header.linkType, snapLen: header.snapLen, options: [] });
  const end = readPcapRecords(buf, header, PCAP_HEADER_LEN, capture.packets);
  if (end !== buf.length) throw new CaptureFormatError(`pcap file truncated: ${buf.length - end} bytes of a partial record at offset ${end}`);
  return capture;
}

/**
 * Incremental pcap reader for a live stream (tcpdump -w -): push chunks,
 * get the file header once and whole records as they complete.
 */
export class PcapStreamReader {
  private pending: Buffer = Buffer.alloc(0);
  header?: PcapHeader & { linkType: number };
  packets = 0;

  push(chunk: Buffer): CapturedPacket[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let offset = 0;
    if (!this.header) {
      if (this.pending.length < PCAP_HEADER_LEN) return [];
      this.header = readPcapHeader(this.pending);
      offset = PCAP_HEADER_LEN;
    }
    const packets: CapturedPacket[] = [];
    offset = readPcapRecords(this.pending, this.header, offset, packets);
    // Copy the remainder: the records returned keep views into the old buffer.
    this.pending = Buffer.from(this.pending.subarray(offset));
    this.packets += packets.length;
    return packets;
  }

  /** Bytes of an incomplete record or header still waiting: non-zero at the end means a truncated stream. */
  get leftover(): number {
    return this.pending.length;
  }
}

interface SectionReader {
  le: boolean;
  /** Maps this section's interface ids to PacketCapture.interfaces indices. */
  interfaceBase: number;
  /** Per interface of this section: ticks per second and offset in seconds. */
  clocks: { ticksPerSecond: bigint; offsetSeconds: bigint }[];
}

function readPcapng(buf: Buffer): PacketCapture {
  const capture = emptyCapture();
  let section: SectionReader | undefined;
  let offset = 0;
  let firstSection = true;
  while (offset < buf.length) {
    if (offset + 12 > buf.length) throw new CaptureFormatError(`pcapng truncated: ${buf.length - offset} stray bytes at offset ${offset}`);
    const rawType = buf.readUInt32LE(offset);
    if (rawType === BT_SHB) {
      // The byte-order magic decides how to read everything in this section.
      const bom = buf.readUInt32LE(offset + 8);
      if (bom !== BYTE_ORDER_MAGIC && buf.readUInt32BE(offset + 8) !== BYTE_ORDER_MAGIC) {
        throw new CaptureFormatError(`bad byte-order magic in section header at offset ${offset}`);
      }
      section = { le: bom === BYTE_ORDER_MAGIC, interfaceBase: capture.interfaces.length, clocks: [] };
    }
    if (!section) throw new CaptureFormatError('pcapng does not start with a section header block');
    const le = section.le;
    const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
    const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const type = u32(offset);
    const total = u32(offset + 4);
    if (total < 12 || total % 4 !== 0 || offset + total > buf.length) {
      throw new CaptureFormatError(`pcapng block at offset ${offset} has a bad or truncated length ${total} (file has ${buf.length - offset} more bytes)`);
    }
    if (u32(offset + total - 4) !== total) throw new CaptureFormatError(`pcapng block at offset ${offset}: trailing length does not match`);
    const body = offset + 8;
    const bodyEnd = offset + total - 4;
    const options = (from: number) => readOptions(buf, from, bodyEnd, le);

    switch (type) {
      case BT_SHB: {
        const major = u16(body + 4);
        if (major !== 1) throw new CaptureFormatError(`unsupported pcapng version ${major}`);
        for (const o of options(body + 16)) {
          if (o.code === OPT_COMMENT) capture.comments.push(utf8(o.value));
          else if (firstSection && o.code === SHB_HARDWARE) capture.hardware = utf8(o.value);
          else if (firstSection && o.code === SHB_OS) capture.os = utf8(o.value);
          else if (firstSection && o.code === SHB_USERAPPL) capture.application = utf8(o.value);
        }
        firstSection = false;
        break;
      }
      case BT_IDB: {
        const iface: CaptureInterface = { linkType: u16(body), snapLen: u32(body + 4), options: [] };
        let ticksPerSecond = 1_000_000n; // default resolution: microseconds
        let offsetSeconds = 0n;
        for (const o of options(body + 8)) {
          if (o.code === IF_NAME) iface.name = utf8(o.value);
          else if (o.code === IF_DESCRIPTION) iface.description = utf8(o.value);
          else if (o.code === IF_TSRESOL) {
            const r = o.value[0]!;
            ticksPerSecond = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r);
          } else if (o.code === IF_TSOFFSET) offsetSeconds = le ? o.value.readBigInt64LE(0) : o.value.readBigInt64BE(0);
          else iface.options.push(o);
        }
        section.clocks.push({ ticksPerSecond, offsetSeconds });
        capture.interfaces.push(iface);
        break;
      }
      case BT_EPB:
      case BT_OPB: {
        const isEpb = type === BT_EPB;
        const id = isEpb ? u32(body) : u16(body);
        const clock = section.clocks[id];
        if (!clock) throw new CaptureFormatError(`packet at offset ${offset} refers to interface ${id}, which is not described`);
        const ticks = (BigInt(u32(body + 4)) << 32n) | BigInt(u32(body + 8));
        const capLen = u32(body + 12);
        const dataStart = body + 20;
        if (dataStart + capLen > bodyEnd) throw new CaptureFormatError(`packet at offset ${offset}: captured length ${capLen} exceeds its block`);
        const packet: CapturedPacket = {
          interfaceId: section.interfaceBase + id,
          timestampNs: toNanoseconds(ticks, clock),
          originalLength: u32(body + 16),
          data: buf.subarray(dataStart, dataStart + capLen),
          comments: [],
          options: [],
        };
        for (const o of options(dataStart + pad4(capLen))) {
          if (o.code === OPT_COMMENT) packet.comments.push(utf8(o.value));
          else packet.options.push(o);
        }
        capture.packets.push(packet);
        break;
      }
      case BT_SPB: {
        // No interface id and no timestamp: interface 0, time 0.
        const iface = capture.interfaces[section.interfaceBase];
        if (!iface) throw new CaptureFormatError(`simple packet at offset ${offset} with no interface described`);
        const origLen = u32(body);
        const capLen = Math.min(origLen, iface.snapLen || origLen, bodyEnd - body - 4);
        capture.packets.push({
          interfaceId: section.interfaceBase, timestampNs: 0n, originalLength: origLen,
          data: buf.subarray(body + 4, body + 4 + capLen), comments: [], options: [],
        });
        break;
      }
      case BT_DSB: {
        const len = u32(body + 4);
        capture.secrets.push({ type: u32(body), data: buf.subarray(body + 8, body + 8 + len) });
        break;
      }
      default:
        capture.skippedBlocks++;
    }
    offset += total;
  }
  return capture;
}

function readOptions(buf: Buffer, from: number, end: number, le: boolean): PcapngOption[] {
  const options: PcapngOption[] = [];
  let o = from;
  while (o + 4 <= end) {
    const code = le ? buf.readUInt16LE(o) : buf.readUInt16BE(o);
    const len = le ? buf.readUInt16LE(o + 2) : buf.readUInt16BE(o + 2);
    if (code === OPT_ENDOFOPT) break;
    if (o + 4 + len > end) throw new CaptureFormatError(`option ${code} at offset ${o} overruns its block`);
    options.push({ code, value: buf.subarray(o + 4, o + 4 + len) });
    o += 4 + pad4(len);
  }
  return options;
}

function toNanoseconds(ticks: bigint, clock: SectionReader['clocks'][number]): bigint {
  return clock.offsetSeconds * 1_000_000_000n + (ticks * 1_000_000_000n) / clock.ticksPerSecond;
}

const pad4 = (n: number) => (n + 3) & ~3;
const utf8 = (b: Buffer) => b.toString('utf8').replace(/\0+$/, '');

// ---- writing (little-endian, nanosecond timestamps) ----------------------------

function block(type: number, body: Buffer[]): Buffer {
  const bodyLen = body.reduce((n, b) => n + b.length, 0);
  const total = 12 + bodyLen;
  const head = Buffer.alloc(8);
  head.writeUInt32LE(type, 0);
  head.writeUInt32LE(total, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(total, 0);
  return Buffer.concat([head, ...body, tail]);
}

function encodeOptions(options: PcapngOption[]): Buffer[] {
  if (options.length === 0) return [];
  const parts: Buffer[] = [];
  for (const o of options) {
    if (o.value.length > 0xffff) throw new CaptureFormatError(`option ${o.code} too long (${o.value.length} bytes)`);
    const head = Buffer.alloc(4);
    head.writeUInt16LE(o.code, 0);
    head.writeUInt16LE(o.value.length, 2);
    parts.push(head, o.value, Buffer.alloc(pad4(o.value.length) - o.value.length));
  }
  parts.push(Buffer.alloc(4)); // opt_endofopt
  return parts;
}

const text = (code: number, value: string | undefined): PcapngOption[] =>
  value === undefined ? [] : [{ code, value: Buffer.from(value, 'utf8') }];

export interface SectionMeta {
  comments?: string[];
  hardware?: string;
  os?: string;
  application?: string;
}

export function encodeSectionHeader(meta: SectionMeta = {}): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8); // section length unknown: we stream
  return block(BT_SHB, [
    fixed,
    ...encodeOptions([
      ...(meta.comments ?? []).flatMap((c) => text(OPT_COMMENT, c)),
      ...text(SHB_HARDWARE, meta.hardware),
      ...text(SHB_OS, meta.os),
      ...text(SHB_USERAPPL, meta.application),
    ]),
  ]);
}

export function encodeInterface(iface: CaptureInterface): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(iface.linkType, 0);
  fixed.writeUInt32LE(iface.snapLen, 4);
  return block(BT_IDB, [
    fixed,
    ...encodeOptions([
      ...text(IF_NAME, iface.name),
      ...text(IF_DESCRIPTION, iface.description),
      { code: IF_TSRESOL, value: Buffer.from([9]) }, // nanoseconds
      ...iface.options,
    ]),
  ]);
}

export function encodePacket(p: CapturedPacket): Buffer {
  const fixed = Buffer.alloc(20);
  fixed.writeUInt32LE(p.interfaceId, 0);
  fixed.writeUInt32LE(Number(p.timestampNs >> 32n), 4);
  fixed.writeUInt32LE(Number(p.timestampNs & 0xffffffffn), 8);
  fixed.writeUInt32LE(p.data.length, 12);
  fixed.writeUInt32LE(p.originalLength, 16);
  return block(BT_EPB, [
    fixed,
    p.data,
    Buffer.alloc(pad4(p.data.length) - p.data.length),
    ...encodeOptions([...p.comments.flatMap((c) => text(OPT_COMMENT, c)), ...p.options]),
  ]);
}

export function encodeSecrets(s: DecryptionSecrets): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt32LE(s.type, 0);
  fixed.writeUInt32LE(s.data.length, 4);
  return block(BT_DSB, [fixed, s.data, Buffer.alloc(pad4(s.data.length) - s.data.length)]);
}

/** One pcapng section: header, interfaces, secrets (before any packet that needs them), packets. */
export function writeCapture(c: PacketCapture): Buffer {
  return Buffer.concat([
    encodeSectionHeader(c),
    ...c.interfaces.map(encodeInterface),
    ...c.secrets.map(encodeSecrets),
    ...c.packets.map(encodePacket),
  ]);
}

// ---- merging --------------------------------------------------------------------

export interface MergeInput {
  capture: PacketCapture;
  /**
   * The name its interfaces get in the result. Every interface given the
   * same name and link type becomes one interface: a link captured on
   * several devices (a bridge's ports), in one input or in several. An input
   * mixing link types keeps them apart as "<name> (<device>)".
   */
  name?: string;
  description?: string;
}

/** Where a packet of a merge came from: its input and its index there (0-based). */
export interface PacketOrigin {
  input: number;
  packet: number;
}

/** Merges captures into one, packets in timestamp order (stable: equal times keep input order). */
export function mergeCaptures(inputs: MergeInput[], meta: SectionMeta = {}): PacketCapture {
  return mergeCapturesWithOrigins(inputs, meta).capture;
}

/** mergeCaptures, and per packet of the result where it came from (to carry a comment back to its input). */
export function mergeCapturesWithOrigins(inputs: MergeInput[], meta: SectionMeta = {}): { capture: PacketCapture; origins: PacketOrigin[] } {
  const out: PacketCapture = { ...emptyCapture(), ...meta, comments: [...(meta.comments ?? [])] };
  const origin = new Map<CapturedPacket, PacketOrigin>();
  const named = new Map<string, number>(); // name + link type → interface in `out`
  inputs.forEach((input, inputIndex) => {
    const map = new Map<number, number>();
    const mixed = new Set(input.capture.interfaces.map((i) => i.linkType)).size > 1;
    input.capture.interfaces.forEach((iface, i) => {
      if (input.name === undefined) {
        map.set(i, out.interfaces.length);
        out.interfaces.push({ ...iface, options: [...iface.options] });
        return;
      }
      const name = mixed ? `${input.name} (${iface.name ?? i})` : input.name;
      const key = `${name}\0${iface.linkType}`;
      const shared = named.get(key);
      if (shared !== undefined) {
        out.interfaces[shared]!.snapLen = Math.max(out.interfaces[shared]!.snapLen, iface.snapLen);
        map.set(i, shared);
        return;
      }
      named.set(key, out.interfaces.length);
      map.set(i, out.interfaces.length);
      out.interfaces.push({ ...iface, name, description: input.description ?? iface.description, options: [...iface.options] });
    });
    input.capture.packets.forEach((p, packet) => {
      const copy = { ...p, interfaceId: map.get(p.interfaceId)!, comments: [...p.comments] };
      origin.set(copy, { input: inputIndex, packet });
      out.packets.push(copy);
    });
    addSecrets(out, input.capture.secrets);
    out.skippedBlocks += input.capture.skippedBlocks;
  });
  out.packets.sort((a, b) => (a.timestampNs < b.timestampNs ? -1 : a.timestampNs > b.timestampNs ? 1 : 0));
  return { capture: out, origins: out.packets.map((p) => origin.get(p)!) };
}

/**
 * Adds decryption secrets, each once. A key log that grew (read again
 * later) replaces its earlier copy, of which it is an extension: one block
 * per key log, whichever file it came through.
 */
export function addSecrets(capture: PacketCapture, secrets: DecryptionSecrets[]): void {
  for (const s of secrets) {
    if (s.data.length === 0) continue;
    const same = capture.secrets.findIndex((o) => o.type === s.type && (startsWith(s.data, o.data) || startsWith(o.data, s.data)));
    if (same < 0) capture.secrets.push(s);
    else if (s.data.length > capture.secrets[same]!.data.length) capture.secrets[same] = s;
  }
}

const startsWith = (whole: Buffer, prefix: Buffer) => whole.length >= prefix.length && whole.subarray(0, prefix.length).equals(prefix);
