// Whether a network namespace can be entered yet. `ip netns add` creates the
// file under /run/netns first and bind-mounts the namespace on it after, so
// in between the file exists but nsenter on it fails with EINVAL
// ("reassociate to namespace 'ns/net' failed: Invalid argument"). A mounted
// namespace file lives on nsfs, another device than its folder's tmpfs.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { netnsPath } from '../core/names.ts';

export function netnsMounted(netns: string): boolean {
  const file = netnsPath(netns);
  try {
    return statSync(file).dev !== statSync(dirname(file)).dev;
  } catch {
    return false;
  }
}
