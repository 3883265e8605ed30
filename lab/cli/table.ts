// Every verb of the command line: its argument line, its summary, and where
// its code is. Usage and help read only this table; running a verb loads
// only that verb's module (start-up stays fast).
import type { Command } from './command.ts';

export interface CommandEntry {
  args: string;
  summary: string;
  load: () => Promise<Command>;
}

export const COMMAND_TABLE: Record<string, CommandEntry> = {
  validate: {
    args: 'FILE… [--policies CNP.yaml]…',
    summary: 'check topology files, with CiliumNetworkPolicy files added; touches no kernel state (exit 2 when any is invalid)',
    load: () => import('./commands/validate.ts').then((m) => m.command),
  },
  export: {
    args: 'k8s FILE [--policies CNP.yaml]… [-o DIR]',
    summary: 'write Kubernetes manifests for the same experiment on a real cluster: Namespaces, ServiceAccounts, Pods (one cluster node per lab node), the policies as cilium.io/v2 documents, Helm values with mutual auth and SPIRE, a README of the checks (default DIR: <lab>-k8s)',
    load: () => import('./commands/export.ts').then((m) => m.command),
  },
  up: {
    args: 'FILE [--policies CNP.yaml]… [--name N] [--no-agents] [--svid-ttl S] [--gc-interval S]',
    summary: 'build a lab from a topology file',
    load: () => import('./commands/up.ts').then((m) => m.command),
  },
  down: {
    args: 'NAME | --all',
    summary: 'remove a lab and everything it created (no topology file needed)',
    load: () => import('./commands/down.ts').then((m) => m.command),
  },
  status: {
    args: '[NAME] [--json]',
    summary: 'nodes, pods, addresses and processes of one lab or all',
    load: () => import('./commands/status.ts').then((m) => m.command),
  },
  exec: {
    args: 'NAME/POD -- CMD…',
    summary: 'run a command inside a pod (or node) namespace',
    load: () => import('./commands/exec.ts').then((m) => m.command),
  },
  doctor: {
    args: '[--json]',
    summary: 'check the kernel features and tools the lab needs',
    load: () => import('./commands/doctor.ts').then((m) => m.command),
  },
  capture: {
    args: 'NAME [LINK…] [-w DIR|-] [--duration S] [--no-secrets] [--keylog FILE] [--wg-keylog FILE] [--filter EXPR] | NAME --list',
    summary: "capture links of a lab (pcapng, named interfaces, the lab's secrets embedded, drops commented); -w - streams to stdout for `| wireshark -k -i -`",
    load: () => import('../capture/cli.ts').then((m) => m.captureCommand),
  },
  wireshark: {
    args: 'FILE [WIRESHARK OPTION…]',
    summary: "open a capture in Wireshark with the lab's profile (-C mtless-lab, or the same decodes as options when it is not installed)",
    load: () => import('./commands/wireshark.ts').then((m) => m.command),
  },
  tshark: {
    args: 'FILE [TSHARK OPTION…]',
    summary: "read a capture with tshark and the lab's profile: the auth and HBONE ports as TLS, Cilium's VXLAN port as VXLAN",
    load: () => import('./commands/tshark.ts').then((m) => m.command),
  },
  'wireshark-profile': {
    args: '[--install | --uninstall | --export DIR|-]',
    summary: "the lab's Wireshark profile: install it for you (for the sudo user under sudo), or export it for another machine (- : a tar on stdout)",
    load: () => import('./commands/wireshark-profile.ts').then((m) => m.command),
  },
  observe: {
    args: 'NAME [-f | --seconds S] [--last N | --first N] [--since T] [--until T] [--verdict V] [--pod|--from-pod|--to-pod [NS/]POD] [--identity|--from-identity|--to-identity ID] [--port|--from-port|--to-port P] [--protocol P] [--ip|--from-ip|--to-ip IP] [--type drop|trace|policy-verdict|auth[:SUB]] [--drop-reason-desc R] [--traffic-direction D] [--node N] [-o compact|dict|json] [--print-node-name]',
    summary: "`hubble observe` for the lab: every node's drops and policy verdicts and the agents' auth events, merged by time by the lab's flow relay, with Hubble's filters, compact line and flow JSON; several at once",
    load: () => import('./commands/observe.ts').then((m) => m.command),
  },
  maps: {
    args: 'NAME NODE ipcache|nodes|endpoints|policy|auth|ct|metrics [-o json]',
    summary: 'decoded dump of a node map: ipcache, auth, policy, ct, nodes, endpoints, metrics',
    load: () => import('./commands/maps.ts').then((m) => m.command),
  },
  metrics: {
    args: 'NAME [NODE] [--prometheus | -o json]',
    summary: "the node agents' counters (signals handled, auth outcomes), scraped from their Prometheus endpoint (/metrics on the management address)",
    load: () => import('./commands/metrics.ts').then((m) => m.command),
  },
  auth: {
    args: 'NAME NODE set|del LOCAL_ID REMOTE_ID REMOTE_NODE_ID [--ttl S]',
    summary: 'write or delete an auth-map entry by hand (debugging, tests without agents)',
    load: () => import('./commands/auth.ts').then((m) => m.command),
  },
  logs: {
    args: 'NAME [NODE|cp] [--follow] [--raw]',
    summary: 'the JSON log lines of the agents and the control plane, merged by time (jq-ready); --follow keeps going',
    load: () => import('./commands/logs.ts').then((m) => m.command),
  },
  pod: {
    args: 'add|del NAME NODE POD [--labels k=v,…] [--ip IP] [--namespace NS] [--service-account SA]',
    summary: 'add or delete a pod on a running lab (the control plane allocates its identity)',
    load: () => import('./commands/pod.ts').then((m) => m.command),
  },
  restart: {
    args: 'NAME NODE|cp',
    summary: 'restart a node agent (it re-reads its maps) or the control plane (it keeps run-time pod changes)',
    load: () => import('./commands/restart.ts').then((m) => m.command),
  },
  partition: {
    args: 'NAME NODE',
    summary: 'cut a node off the control plane (its ipcache goes stale)',
    load: () => import('./commands/partition.ts').then((m) => m.command),
  },
  heal: {
    args: 'NAME NODE',
    summary: 'reconnect a node to the control plane (it resyncs)',
    load: () => import('./commands/heal.ts').then((m) => m.command),
  },
  delay: {
    args: 'NAME NODE MS',
    summary: 'delay the control plane updates a node receives',
    load: () => import('./commands/delay.ts').then((m) => m.command),
  },
  wireguard: {
    args: 'rotate NAME NODE [--timeout S]',
    summary: "new WireGuard key pair on a node, published through the control plane; waits until every reachable peer has it (old and new key fingerprints)",
    load: () => import('./commands/wireguard.ts').then((m) => m.command),
  },
  scenario: {
    args: 'list | run NAME… [--keep] [--json] [--junit FILE] [--name PREFIX] [--out DIR]',
    summary: 'list scenarios, or run them (exit 0 when every check holds, 1 otherwise); --junit writes a JUnit XML file (a testcase per check), --name PREFIX names the labs PREFIX-<scenario>, --out DIR takes the captures and report.html instead of captures/',
    load: () => import('./commands/scenario.ts').then((m) => m.command),
  },
  demo: {
    args: '[--only CLAIMS] [--step] [--keep] [--name PREFIX] [--out DIR]',
    summary: 'every claim C1–C10 in one run: the scenarios side by side (demo profile), a line per step with its time, then the claims table with each claim\'s evidence and the time from the first up to the last down; exit 0 only when every check holds; everything torn down, also on Ctrl-C. --only C5,C6 (claim ids, comma-separated) runs only what those claims need, --step pauses before each step and says what to look at (needs a terminal), --keep leaves the labs up; captures and report.html in captures/<run>/ (or --out DIR)',
    load: () => import('./commands/demo.ts').then((m) => m.command),
  },
  bench: {
    args: 'all|up|datapath|auth|sockmap|cli|modes [--runs N] [--json] [--name PREFIX] [--out DIR] [--cpu-prof DIR] [--only LIST] [--sizes NxP,…]',
    summary: 'benchmarks: all (each in turn, one file captures/bench/bench-all.json, --only up,auth… to pick), up (vs mininet and an ip -batch floor; --sizes 2x2,4x25 picks nodes × pods per node, default 2x2,4x25,10x50,10x200), datapath (programs vs none), auth (drop to entry), sockmap (on vs off), cli (start-up of mtless vs node -e 0), modes (the five C6 modes vs native without auth: RR, throughput, time to first byte); --name PREFIX prefixes its labs, --out DIR also writes the report there (bench-<what>.txt and .json), --cpu-prof DIR profiles the lab daemons (DIR/<role>-<node>.cpuprofile)',
    load: () => import('./bench-commands.ts').then((m) => m.BENCH_COMMANDS.bench!),
  },
  completion: {
    args: 'bash|zsh',
    summary: 'print a shell completion script (verbs and options from this table, lab, node and pod names from the running labs): mtless completion bash > /etc/bash_completion.d/mtless',
    load: () => import('./commands/completion.ts').then((m) => m.command),
  },
  fuzz: {
    args: 'datapath|overlay|strict [--cases N] [--seed S] [--from I] [--group N] [--explain N] [--no-shrink] [--json]',
    summary: 'differential fuzzing: random map states and packets through the BPF programs (BPF_PROG_RUN) against reference models; prints cases, mismatches (shrunk to a minimal input), seed and time (exit 1 on a mismatch)',
    load: () => import('./commands/fuzz.ts').then((m) => m.command),
  },
};
