// What observers and the flow relay say to each other over its unix socket
// (relaySocket in lab/core/names.ts): newline-delimited JSON. A subscriber
// sends one request line:
//   {"observe": {...}}      events as `observe -o json` prints them, filtered
//   {"records": {"node"}}   one node's raw cilium_events records (streamFlows,
//                           lab/datapath/events.ts)
// For "observe", the relay answers with the matching history (merged by
// time), then {"relay":"caught_up"}, then, with follow, every new matching
// event; without follow it closes after the history. Errors come as
// {"relay":"error","message"}.
import type { FlowFilter } from './filter.ts';
import type { ObservedEvent } from './hubble.ts';

export interface ObserveRequest {
  observe: {
    /** The whitelist: an event matching any of them is sent (none: every event). */
    filters: FlowFilter[];
    /** Unix ms bounds of the history (and, for until, of the live events). */
    since?: number;
    until?: number;
    /** The last / first N matching events of the history. */
    last?: number;
    first?: number;
    /** Keep the subscription open for new events. */
    follow: boolean;
  };
}

export type RelayControl = { relay: 'caught_up' } | { relay: 'error'; message: string };

export type RelayLine = ObservedEvent | RelayControl;

export const isControl = (line: RelayLine): line is RelayControl => 'relay' in line;
