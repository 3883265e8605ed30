// Tunnel mode: VXLAN with the source identity in the VNI (see tunnel.ts).
export * from './tunnel.ts';
export * from './encapsulate.ts';
