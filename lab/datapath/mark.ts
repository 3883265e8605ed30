// The source identity in skb->mark, as the C side writes and reads it
// (bpf/lib/overlay.h identity_to_mark, bpf/lib/identity.h
// identity_from_mark; Cilium's set_identity_mark):
//
//   bits 31..16  identity bits 15..0
//   bits 11..8   MARK_MAGIC_IDENTITY (0xF)
//   bits  7..0   identity bits 23..16
//
// A tunnel program hands the VNI's identity to cil_to_container this way.
// 24 bits travel; the node-local flag (bit 24) does not. Pure.
import { MARK_MAGIC_HOST_MASK, MARK_MAGIC_IDENTITY } from '../abi/generated.ts';

/** The mark that carries `identity` (its low 24 bits). */
export function identityToMark(identity: number): number {
  return (((identity & 0xffff) << 16) | MARK_MAGIC_IDENTITY | ((identity >>> 16) & 0xff)) >>> 0;
}

/** The identity a mark carries, or 0 when its magic says it carries none. */
export function identityFromMark(mark: number): number {
  if ((mark & MARK_MAGIC_HOST_MASK) !== MARK_MAGIC_IDENTITY) return 0;
  return (((mark & 0xff) << 16) | (mark >>> 16)) >>> 0;
}
