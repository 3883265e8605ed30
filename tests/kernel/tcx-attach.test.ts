// The datapath attached with tcx links (the default where the kernel has
// them) and with clsact (forced through MTLESS_TC_ATTACH, the fallback), on
// a real lab without agents: the programs on every pod veth are the node's
// pinned ones, they see traffic (a SYN that needs auth drops with 189, one
// that needs none passes), tcx links are pinned under the node's bpffs
// folder, detach empties the hooks and lets the dropped flow through, and
// down leaves no program, link or pin behind.
import { access } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod, type LabPlan } from '../../lab/core/plan.ts';
import { nodeLinkPins, nodeProgPins, tcxLinkPin } from '../../lab/core/names.ts';
import { attachEndpoints, detachEndpoint } from '../../lab/datapath/load.ts';
import { streamFlows, type EventStream } from '../../lab/datapath/events.ts';
import { DROP_POLICY_AUTH_REQUIRED, OBS_TO_ENDPOINT, VERDICT_DROPPED, VERDICT_FORWARDED, type FlowEvent } from '../../lab/abi/generated.ts';
import { PROGRAMS } from '../../lab/abi/layouts.ts';
import { run } from '../../lab/kernel/run.ts';
import { probeTcx, TC_ATTACH_ENV, tcAttachedPrograms, tcAttachMode, type TcAttachMode } from '../../lab/kernel/tc.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { bpfProgIds, echoSend, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

/** Waits for `probe` to find something; the deadline only ends a broken run (events cross a pipe). */
async function eventually<T>(probe: () => T | undefined, ms = 15_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const exists = (p: string) => access(p).then(() => true, () => false);

async function pinnedId(kind: 'prog' | 'link', pin: string): Promise<{ id: number; prog_id?: number }> {
  return JSON.parse((await run(['bpftool', '-j', kind, 'show', 'pinned', pin])).stdout) as { id: number; prog_id?: number };
}

async function linkIds(): Promise<number[]> {
  return (JSON.parse((await run(['bpftool', '-j', 'link', 'show'])).stdout || '[]') as { id: number }[]).map((l) => l.id);
}

/** The programs on a veth's two hooks: "via name" at ingress, then at egress. */
async function hooks(netns: string, lxc: string): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ['ingress', 'egress'] as const) for (const p of await tcAttachedPrograms(netns, lxc, dir)) out.push(`${p.via} ${p.name}`);
  return out;
}

async function withAttachMode<T>(mode: TcAttachMode | undefined, body: () => Promise<T>): Promise<T> {
  const before = process.env[TC_ATTACH_ENV];
  if (mode) process.env[TC_ATTACH_ENV] = mode;
  else delete process.env[TC_ATTACH_ENV];
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env[TC_ATTACH_ENV];
    else process.env[TC_ATTACH_ENV] = before;
  }
}

/** One lab of two-node-auth attached `expected`'s way, through every check. */
async function checkLab(t: Test, lab: string, expected: TcAttachMode): Promise<void> {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node-auth.yaml`);
  const labProgs: number[] = [];
  const labLinks: number[] = [];
  const streams: EventStream[] = [];
  try {
    const plan: LabPlan = await upWithDatapath(topo, { name: lab, agents: false });
    const ip = (pod: string) => findPod(plan, pod)!.ip;
    const n2 = plan.nodes.find((n) => n.name === 'n2')!;
    const server = findPod(plan, 'server')!;

    for (const n of plan.nodes) {
      const progs = Object.fromEntries(await Promise.all(
        [PROGRAMS.fromContainer, PROGRAMS.toContainer].map(async (p) => [p, (await pinnedId('prog', `${nodeProgPins(lab, n.name)}/${p}`)).id] as const),
      ));
      labProgs.push(...Object.values(progs));
      for (const pod of n.pods) {
        t.same(await hooks(n.netns, pod.lxc), [`${expected} ${PROGRAMS.fromContainer}`, `${expected} ${PROGRAMS.toContainer}`], `${n.name}/${pod.lxc}: one program per hook, ${expected}`);
        const ids = await Promise.all((['ingress', 'egress'] as const).map(async (d) => (await tcAttachedPrograms(n.netns, pod.lxc, d))[0]?.id));
        t.same(ids, [progs[PROGRAMS.fromContainer], progs[PROGRAMS.toContainer]], `${n.name}/${pod.lxc}: the node's pinned programs`);
        for (const d of ['ingress', 'egress'] as const) {
          const pin = tcxLinkPin(lab, n.name, pod.lxc, d);
          if (expected === 'tcx') {
            const link = await pinnedId('link', pin);
            t.equal(link.prog_id, progs[d === 'ingress' ? PROGRAMS.fromContainer : PROGRAMS.toContainer], `${pin}: a link to the ${d} program`);
            labLinks.push(link.id);
          } else t.notOk(await exists(pin), `${pin}: no link in clsact mode`);
        }
      }
      if (expected === 'clsact') t.notOk(await exists(nodeLinkPins(lab, n.name)), `${n.name}: no links folder in clsact mode`);
    }

    const flows: FlowEvent[] = [];
    streams.push(streamFlows(lab, 'n2', (f) => flows.push(f)));
    await Promise.all(streams.map((s) => s.ready));
    const echo = await startEchoServer(lab, 'server', 'tcp', 8080);
    try {
      // client -> server:8080 needs auth and no agent writes an entry: the SYN drops at n2.
      const blocked = await echoSend(lab, 'client', 'tcp', ip('server'), 8080, 'blocked', ['--timeout', '2500']);
      t.not(blocked.exitCode, 0, 'client -> server does not connect');
      const drop = await eventually(() => flows.find((f) => f.saddr === ip('client') && f.dport === 8080 && f.verdict === VERDICT_DROPPED));
      t.match(drop, { dropReason: DROP_POLICY_AUTH_REQUIRED, obsPoint: OBS_TO_ENDPOINT }, `the ${expected}-attached cil_to_container dropped the SYN with 189`);
      // local -> server:8080 needs no auth: the program forwards it and reports the new connection.
      const allowed = await echoSend(lab, 'local', 'tcp', ip('server'), 8080, 'allowed');
      t.equal(allowed.exitCode, 0, `local -> server connects${allowed.exitCode ? `: ${allowed.stderr}` : ''}`);
      t.ok(await eventually(() => flows.find((f) => f.saddr === ip('local') && f.dport === 8080 && f.verdict === VERDICT_FORWARDED)), 'and forwarded local -> server');

      // Detached, the hooks are empty and the same flow is no longer checked.
      await detachEndpoint(n2.netns, server.lxc);
      t.same(await hooks(n2.netns, server.lxc), [], 'detach empties both hooks');
      for (const d of ['ingress', 'egress'] as const) t.notOk(await exists(tcxLinkPin(lab, 'n2', server.lxc, d)), `no ${d} link pin after detach`);
      if (expected === 'tcx') {
        const left = new Set(await linkIds());
        t.same(labLinks.slice(-2).filter((id) => left.has(id)), [], "the server veth's links are gone (bpftool link show)");
      }
      const open = await echoSend(lab, 'client', 'tcp', ip('server'), 8080, 'unchecked');
      t.equal(open.exitCode, 0, `without programs client -> server connects${open.exitCode ? `: ${open.stderr}` : ''}`);

      // Attached again (twice: still one program per hook), the programs check it again.
      await attachEndpoints(n2.netns, [server.lxc], nodeProgPins(lab, 'n2'));
      await attachEndpoints(n2.netns, [server.lxc], nodeProgPins(lab, 'n2'));
      t.same(await hooks(n2.netns, server.lxc), [`${expected} ${PROGRAMS.fromContainer}`, `${expected} ${PROGRAMS.toContainer}`], 're-attached once per hook');
      if (expected === 'tcx') for (const d of ['ingress', 'egress'] as const) labLinks.push((await pinnedId('link', tcxLinkPin(lab, 'n2', server.lxc, d))).id);
      const dropsBefore = flows.filter((f) => f.saddr === ip('client') && f.dport === 8080 && f.verdict === VERDICT_DROPPED).length;
      const again = await echoSend(lab, 'client', 'tcp', ip('server'), 8080, 'blocked-again', ['--timeout', '2500']);
      t.not(again.exitCode, 0, 'blocked again once re-attached');
      t.ok(await eventually(() => (flows.filter((f) => f.saddr === ip('client') && f.dport === 8080 && f.verdict === VERDICT_DROPPED).length > dropsBefore ? true : undefined)), 'with a new drop event');
    } finally {
      await echo.stop();
    }
  } finally {
    await Promise.all(streams.map((s) => s.stop().catch(() => undefined)));
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), [], 'down leaves no namespace, pin folder, cgroup, state or process');
  const loaded = new Set(await bpfProgIds());
  t.same(labProgs.filter((id) => loaded.has(id)), [], 'no program of the lab is loaded once down returns');
  const links = new Set(await linkIds());
  t.same(labLinks.filter((id) => links.has(id)), [], 'no link of the lab is left');
}

// The trial attach itself needs root.
const probe = needsRoot ? undefined : await probeTcx();
const tcxSkip = needsRoot || (probe!.ok ? false : `this kernel makes no tcx links: ${probe!.why}`);

t.test('tcx where the kernel has it (the default)', { skip: tcxSkip }, async (t) => {
  await withAttachMode(undefined, async () => {
    t.same(await tcAttachMode(), { mode: 'tcx', why: probe!.why }, 'the probe picks tcx');
    await checkLab(t, 't-tcx', 'tcx');
  });
});

t.test('clsact when forced (the fallback), same behaviour', { skip: needsRoot }, async (t) => {
  await withAttachMode('clsact', async () => {
    t.same(await tcAttachMode(), { mode: 'clsact', why: `${TC_ATTACH_ENV}=clsact` });
    await checkLab(t, 't-tcx-cls', 'clsact');
  });
});

t.test('an unknown attach mode is refused', async (t) => {
  await withAttachMode('sideways' as TcAttachMode, async () => {
    await t.rejects(tcAttachMode(), /MTLESS_TC_ATTACH must be one of tcx, clsact, not "sideways"/);
  });
});
