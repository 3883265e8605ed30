// The sockmap scenario's TCP echo pair: app.c beside this file, built by
// `make -C bpf` into bpf/build/sockmap-app (what it prints, and how it is
// stepped with SIGUSR2, is described there). Started through spawnInPod
// (pod namespace + node cgroup).
import { builtProgram } from '../core/repo.ts';

/** argv that runs the app (for spawnInPod). */
export function appArgv(args: string[]): string[] {
  return [builtProgram('sockmap-app'), ...args];
}
