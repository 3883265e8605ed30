// CLI verbs of a running lab: observe, maps, auth, logs, pods, partitions.
import { readFile } from 'node:fs/promises';
import { readState, type LabState } from '../core/state.ts';
import { addPod, deletePod, partitionNode } from '../compose/pods.ts';
import { restartDaemon } from '../kernel/daemon.ts';
import { setDelay } from '../control/client.ts';
import { streamFlows } from '../datapath/events.ts';
import { formatFlow } from '../datapath/format.ts';
import { dumpNodeMap, readMetrics, ipcacheCidr, tunnelEndpointOf, nodeKeyIp } from '../datapath/maps.ts';
import { dumpAuth, writeAuthEntry, deleteAuthEntry } from '../datapath/auth.ts';
import { DROP_REASON_TEXT, AUTH_TYPE_SPIRE, DIR_INGRESS } from '../abi/generated.ts';
import type { Command } from './commands.ts';
import { UsageError } from './errors.ts';
import { daemonLogFile } from '../core/names.ts';

async function runningLab(lab: string | undefined, what: string): Promise<LabState> {
  if (!lab) throw new UsageError(`${what}: missing lab name`);
  const state = await readState(lab);
  if (!state) throw new Error(`no lab named "${lab}" (see \`lab status\`)`);
  return state;
}

function nodeOf(state: LabState, node: string | undefined, what: string): string {
  if (!node) throw new UsageError(`${what}: missing NODE`);
  if (!state.nodes.some((n) => n.name === node)) {
    throw new Error(`lab "${state.lab}" has no node "${node}" (valid: ${state.nodes.map((n) => n.name).join(', ')})`);
  }
  return node;
}

/** ip → "node/pod" (or "node" for node addresses) for readable flows. */
function resolver(state: LabState) {
  const names = new Map<string, string>();
  for (const p of state.pods) names.set(p.ip, `${p.node}/${p.name}`);
  for (const n of state.nodes) names.set(n.underlayIp, n.name);
  return (ip: string) => names.get(ip);
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : Buffer.isBuffer(x) ? x.toString('hex') : x), 2);

export const CLUSTER_COMMANDS: Record<string, Command> = {
  observe: {
    summary: 'flow verdicts of the datapath, Hubble-like (drops, new connections)',
    args: 'NAME [--node N] [--follow | --seconds S] [--json]',
    options: { node: { type: 'string' }, json: { type: 'boolean' }, follow: { type: 'boolean', short: 'f' }, seconds: { type: 'string' } },
    run: async ([lab], v) => {
      const state = await runningLab(lab, 'observe');
      const nodes = v.node ? [nodeOf(state, v.node as string, 'observe')] : state.nodes.map((n) => n.name);
      const resolve = resolver(state);
      // Perf events are a live stream with no history: observe shows what happens while it runs.
      const seconds = v.seconds === undefined ? 5 : Number(v.seconds);
      if (!(seconds > 0)) throw new UsageError('observe: --seconds must be a positive number');
      const streams = nodes.map((node) =>
        streamFlows(state.lab, node, (f) => console.log(v.json ? json({ node, ...f }) : formatFlow(f, { resolve }))),
      );
      await Promise.all(streams.map((s) => s.ready));
      process.stderr.write(`observing ${nodes.join(', ')} ${v.follow ? '(Ctrl-C to stop)' : `for ${seconds} s (--follow to keep going)`}\n`);
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
        if (!v.follow) setTimeout(r, seconds * 1000);
      });
      await Promise.all(streams.map((s) => s.stop()));
      return 0;
    },
  },

  maps: {
    summary: 'decoded dump of a node map: ipcache, auth, policy, ct, nodes, endpoints, metrics',
    args: 'NAME NODE MAP [--json]',
    options: { json: { type: 'boolean' } },
    run: async ([lab, nodeArg, map], v) => {
      const state = await runningLab(lab, 'maps');
      const node = nodeOf(state, nodeArg, 'maps');
      const resolve = resolver(state);
      const name = (ip: string) => (resolve(ip) ? `${ip} (${resolve(ip)})` : ip);
      let rows: unknown[];
      let lines: string[];
      switch (map) {
        case 'ipcache': {
          const r = await dumpNodeMap(state.lab, node, 'cilium_ipcache');
          rows = r;
          lines = r.map((e) => `${ipcacheCidr(e.key).padEnd(18)} identity ${String(e.value.secIdentity).padEnd(6)} tunnel ${tunnelEndpointOf(e.value) ?? '-'}`);
          break;
        }
        case 'nodes': {
          const r = await dumpNodeMap(state.lab, node, 'cilium_node_map');
          rows = r;
          lines = r.map((e) => `${nodeKeyIp(e.key).padEnd(15)} node id ${e.value.id}`);
          break;
        }
        case 'endpoints': {
          const r = await dumpNodeMap(state.lab, node, 'cilium_lxc');
          rows = r;
          lines = r.map((e) => `ifindex ${String(e.key.ifindex).padEnd(4)} ${name(e.value.ipv4).padEnd(28)} identity ${e.value.secIdentity} flags 0x${e.value.flags.toString(16)}`);
          break;
        }
        case 'policy': {
          const r = await dumpNodeMap(state.lab, node, 'cilium_policy');
          rows = r;
          lines = r.map((e) =>
            `ifindex ${e.key.epIfindex} ${e.key.direction === DIR_INGRESS ? 'ingress' : 'egress '} peer ${String(e.key.secLabel).padEnd(5)} ` +
            `port ${String(e.key.dport).padEnd(5)} proto ${String(e.key.protocol).padEnd(3)} ${e.value.flags & 1 ? 'DENY ' : 'allow'} auth_type ${e.value.authType} hits ${e.value.packets}`);
          break;
        }
        case 'auth': {
          const r = await dumpAuth(state.lab, node);
          rows = r;
          lines = r.map((e) =>
            `local ${e.key.localSecLabel} remote ${e.key.remoteSecLabel} node ${e.key.remoteNodeId} type ${e.key.authType}  expires ${e.expiration.toISOString()}${e.expiration.getTime() <= Date.now() ? ' (expired)' : ''}`);
          break;
        }
        case 'ct': {
          const r = await dumpNodeMap(state.lab, node, 'cilium_ct4');
          rows = r;
          lines = r.map((e) =>
            `${e.key.scope === DIR_INGRESS ? 'ingress' : 'egress '} ${name(e.key.saddr)}:${e.key.sport} -> ${name(e.key.daddr)}:${e.key.dport} proto ${e.key.protocol} packets ${e.value.packets} peer ${e.value.peerIdentity}`);
          break;
        }
        case 'metrics': {
          const r = await readMetrics(state.lab, node);
          rows = r;
          lines = r.map((e) => `${e.reason === 0 ? 'forwarded' : `${DROP_REASON_TEXT[e.reason] ?? 'drop'} (${e.reason})`} ${e.dir === DIR_INGRESS ? 'ingress' : 'egress'}: ${e.packets} packets, ${e.bytes} bytes`);
          break;
        }
        default:
          throw new UsageError(`maps: unknown map "${map ?? ''}" (valid: ipcache, nodes, endpoints, policy, auth, ct, metrics)`);
      }
      console.log(v.json ? json(rows) : lines.join('\n') || '(empty)');
      return 0;
    },
  },

  auth: {
    summary: 'write or delete an auth-map entry by hand (debugging, tests without agents)',
    args: 'NAME NODE set|del LOCAL_ID REMOTE_ID REMOTE_NODE_ID [--ttl S]',
    options: { ttl: { type: 'string' } },
    run: async ([lab, nodeArg, op, local, remote, remoteNode], v) => {
      const state = await runningLab(lab, 'auth');
      const node = nodeOf(state, nodeArg, 'auth');
      const nums = [local, remote, remoteNode].map(Number);
      if (nums.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError('auth: LOCAL_ID REMOTE_ID REMOTE_NODE_ID must be non-negative integers');
      const key = { localSecLabel: nums[0]!, remoteSecLabel: nums[1]!, remoteNodeId: nums[2]!, authType: AUTH_TYPE_SPIRE };
      if (op === 'set') {
        const ttl = v.ttl === undefined ? 3600 : Number(v.ttl);
        if (!(ttl > 0)) throw new UsageError('auth: --ttl must be a positive number of seconds');
        const expiration = new Date(Date.now() + ttl * 1000);
        await writeAuthEntry(state.lab, node, key, expiration);
        console.log(`auth entry ${nums.join(':')} on ${node} until ${expiration.toISOString()}`);
      } else if (op === 'del') {
        const found = await deleteAuthEntry(state.lab, node, key);
        console.log(found ? `deleted auth entry ${nums.join(':')} on ${node}` : `no auth entry ${nums.join(':')} on ${node}`);
      } else throw new UsageError('auth: expected set or del');
      return 0;
    },
  },

  logs: {
    summary: 'structured logs of the agents and the control plane',
    args: 'NAME [NODE|cp]',
    run: async ([lab, who]) => {
      const state = await runningLab(lab, 'logs');
      const files = state.processes
        .filter((p) => !who || p.node === who)
        .map((p) => p.logFile ?? daemonLogFile(state.lab, p.node, p.role));
      if (files.length === 0) throw new Error(who ? `no agent or control plane "${who}" in lab "${state.lab}"` : `lab "${state.lab}" runs no agents (up --no-agents)`);
      for (const f of files) process.stdout.write(await readFile(f, 'utf8').catch(() => ''));
      return 0;
    },
  },

  pod: {
    summary: 'add or delete a pod on a running lab (the control plane allocates its identity)',
    args: 'add|del NAME NODE POD [--labels k=v,…] [--ip IP] [--namespace NS] [--service-account SA]',
    options: { labels: { type: 'string' }, ip: { type: 'string' }, namespace: { type: 'string' }, 'service-account': { type: 'string' } },
    run: async ([op, lab, node, pod], v) => {
      if (!lab || !node || !pod) throw new UsageError('pod: expected add|del NAME NODE POD');
      if (op === 'add') {
        const labels: Record<string, string> = {};
        for (const kv of String(v.labels ?? '').split(',').filter(Boolean)) {
          const [k, val] = kv.split('=');
          if (!k || val === undefined) throw new UsageError(`pod: bad label "${kv}", expected key=value`);
          labels[k] = val;
        }
        if (Object.keys(labels).length === 0) throw new UsageError('pod add: --labels is required (e.g. --labels app=web)');
        const r = await addPod({
          lab, node, pod, labels, ip: v.ip as string | undefined,
          namespace: v.namespace as string | undefined, serviceAccount: v['service-account'] as string | undefined,
        });
        console.log(`pod ${pod} on ${node}: ${r.ip}, identity ${r.identity}`);
        if (!r.synced) console.log(`warning: the agent of ${node} has not synced the endpoint yet (is ${node} partitioned?); its packets are dropped until it does`);
      } else if (op === 'del') {
        await deletePod(lab, pod, node);
        console.log(`pod ${pod} deleted`);
      } else throw new UsageError('pod: expected add or del');
      return 0;
    },
  },

  restart: {
    summary: 'restart a node agent (it re-reads its maps) or the control plane (it keeps run-time pod changes)',
    args: 'NAME NODE|cp',
    run: async ([lab, who]) => {
      const state = await runningLab(lab, 'restart');
      if (!who) throw new UsageError('restart: missing NODE or cp');
      const p = await restartDaemon(state, who);
      console.log(`${p.role} ${who} restarted (pid ${p.pid})`);
      return 0;
    },
  },

  partition: {
    summary: 'cut a node off the control plane (its ipcache goes stale)',
    args: 'NAME NODE',
    run: async ([lab, node]) => {
      const state = await runningLab(lab, 'partition');
      await partitionNode(state.lab, nodeOf(state, node, 'partition'), true);
      console.log(`node ${node} is cut off the control plane`);
      return 0;
    },
  },

  heal: {
    summary: 'reconnect a node to the control plane (it resyncs)',
    args: 'NAME NODE',
    run: async ([lab, node]) => {
      const state = await runningLab(lab, 'heal');
      await partitionNode(state.lab, nodeOf(state, node, 'heal'), false);
      console.log(`node ${node} is reconnected`);
      return 0;
    },
  },

  delay: {
    summary: 'delay the control plane updates a node receives',
    args: 'NAME NODE MS',
    run: async ([lab, node, ms]) => {
      const state = await runningLab(lab, 'delay');
      const n = Number(ms);
      if (!Number.isInteger(n) || n < 0) throw new UsageError('delay: MS must be a non-negative integer');
      await setDelay(state.lab, nodeOf(state, node, 'delay'), n);
      console.log(`node ${node} sees control plane updates ${n} ms late`);
      return 0;
    },
  },
};
