// bpf/build/netns-setup: the kernel build of `up` (namespaces, bridges,
// veths, addresses, routes, neighbours, each node's forwarding) from one
// process per step that enters each namespace in turn, instead of one `ip`
// (and one nsenter + sysctl) process per namespace. It reads the same lines
// as `ip -batch` (lab/core/batches.ts), each namespace's after `ns NAME`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../core/repo.ts';
import { run } from './run.ts';
import type { CommandShell } from './shell.ts';

export const NETNS_SETUP_HELPER = join(REPO_ROOT, 'bpf', 'build', 'netns-setup');

/** `MTLAB_NETNS_SETUP=0`: `up` builds with `ip` even where the helper is built (tests/kernel/netns-setup.test.ts compares the two). */
export const NETNS_SETUP_ENV = 'MTLAB_NETNS_SETUP';

/** Whether the helper is built (`make -C bpf`) and not turned off; without it `up` runs `ip` per namespace. */
export const netnsSetupAvailable = () => process.env[NETNS_SETUP_ENV] !== '0' && existsSync(NETNS_SETUP_HELPER);

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
