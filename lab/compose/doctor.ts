// `mtless doctor`: each kernel feature and tool the lab needs, yes or no, and why.
// Kernel features are tried for real in a throwaway namespace where possible.
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../core/repo.ts';
import { run, CommandError } from '../kernel/run.ts';
import { NETNS_PREFIX } from '../core/names.ts';
import { VXLAN_PORT } from '../abi/generated.ts';
import { isRoot, TOOLS, toolPath } from '../kernel/preflight.ts';
import { tcAttachMode } from '../kernel/tc.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** Missing but not needed by the lab's core (e.g. IPsec, kernel WireGuard). */
  optional?: boolean;
}

async function tryRun(argv: string[], netns?: string): Promise<{ ok: boolean; why: string }> {
  try {
    await run(argv, { netns, timeout: 10_000 });
    return { ok: true, why: '' };
  } catch (e) {
    return { ok: false, why: e instanceof CommandError ? (e.result.stderr.trim().split('\n')[0] ?? e.message) : (e as Error).message };
  }
}

export async function kernelChecks(): Promise<Check[]> {
  const checks: Check[] = [];
  const root = isRoot();
  checks.push({ name: 'root', ok: root, detail: root ? 'running as root' : 'not root: every kernel check below needs root (sudo lab doctor)' });
  // The BPF objects, helpers and pod apps: `make -q` says whether any is missing or older than its source.
  const built = await run(['make', '-q', '-C', join(REPO_ROOT, 'bpf')], { okCodes: 'any' }).then((r) => r.exitCode === 0, () => false);
  checks.push({
    name: 'C build (bpf/build)', ok: built,
    detail: built ? 'BPF objects, helpers and pod apps built and current' : `missing or older than its sources: run \`make -C ${join(REPO_ROOT, 'bpf')}\` (needs make, clang, cc, libbpf-dev)`,
  });
  if (!root) return checks;

  let probe: Record<string, Record<string, unknown>> = {};
  if (await toolPath('bpftool')) {
    try {
      probe = JSON.parse((await run(['bpftool', '-j', 'feature', 'probe', 'kernel'])).stdout);
    } catch {
      /* reported below as "unknown" */
    }
  }
  const has = (section: string, key: string) => probe[section]?.[key] === true;
  const bpfSyscall = has('syscall_config', 'have_bpf_syscall');
  checks.push({ name: 'bpf syscall', ok: bpfSyscall, detail: bpfSyscall ? 'bpf(2) available' : 'bpf(2) unavailable or bpftool missing (apt-get install bpftool)' });
  for (const [name, section, key] of [
    ['BPF tc programs (sched_cls)', 'program_types', 'have_sched_cls_prog_type'],
    ['BPF sock_ops programs', 'program_types', 'have_sock_ops_prog_type'],
    ['BPF sk_msg programs', 'program_types', 'have_sk_msg_prog_type'],
    ['LPM trie maps (ipcache)', 'map_types', 'have_lpm_trie_map_type'],
    ['LRU hash maps (conntrack)', 'map_types', 'have_lru_hash_map_type'],
    ['perf event arrays (signals)', 'map_types', 'have_perf_event_array_map_type'],
    ['sockhash maps (sockmap)', 'map_types', 'have_sockhash_map_type'],
  ] as const) {
    checks.push({ name, ok: has(section, key), detail: has(section, key) ? 'probed by bpftool' : 'not reported by `bpftool feature probe kernel`' });
  }

  const btf = await exists('/sys/kernel/btf/vmlinux');
  checks.push({ name: 'BTF', ok: btf, detail: btf ? '/sys/kernel/btf/vmlinux present' : 'kernel built without CONFIG_DEBUG_INFO_BTF' });
  const tun = await exists('/dev/net/tun');
  checks.push({ name: 'TUN', ok: tun, detail: tun ? '/dev/net/tun present (wireguard-go)' : '/dev/net/tun missing: wireguard-go cannot run' });
  let cg = false;
  try {
    cg = (await run(['stat', '-f', '-c', '%T', '/sys/fs/cgroup/unified'])).stdout.trim() === 'cgroup2fs';
  } catch {
    /* missing */
  }
  if (!cg) {
    try {
      cg = (await run(['stat', '-f', '-c', '%T', '/sys/fs/cgroup'])).stdout.trim() === 'cgroup2fs';
    } catch {
      /* missing */
    }
  }
  checks.push({ name: 'cgroup v2', ok: cg, detail: cg ? 'cgroup2 mounted (sock_ops attach point)' : 'no cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup' });

  // How the lab attaches its tc programs (lab/kernel/tc.ts probes tcx for real).
  const attach = await tcAttachMode().then(
    (c) => ({ ok: true, detail: c.mode === 'tcx' ? `tcx links: ${c.why}` : `clsact + cls_bpf: ${c.why}` }),
    (e: Error) => ({ ok: false, detail: e.message }),
  );
  checks.push({ name: 'tc attach mode', ...attach });

  // Real attempts in a throwaway namespace, always deleted.
  const ns = `${NETNS_PREFIX}.doctor-${process.pid}`;
  await run(['ip', 'netns', 'add', ns]);
  try {
    const veth = await tryRun(['ip', 'link', 'add', 'dv0', 'type', 'veth', 'peer', 'name', 'dv1'], ns);
    checks.push({ name: 'veth', ok: veth.ok, detail: veth.ok ? 'created a veth pair' : veth.why });
    const clsact = veth.ok ? await tryRun(['tc', 'qdisc', 'add', 'dev', 'dv0', 'clsact'], ns) : { ok: false, why: 'needs veth' };
    checks.push({ name: 'clsact qdisc', ok: clsact.ok, detail: clsact.ok ? 'added clsact to a veth' : clsact.why });
    const vxlan = await tryRun(['ip', 'link', 'add', 'dvx', 'type', 'vxlan', 'external', 'dstport', String(VXLAN_PORT)], ns);
    checks.push({ name: 'VXLAN (tunnel mode)', ok: vxlan.ok, detail: vxlan.ok ? 'created a collect-metadata VXLAN device' : vxlan.why });
    const bridge = await tryRun(['ip', 'link', 'add', 'dbr', 'type', 'bridge'], ns);
    checks.push({ name: 'bridge', ok: bridge.ok, detail: bridge.ok ? 'created a bridge' : bridge.why });
    const wg = await tryRun(['ip', 'link', 'add', 'dwg', 'type', 'wireguard'], ns);
    checks.push({
      name: 'kernel WireGuard', ok: wg.ok, optional: true,
      detail: wg.ok ? 'available (the lab still uses wireguard-go)' : `missing (${wg.why}); the lab uses wireguard-go instead`,
    });
    const esp = await tryRun(
      ['ip', 'xfrm', 'state', 'add', 'src', '10.0.0.1', 'dst', '10.0.0.2', 'proto', 'esp', 'spi', '0x1', 'mode', 'tunnel',
        'aead', 'rfc4106(gcm(aes))', '0x' + '11'.repeat(20), '128'],
      ns,
    );
    checks.push({
      name: 'ESP/IPsec', ok: esp.ok, optional: true,
      detail: esp.ok ? 'xfrm ESP state accepted' : `missing (${esp.why}): encryption mode "ipsec" is unavailable on this kernel`,
    });
  } finally {
    await run(['ip', 'netns', 'delete', ns], { okCodes: [1] });
  }
  return checks;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

export interface ToolCheck {
  name: string;
  ok: boolean;
  version?: string;
  requiredForUp: boolean;
  purpose: string;
  hint: string;
}

export async function toolChecks(): Promise<ToolCheck[]> {
  return Promise.all(
    TOOLS.map(async (t): Promise<ToolCheck> => {
      const hint = `apt-get install --no-install-recommends ${t.debianPackage}`;
      const path = await toolPath(t.name);
      if (!path) return { name: t.name, ok: false, requiredForUp: t.requiredForUp, purpose: t.purpose, hint };
      let version = 'installed';
      try {
        await access(path);
        const r = await run(t.version, { okCodes: [1, 2], timeout: 10_000 });
        version = firstVersionLine(r.stdout + '\n' + r.stderr);
      } catch {
        /* keep "installed" */
      }
      return { name: t.name, ok: true, version, requiredForUp: t.requiredForUp, purpose: t.purpose, hint };
    }),
  );
}

function firstVersionLine(text: string): string {
  const line = text.split('\n').map((l) => l.trim()).find((l) => /\d+\.\d+/.test(l)) ?? text.trim().split('\n')[0] ?? '';
  return line.length > 50 ? line.slice(0, 49) + '…' : line;
}
