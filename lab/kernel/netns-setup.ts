// bpf/build/netns-setup: the per-namespace part of `up` (each node's
// forwarding sysctl, each pod's addresses, neighbour and route) from one
// process that enters each namespace in turn, instead of one `ip` (and one
// nsenter + sysctl) process per namespace. Its lines come from
// lab/core/batches.ts (netnsSetupLines).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../core/repo.ts';
import { run } from './run.ts';
import type { CommandShell } from './shell.ts';

export const NETNS_SETUP_HELPER = join(REPO_ROOT, 'bpf', 'build', 'netns-setup');

/** Whether the helper is built (`make -C bpf`); without it `up` runs `ip` per pod. */
export const netnsSetupAvailable = () => existsSync(NETNS_SETUP_HELPER);

/**
 * Runs the lines; the helper stops at the first failing one and says which
 * (a CommandError with its stderr). `shell`: started from `up`'s command
 * shell rather than from this process.
 */
export async function netnsSetup(lines: string[], shell?: CommandShell): Promise<void> {
  if (lines.length === 0) return;
  const input = lines.join('\n') + '\n';
  if (shell) await shell.run([{ argv: [NETNS_SETUP_HELPER], input }]);
  else await run([NETNS_SETUP_HELPER], { input, timeout: 120_000 });
}
