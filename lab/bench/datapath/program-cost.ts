// The programs alone: each of the four program runs of one request/response
// round trip timed by the kernel (BPF_PROG_RUN through `bpftool prog run`),
// without the tc hook, the stack or the other pod.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabPlan, PodPlan } from '../../core/plan.ts';
import { run } from '../../kernel/run.ts';
import { readIfindexes } from '../../datapath/load.ts';
import { progPin, type ProgramName } from '../../datapath/maps.ts';
import { ipv4Packet, skbContext } from '../../datapath/progrun.ts';
import { PROGRAMS } from '../../abi/layouts.ts';
import { TCP_F_ACK, TCP_F_PSH } from '../../abi/generated.ts';
import type { ProgramCost } from './report.ts';

/** Runs per BPF_PROG_RUN measurement (the kernel reports the average). */
const PROG_RUN_REPEAT = 100_000;

/**
 * The four program runs of one round trip to `server`'s `port`, each timed on
 * its own by the kernel over PROG_RUN_REPEAT runs: the request leaving the
 * client (n1 cil_from_container) and entering the server (n2
 * cil_to_container), then the reply leaving the server and entering the
 * client. The request runs first, so the replies find their conntrack
 * entries, as in the flow.
 */
export async function measureProgramCost(plan: LabPlan, client: PodPlan, server: PodPlan, port: number): Promise<ProgramCost[]> {
  const nodeOf = (p: PodPlan) => plan.nodes.find((n) => n.name === p.node)!;
  const sport = 40_000;
  const request = ipv4Packet({ src: client.ip, dst: server.ip, protocol: 'tcp', sport, dport: port, tcpFlags: TCP_F_ACK | TCP_F_PSH, payload: Buffer.alloc(14) });
  const reply = ipv4Packet({ src: server.ip, dst: client.ip, protocol: 'tcp', sport: port, dport: sport, tcpFlags: TCP_F_ACK | TCP_F_PSH, payload: Buffer.alloc(14) });
  const steps: { pod: PodPlan; program: ProgramName; packet: 'request' | 'reply'; bytes: Buffer }[] = [
    { pod: client, program: PROGRAMS.fromContainer, packet: 'request', bytes: request },
    { pod: server, program: PROGRAMS.toContainer, packet: 'request', bytes: request },
    { pod: server, program: PROGRAMS.fromContainer, packet: 'reply', bytes: reply },
    { pod: client, program: PROGRAMS.toContainer, packet: 'reply', bytes: reply },
  ];
  const dir = await mkdtemp(join(tmpdir(), 'mtlab-bench-dp-'));
  try {
    const out: ProgramCost[] = [];
    for (const [i, st] of steps.entries()) {
      const node = nodeOf(st.pod);
      const ifindex = (await readIfindexes(node.netns)).get(st.pod.lxc);
      if (ifindex === undefined) throw new Error(`no ${st.pod.lxc} on ${node.name}`);
      const dataIn = join(dir, `packet-${i}`);
      const ctxIn = join(dir, `ctx-${i}`);
      await writeFile(dataIn, st.bytes);
      await writeFile(ctxIn, skbContext({ ifindex }));
      const pin = progPin(plan.lab, node.name, st.program);
      // One run first: a new flow's request creates its conntrack entry (and a flow event) once, as in the real flow.
      await run(['bpftool', '-j', 'prog', 'run', 'pinned', pin, 'data_in', dataIn, 'ctx_in', ctxIn, 'repeat', '1'], { netns: node.netns });
      const r = await run(['bpftool', '-j', 'prog', 'run', 'pinned', pin, 'data_in', dataIn, 'ctx_in', ctxIn, 'repeat', String(PROG_RUN_REPEAT)], {
        netns: node.netns,
        timeout: 30_000,
      });
      const res = JSON.parse(r.stdout) as { retval: number; duration: number };
      out.push({ node: node.name, program: st.program, packet: st.packet, ns: res.duration, repeat: PROG_RUN_REPEAT, retval: res.retval });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
