// What the lab needs from the host, checked before anything is created, with
// the way to get each missing piece.
import { accessSync, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { run } from './run.ts';

export interface Tool {
  name: string;
  /** argv that prints the version. */
  version: string[];
  debianPackage: string;
  /** Needed by `up` (the others only by some scenarios, captures or benchmarks). */
  requiredForUp: boolean;
  purpose: string;
}

export const TOOLS: Tool[] = [
  { name: 'ip', version: ['ip', '-V'], debianPackage: 'iproute2', requiredForUp: true, purpose: 'namespaces, veths, routes' },
  { name: 'tc', version: ['tc', '-V'], debianPackage: 'iproute2', requiredForUp: true, purpose: 'clsact + cls_bpf attach' },
  { name: 'nsenter', version: ['nsenter', '--version'], debianPackage: 'util-linux', requiredForUp: true, purpose: 'enter namespaces keeping /sys/fs/bpf' },
  { name: 'setpriv', version: ['setpriv', '--version'], debianPackage: 'util-linux', requiredForUp: true, purpose: 'helpers die with the process that started them' },
  { name: 'sysctl', version: ['sysctl', '--version'], debianPackage: 'procps', requiredForUp: true, purpose: 'forwarding in node namespaces' },
  { name: 'bpftool', version: ['bpftool', 'version'], debianPackage: 'bpftool', requiredForUp: true, purpose: 'load programs, map I/O, events' },
  { name: 'clang', version: ['clang', '--version'], debianPackage: 'clang', requiredForUp: false, purpose: 'build bpf/ (setup)' },
  { name: 'wireguard-go', version: ['wireguard-go', '--version'], debianPackage: 'wireguard-go', requiredForUp: false, purpose: 'userspace WireGuard (no kernel module here)' },
  { name: 'wg', version: ['wg', '--version'], debianPackage: 'wireguard-tools', requiredForUp: false, purpose: 'configure WireGuard' },
  { name: 'tcpdump', version: ['tcpdump', '--version'], debianPackage: 'tcpdump', requiredForUp: false, purpose: 'captures' },
  { name: 'dumpcap', version: ['dumpcap', '--version'], debianPackage: 'wireshark-common', requiredForUp: false, purpose: 'pcapng captures' },
  { name: 'tshark', version: ['tshark', '--version'], debianPackage: 'tshark', requiredForUp: false, purpose: 'packet assertions' },
  { name: 'sharkd', version: ['sharkd', '-v'], debianPackage: 'wireshark-common', requiredForUp: false, purpose: 'frame counts without a tshark start each (tshark answers without it)' },
  { name: 'editcap', version: ['editcap', '--version'], debianPackage: 'wireshark-common', requiredForUp: false, purpose: 'embed secrets, comments' },
  { name: 'mergecap', version: ['mergecap', '--version'], debianPackage: 'wireshark-common', requiredForUp: false, purpose: 'merge captures' },
  { name: 'iperf3', version: ['iperf3', '--version'], debianPackage: 'iperf3', requiredForUp: false, purpose: 'throughput benchmarks' },
  { name: 'sockperf', version: ['sockperf', '--version'], debianPackage: 'sockperf', requiredForUp: false, purpose: 'latency benchmarks' },
  { name: 'nft', version: ['nft', '--version'], debianPackage: 'nftables', requiredForUp: false, purpose: 'redirects (per-connection mTLS)' },
  { name: 'openssl', version: ['openssl', 'version'], debianPackage: 'openssl', requiredForUp: false, purpose: 'independent TLS peer in tests' },
  { name: 'mn', version: ['mn', '--version'], debianPackage: 'mininet', requiredForUp: false, purpose: 'bring-up benchmark baseline' },
  { name: 'brctl', version: ['brctl', '--version'], debianPackage: 'bridge-utils', requiredForUp: false, purpose: "mininet's Linux bridges" },
  { name: 'socat', version: ['socat', '-V'], debianPackage: 'socat', requiredForUp: false, purpose: 'light clients and servers in the auth benchmark' },
  { name: 'xargs', version: ['xargs', '--version'], debianPackage: 'findutils', requiredForUp: true, purpose: 'runs the per-pod ip batches in parallel' },
];

export class PreflightError extends Error {}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export async function toolPath(name: string): Promise<string | undefined> {
  // Synchronous: a few µs per directory, where each awaited access() was a
  // round trip through libuv's thread pool (`up`'s preflight took 5–8 ms).
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Throws one error naming everything that is missing. */
export async function checkPreflight(): Promise<void> {
  const problems: string[] = [];
  if (!isRoot()) problems.push('not root: the lab creates namespaces and loads BPF programs; run it as root (sudo)');
  const missing = [];
  for (const t of TOOLS.filter((t) => t.requiredForUp)) if (!(await toolPath(t.name))) missing.push(t);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => t.debianPackage))].join(' ');
    problems.push(
      `missing tools: ${missing.map((t) => t.name).join(', ')}; install with: apt-get install --no-install-recommends ${pkgs} (or run scripts/setup)`,
    );
  }
  if (problems.length > 0) throw new PreflightError(problems.join('\n'));
  await ensureBpffs();
}

/** bpffs is not mounted on a fresh machine. */
export async function ensureBpffs(): Promise<void> {
  // mountinfo field 5 is the mount point: no process needed to check.
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  if (!mounts.split('\n').some((l) => l.split(' ')[4] === '/sys/fs/bpf')) await run(['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}
