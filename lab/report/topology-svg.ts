// The topology diagram of a run: the control plane on the management
// network, each node with its agent and devices, its pods (labels,
// identity, IP) joined by their lxc veths where the tc programs attach, and
// the underlay joining the nodes. Drawn from a run record. Pure.
import type { RecordedNode, RecordedPod, RunRecord } from '../scenarios/record.ts';
import { AUTH_PORT, VXLAN_PORT, WG_PORT } from '../abi/generated.ts';
import { clip, el, svg, text, title } from './svg.ts';

export type TopologyInput = Pick<RunRecord, 'lab' | 'nodes' | 'pods' | 'underlayCidr' | 'mgmtCidr' | 'controlIp' | 'routing' | 'encryption' | 'sockmap'>;

const POD_W = 150;
const POD_H = 74;
const POD_GAP = 12;
const NODE_PAD = 14;
const NODE_GAP = 40;
const TOP = 12;

const labelText = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');

function podBox(p: RecordedPod, x: number, y: number): string {
  const dashed = p.runtime !== undefined;
  return el('g', { class: 'pod', 'data-pod': p.name, 'data-identity': p.identity },
    title(`pod ${p.name} on ${p.node}: ${p.ip}, identity ${p.identity ?? '?'}, labels ${labelText(p.labels) || 'none'}${p.runtime ? ` (${p.runtime} during the run)` : ''}`),
    el('rect', { x, y, width: POD_W, height: POD_H, rx: 6, fill: p.runtime === 'deleted' ? '#f4f4f4' : '#eef5ff', stroke: '#3b6db3', 'stroke-dasharray': dashed ? '4 3' : undefined }),
    text(x + 8, y + 16, clip(`${p.name}${p.runtime ? ` (${p.runtime})` : ''}`, 22), { class: 'b' }),
    text(x + 8, y + 31, `${p.ip}`, { class: 's' }),
    text(x + 8, y + 45, `identity ${p.identity ?? '?'}`, { class: 's' }),
    text(x + 8, y + 59, clip(labelText(p.labels), 24), { class: 's' }),
    p.serviceAccount && p.serviceAccount !== 'default' ? text(x + 8, y + 71, clip(`sa ${p.serviceAccount}`, 24), { class: 's' }) : '');
}

export interface TopologyLayout {
  width: number;
  height: number;
  nodes: { node: RecordedNode; x: number; width: number; pods: { pod: RecordedPod; x: number }[] }[];
}

export function layoutTopology(t: TopologyInput): TopologyLayout {
  let x = 20;
  const nodes = t.nodes.map((node) => {
    const pods = t.pods.filter((p) => p.node === node.name);
    const width = Math.max(250, NODE_PAD * 2 + pods.length * POD_W + Math.max(0, pods.length - 1) * POD_GAP);
    const placed = { node, x, width, pods: pods.map((pod, i) => ({ pod, x: x + NODE_PAD + i * (POD_W + POD_GAP) })) };
    x += width + NODE_GAP;
    return placed;
  });
  return { width: Math.max(600, x - NODE_GAP + 20), height: 430, nodes };
}

export function renderTopology(t: TopologyInput): string {
  const layout = layoutTopology(t);
  const mgmtY = TOP + 62;
  const nodeY = mgmtY + 28;
  const podY = nodeY + 196;
  const nodeH = podY + POD_H + NODE_PAD - nodeY;
  const underlayY = nodeY + nodeH + 30;
  const height = underlayY + 30;
  const cpX = layout.width / 2 - 130;
  const parts: string[] = [];
  parts.push(el('g', { class: 'control-plane', 'data-node': 'cp' },
    title(`control plane: identities from labels, endpoints, the SPIFFE CA; reaches every node over the management network (${t.mgmtCidr})`),
    el('rect', { x: cpX, y: TOP, width: 260, height: 44, rx: 6, fill: '#f6f0ff', stroke: '#7a55b5' }),
    text(cpX + 10, TOP + 18, 'control plane · SPIFFE CA', { class: 'b' }),
    text(cpX + 10, TOP + 35, `${t.controlIp} · identities, endpoints, SVIDs`, { class: 's' })));
  parts.push(el('g', { class: 'net', 'data-net': 'mgmt' },
    el('line', { x1: 10, y1: mgmtY, x2: layout.width - 10, y2: mgmtY, stroke: '#7a55b5', 'stroke-width': 3 }),
    el('line', { x1: layout.width / 2, y1: TOP + 44, x2: layout.width / 2, y2: mgmtY, stroke: '#7a55b5', 'stroke-width': 1.5 }),
    text(14, mgmtY - 6, `management network ${t.mgmtCidr} (bridge mgmt)`, { class: 's', fill: '#7a55b5' })));
  parts.push(el('g', { class: 'net', 'data-net': 'underlay' },
    el('line', { x1: 10, y1: underlayY, x2: layout.width - 10, y2: underlayY, stroke: '#2a7f62', 'stroke-width': 4 }),
    text(14, underlayY + 18, `underlay ${t.underlayCidr} (fabric bridge "underlay")${t.routing === 'tunnel' ? `: VXLAN UDP ${VXLAN_PORT}` : ': native routing'}${t.encryption.mode === 'wireguard' ? `, WireGuard UDP ${WG_PORT}${t.encryption.strict ? ' (strict)' : ''}` : ''}`, { class: 's', fill: '#2a7f62' })));
  for (const n of layout.nodes) {
    const nx = n.x;
    const node = n.node;
    const inner: string[] = [
      title(`node ${node.name} (remote node id ${node.id}): underlay ${node.underlayIp}, management ${node.mgmtIp}, pods ${node.podCidr}`),
      el('rect', { x: nx, y: nodeY, width: n.width, height: nodeH, rx: 8, fill: '#fafafa', stroke: '#555' }),
      text(nx + 10, nodeY + 18, `node ${node.name} · id ${node.id}`, { class: 'b' }),
      text(nx + 10, nodeY + 34, `eth0 ${node.underlayIp} · mgmt0 ${node.mgmtIp}`, { class: 's' }),
      text(nx + 10, nodeY + 48, `pods ${node.podCidr}`, { class: 's' }),
      // The management and underlay attachments.
      el('line', { x1: nx + n.width - 30, y1: mgmtY, x2: nx + n.width - 30, y2: nodeY, stroke: '#7a55b5', 'stroke-width': 1.5 }),
      el('line', { x1: nx + 30, y1: nodeY + nodeH, x2: nx + 30, y2: underlayY, stroke: '#2a7f62', 'stroke-width': 2 }),
      text(nx + 36, nodeY + nodeH + 16, 'eth0', { class: 's' }),
    ];
    // The agent: signals in, handshakes on AUTH_PORT, auth-map writes.
    inner.push(el('g', { class: 'agent', 'data-agent': node.name },
      title(`agent on ${node.name}: reads drop signals, handshakes with peer agents on TCP ${AUTH_PORT} (TLS 1.3, SPIFFE SVIDs), writes the auth map`),
      el('rect', { x: nx + 10, y: nodeY + 56, width: 150, height: 34, rx: 5, fill: '#fff7e6', stroke: '#c77700' }),
      text(nx + 18, nodeY + 71, 'agent', { class: 'b' }),
      text(nx + 18, nodeY + 85, `TCP ${AUTH_PORT} · auth map`, { class: 's' })));
    node.devices.forEach((d, i) => {
      const dx = nx + 170;
      const dy = nodeY + 56 + i * 20;
      inner.push(el('g', { class: 'device', 'data-device': d.name, 'data-kind': d.kind },
        title(d.kind === 'vxlan' ? `${d.name}: VXLAN (UDP ${VXLAN_PORT}), the source identity in the VNI` : `${d.name}: WireGuard (wireguard-go, UDP ${WG_PORT}), one key per node`),
        el('rect', { x: dx, y: dy, width: Math.max(70, n.width - 180), height: 17, rx: 4, fill: d.kind === 'vxlan' ? '#e6f7f1' : '#e9f0ff', stroke: d.kind === 'vxlan' ? '#2a7f62' : '#3b6db3' }),
        text(dx + 6, dy + 12, clip(`${d.kind === 'vxlan' ? 'VXLAN' : 'WireGuard'} ${d.name}`, 26), { class: 's' })));
    });
    // The datapath: routing between eth0 / devices and the lxc veths.
    inner.push(el('rect', { x: nx + 10, y: nodeY + 100, width: n.width - 20, height: 22, rx: 4, fill: '#eef7ee', stroke: '#6a9a6a' }),
      text(nx + 18, nodeY + 115, clip(`routing · ipcache, policy, auth, ct maps${t.sockmap ? ' · sockmap' : ''}`, Math.floor((n.width - 30) / 6)), { class: 's' }));
    for (const { pod, x } of n.pods) {
      const vx = x + POD_W / 2;
      inner.push(el('g', { class: 'veth', 'data-veth': pod.lxc, 'data-pod': pod.name },
        title(`veth ${pod.lxc} (node side) ↔ eth0 in pod ${pod.name}: tc programs cil_from_container (ingress of ${pod.lxc}) and cil_to_container (egress)`),
        el('line', { x1: vx, y1: nodeY + 122, x2: vx, y2: podY, stroke: '#3b6db3', 'stroke-width': 2, 'stroke-dasharray': pod.runtime ? '4 3' : undefined }),
        el('rect', { x: x + 4, y: nodeY + 132, width: POD_W - 8, height: 46, rx: 4, fill: '#fff', stroke: '#b33b3b' }),
        text(x + 10, nodeY + 146, clip(pod.lxc, 22), { class: 'b' }),
        text(x + 10, nodeY + 160, 'tc cil_from_container', { class: 's' }),
        text(x + 10, nodeY + 173, 'tc cil_to_container', { class: 's' })));
      inner.push(podBox(pod, x, podY));
    }
    parts.push(el('g', { class: 'node', 'data-node': node.name }, ...inner));
  }
  return svg(layout.width, height, { class: 'topology', 'data-lab': t.lab, 'aria-label': `topology of lab ${t.lab}` }, title(`lab ${t.lab}`), ...parts);
}
