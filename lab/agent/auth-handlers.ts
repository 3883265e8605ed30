// Authentication by auth type, as Cilium's pkg/auth/manager.go dispatches it:
// a table of handlers keyed by the auth type of the signal's key (spire: the
// mutual handshake of handshake.ts; test-always-fail: refuses every request),
// and the one path from a key to an auth-map entry. A key whose type has no
// handler is refused with a reason and nothing is written, as Cilium logs
// "unknown requested auth type" and writes no entry.
//
// Order, as in Cilium's AuthManager.authenticate: the handler first, then the
// remote node's IP, then the handler's verdict, then the map write.
import { AUTH_TYPE_ALWAYS_FAIL, AUTH_TYPE_SPIRE, AUTH_TYPE_TEXT, type AuthKey } from '../abi/generated.ts';
import { authenticate, type CertAndKey } from './handshake.ts';

/** Cilium's authRequest. */
export interface AuthRequest {
  localIdentity: number;
  remoteIdentity: number;
  remoteNodeIp: string;
}

/** Cilium's authResponse, with what the lab logs beside it. */
export interface AuthResponse {
  /** When the entry expires. */
  expiration: Date;
  /** The peer's SPIFFE id, when the handler met one. */
  peer?: string;
  handshakeMs?: number;
}

/** Cilium's authHandler: one per auth type. */
export interface AuthHandler {
  readonly authType: number;
  authenticate(req: AuthRequest): Promise<AuthResponse>;
}

/** A refusal with a machine-readable reason (handshake.ts's AuthError carries one too). */
export class AuthRefused extends Error {
  constructor(readonly reason: string, detail: string) {
    super(detail);
    this.name = 'AuthRefused';
  }
}

/** Cilium's AuthType.String(): the policy's words, "Unknown-auth-type-N" for the rest. */
export const authTypeName = (authType: number): string => AUTH_TYPE_TEXT[authType] ?? `Unknown-auth-type-${authType}`;

/** Handlers by auth type; two handlers for one type is a wiring mistake (Cilium refuses to start). */
export class AuthHandlerTable {
  private readonly byType = new Map<number, AuthHandler>();

  constructor(handlers: AuthHandler[]) {
    for (const h of handlers) {
      if (this.byType.has(h.authType)) throw new Error(`multiple handlers for auth type: ${authTypeName(h.authType)}`);
      this.byType.set(h.authType, h);
    }
  }

  get(authType: number): AuthHandler | undefined {
    return this.byType.get(authType);
  }

  get types(): number[] {
    return [...this.byType.keys()].sort((a, b) => a - b);
  }
}

// ---- the handlers ----------------------------------------------------------------

export interface SpireHandlerOptions {
  /** The SVID this node holds for a local identity. */
  svid(identity: number): CertAndKey | undefined;
  trustBundlePem(): string;
  keyLogFile?: string;
  /** Tests point the handshake at a server of their own. */
  port?: number;
}

/** auth type spire: Cilium's mutual auth handler, the TLS 1.3 handshake of handshake.ts. */
export function spireHandler(opts: SpireHandlerOptions): AuthHandler {
  return {
    authType: AUTH_TYPE_SPIRE,
    async authenticate(req) {
      const localCert = opts.svid(req.localIdentity);
      if (!localCert) throw new AuthRefused('no-local-svid', `this node holds no SVID for identity ${req.localIdentity}`);
      const r = await authenticate({
        remoteNodeIp: req.remoteNodeIp, localIdentity: req.localIdentity, remoteIdentity: req.remoteIdentity, localCert,
        trustBundlePem: opts.trustBundlePem(), keyLogFile: opts.keyLogFile, ...(opts.port !== undefined ? { port: opts.port } : {}),
      });
      return { expiration: r.expiration, peer: r.peerSpiffeId, handshakeMs: r.durationMs };
    },
  };
}

/** Cilium's words (always_fail_authhandler.go). */
export const ALWAYS_FAIL_MESSAGE = 'authenticating failed by the always-fail auth handler';

/** auth type test-always-fail: refuses every request, without a handshake. */
export function alwaysFailHandler(): AuthHandler {
  return {
    authType: AUTH_TYPE_ALWAYS_FAIL,
    authenticate: () => Promise.reject(new AuthRefused('always-fail', ALWAYS_FAIL_MESSAGE)),
  };
}

// ---- from a key to an entry ------------------------------------------------------

/**
 * Writes one auth-map entry (the agent: its long-lived map writer; tests: a
 * fake); resolves with the Unix ms at which the kernel had it, when the
 * writer can tell.
 */
export interface AuthEntryWriter {
  write(key: AuthKey, expiration: Date): Promise<number | undefined | void>;
}

export type AuthOutcome =
  | { ok: true; authType: string; remoteNodeIp: string; response: AuthResponse; entryWrittenAt?: number }
  | { ok: false; authType: string; reason: string; detail: string; remoteNodeIp?: string };

export interface AuthenticateKeyOptions {
  handlers: AuthHandlerTable;
  /** The underlay IP of a node ID (0 = this node), undefined when unknown. */
  nodeIp(remoteNodeId: number): string | undefined;
  writer: AuthEntryWriter;
}

/** Authenticates one key with its type's handler and writes its entry; never throws. */
export async function authenticateKey(key: AuthKey, opts: AuthenticateKeyOptions): Promise<AuthOutcome> {
  const authType = authTypeName(key.authType);
  const handler = opts.handlers.get(key.authType);
  if (!handler) {
    return { ok: false, authType, reason: 'unknown-auth-type', detail: `unknown requested auth type: ${authType} (handlers: ${opts.handlers.types.map(authTypeName).join(', ')})` };
  }
  const remoteNodeIp = opts.nodeIp(key.remoteNodeId);
  if (!remoteNodeIp) {
    return { ok: false, authType, reason: 'unknown-node', detail: `no node with id ${key.remoteNodeId} (control plane not synced?)` };
  }
  let response: AuthResponse;
  try {
    response = await handler.authenticate({ localIdentity: key.localSecLabel, remoteIdentity: key.remoteSecLabel, remoteNodeIp });
  } catch (e) {
    const reason = (e as { reason?: unknown }).reason;
    return { ok: false, authType, remoteNodeIp, reason: typeof reason === 'string' ? reason : 'error', detail: (e as Error).message };
  }
  let entryWrittenAt: number | undefined;
  try {
    entryWrittenAt = (await opts.writer.write(key, response.expiration)) ?? undefined;
  } catch (e) {
    return { ok: false, authType, remoteNodeIp, reason: 'map-write-failed', detail: `failed to update BPF map in datapath: ${(e as Error).message}` };
  }
  return { ok: true, authType, remoteNodeIp, response, ...(entryWrittenAt !== undefined ? { entryWrittenAt } : {}) };
}
