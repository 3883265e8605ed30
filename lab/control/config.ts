// What `mtless up` hands the control-plane process: a JSON file in the lab's
// state directory; the CA key sits beside it with mode 0600.
import { readFile } from 'node:fs/promises';
import { stateDir } from '../core/names.ts';
import type { IdentityInfo, Endpoint, NodeInfo } from './registry.ts';
import type { Policy } from '../topology/model.ts';

export interface ControlConfig {
  lab: string;
  /** Address on the management bridge. */
  host: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  adminSocket: string;
  svidTtlMs: number;
  /** The cluster as the topology describes it. */
  nodes: NodeInfo[];
  endpoints: Endpoint[];
  identities: IdentityInfo[];
  policies: Policy[];
}


export async function readControlConfig(path: string): Promise<ControlConfig> {
  return JSON.parse(await readFile(path, 'utf8')) as ControlConfig;
}
