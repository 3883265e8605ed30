// Hubble-like observability of a lab: the flow relay (one per lab, reading
// every node's cilium_events and the agents' auth events), Hubble's flow
// JSON and printer, and `hubble observe`'s filters.
export * from './hubble.ts';
export * from './filter.ts';
export * from './printer.ts';
export * from './client.ts';
export * from './daemon.ts';
export { Directory, snapshotFromTopology } from './directory.ts';
