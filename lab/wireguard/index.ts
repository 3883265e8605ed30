// Node-to-node WireGuard (wireguard-go) for encryption.mode "wireguard".
export * from './keys.ts';
export * from './node-key.ts';
export * from './peers.ts';
export * from './wireguard.ts';
