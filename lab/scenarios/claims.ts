// The lab's claims (shared/design/mission.md), by id, in a line each. Light:
// shell completion reads the ids on every Tab.
import { AUTH_PORT, WG_PORT } from '../abi/generated.ts';

export const CLAIM_IDS = ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8', 'C9', 'C10'] as const;
export type ClaimId = (typeof CLAIM_IDS)[number];

/** The claims in a line each (mission.md has them in full). */
export const CLAIM_TEXT: Record<ClaimId, string> = {
  C1: 'the first packet of an unauthenticated flow is dropped (189); TCP recovers on the SYN retransmit (~1 s), a UDP datagram is lost',
  C2: `the handshake runs between the node agents (TLS 1.3, ${AUTH_PORT}, SPIFFE IDs), not between the pods, and closes at once`,
  C3: 'after the handshake the payload crosses the underlay in plaintext',
  C4: `with WireGuard the underlay carries only UDP ${WG_PORT}; same-node traffic stays plaintext; keys are per node`,
  C5: 'stale ipcache + IP reuse let a pod of another identity reach a server that forbids it (native routing)',
  C6: 'which modes stop C5, and what each costs a new connection: the measured matrix',
  C7: 'per-connection mTLS keeps the payload encrypted and is not fooled by IP reuse',
  C8: 'sockmap carries same-node payload without it ever appearing on the veths',
  C9: 'an auth entry outlives its flow until certificate expiry; rotation moves it, revocation and GC remove it',
  C10: 'eventual consistency leaves a measurable exposure window (about D; none when reuse waits, none in tunnel mode; until heal or expiry)',
};

