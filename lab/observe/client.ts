// An observer's side of the relay's socket: send one request, receive the
// matching history, a caught-up mark, then (with follow) each new event.
import { createConnection } from 'node:net';
import { relaySocket } from '../core/names.ts';
import type { ObservedEvent } from './hubble.ts';
import { isControl, type ObserveRequest, type RelayLine } from './protocol.ts';

export interface Subscription {
  /** The history has been delivered; with follow, every later event will be. */
  readonly caughtUp: Promise<void>;
  /** The relay closed the stream (after the history without follow, or after stop()). */
  readonly done: Promise<void>;
  /** Ends a follow subscription; events already sent are still delivered before `done`. */
  stop(): void;
}

/** `line` is the event's JSON text as the relay sent it (what `-o json` prints). */
export function subscribe(lab: string, request: ObserveRequest['observe'], onEvent: (event: ObservedEvent, line: string) => void): Subscription {
  const socket = createConnection(relaySocket(lab));
  let caughtUp!: { resolve: () => void; reject: (e: Error) => void };
  let done!: { resolve: () => void; reject: (e: Error) => void };
  const caughtUpP = new Promise<void>((resolve, reject) => (caughtUp = { resolve, reject }));
  const doneP = new Promise<void>((resolve, reject) => (done = { resolve, reject }));
  caughtUpP.catch(() => {});
  doneP.catch(() => {});
  let failure: Error | undefined;
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('connect', () => socket.write(`${JSON.stringify({ observe: request } satisfies ObserveRequest)}\n`));
  socket.on('data', (chunk: string) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const line = JSON.parse(text) as RelayLine;
      if (!isControl(line)) {
        try {
          onEvent(line, text);
        } catch (e) {
          failure ??= e as Error;
        }
      } else if (line.relay === 'caught_up') caughtUp.resolve();
      else failure ??= new Error(`flow relay: ${line.message}`);
    }
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    failure ??= e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? new Error(`lab "${lab}" has no flow relay running (${e.code})`) : e;
  });
  socket.on('close', () => {
    if (failure) {
      caughtUp.reject(failure);
      done.reject(failure);
    } else {
      caughtUp.resolve();
      done.resolve();
    }
  });
  return {
    caughtUp: caughtUpP,
    done: doneP,
    stop: () => void socket.end(),
  };
}
