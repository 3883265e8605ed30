// Node-to-node WireGuard (wireguard-go) for encryption.mode "wireguard".
export * from './keys.ts';
export * from './wireguard.ts';
