// The CLI's side of the control plane's admin socket (plain HTTP over a unix
// socket in the lab's state directory).
import { request } from 'node:http';

import type { ClusterSnapshot, Endpoint } from './registry.ts';
import { CONTROL_PLANE } from '../core/daemons.ts';
import { controlSocket } from '../core/names.ts';
import { readState } from '../core/state.ts';

function call<T>(lab: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: controlSocket(lab), method, path, headers: { 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const json = JSON.parse(text || '{}');
        if (res.statusCode === 200) resolve(json as T);
        else reject(new Error(`control plane: ${json.error ?? `HTTP ${res.statusCode}`}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('control plane did not answer within 5 s')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT' && e.code !== 'ECONNREFUSED') return reject(e);
      // A crash leaves the socket (refused), a stop removes it (ENOENT): the state says whether the lab has a control plane at all.
      void readState(lab).then((state) => state, () => undefined).then((state) => reject(
        state?.processes.some((p) => p.role === CONTROL_PLANE.role) || e.code === 'ECONNREFUSED'
          ? new Error(`the control plane of lab "${lab}" is not running (crashed or stopped): see \`mtless logs ${lab} cp\`, then \`mtless restart ${lab} cp\``)
          : new Error(`lab "${lab}" has no control plane (it was brought up with --no-agents)`)));
    });
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export const controlState = (lab: string) =>
  call<{ snapshot: ClusterSnapshot; delays: Record<string, number>; watchers: string[] }>(lab, 'GET', '/v1/state');
export const registerPod = (lab: string, ep: Omit<Endpoint, 'identity'>) => call<Endpoint>(lab, 'POST', '/v1/pods', ep);
export const unregisterPod = (lab: string, pod: string) => call<Endpoint>(lab, 'DELETE', `/v1/pods/${encodeURIComponent(pod)}`);
export const setDelay = (lab: string, node: string, ms: number) => call(lab, 'POST', '/v1/delay', { node, ms });
