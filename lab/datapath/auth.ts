// The auth map (cilium_auth_map), the one place it is written: an entry after
// a handshake (authEntryWrite), deleted on revocation and GC, listed.
import { applyBatch, BPFTOOL_IO, decodeEntries, mapDelete, type MapIo, type MapOp } from './bpftool.ts';
import {
  AUTH_EXPIRATION_SHIFT,
  AUTH_INFO_CODEC,
  AUTH_KEY_CODEC,
  encodeAuthInfo,
  encodeAuthKey,
  type AuthKey,
} from '../abi/generated.ts';
import { mapPin } from './maps.ts';

const SHIFT = BigInt(AUTH_EXPIRATION_SHIFT);

/** A Date (or Unix ms) → auth_info.expiration: Unix-epoch ns >> 9. */
export function toAuthExpiration(when: Date | number): bigint {
  const ms = typeof when === 'number' ? when : when.getTime();
  return (BigInt(Math.round(ms)) * 1_000_000n) >> SHIFT;
}

/** auth_info.expiration → Date, rounded to the millisecond (>> 9 dropped up to 511 ns). */
export function fromAuthExpiration(expiration: bigint): Date {
  return new Date(Number(((expiration << SHIFT) + 500_000n) / 1_000_000n));
}

export interface AuthEntry {
  key: AuthKey;
  expiration: Date;
  /** The raw map value (Unix ns >> 9). */
  expirationRaw: bigint;
}

/**
 * THE write of an auth entry: (local, remote, node, type) authenticated until
 * `expiration`. The agent applies it through its long-lived bpftool
 * (MapWriter); writeAuthEntry applies it with one bpftool process.
 */
export function authEntryWrite(lab: string, node: string, key: AuthKey, expiration: Date): MapOp {
  return { op: 'update', pin: mapPin(lab, node, 'cilium_auth_map'), key: encodeAuthKey(key), value: encodeAuthInfo({ expiration: toAuthExpiration(expiration) }) };
}

/** authEntryWrite by hand (`mtless auth … set`, tests): ~6 ms, one bpftool process. */
export async function writeAuthEntry(lab: string, node: string, key: AuthKey, expiration: Date): Promise<void> {
  await applyBatch([authEntryWrite(lab, node, key, expiration)]);
}

/** Removes an entry; false if there was none. */
export async function deleteAuthEntry(lab: string, node: string, key: AuthKey): Promise<boolean> {
  return mapDelete(mapPin(lab, node, 'cilium_auth_map'), encodeAuthKey(key));
}

/** Every auth entry of the node (`io`: the agent reads through its long-lived writer). */
export async function dumpAuth(lab: string, node: string, io: Pick<MapIo, 'dump'> = BPFTOOL_IO): Promise<AuthEntry[]> {
  const rows = decodeEntries(await io.dump(mapPin(lab, node, 'cilium_auth_map')), AUTH_KEY_CODEC, AUTH_INFO_CODEC);
  return rows.map(({ key, value }) => ({ key, expiration: fromAuthExpiration(value.expiration), expirationRaw: value.expiration }));
}
