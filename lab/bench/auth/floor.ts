// The auth benchmark's floor, run side by side with the agents: a TLS
// server (tls-floor.ts serve) in the agents' server node, a long-lived client
// (tls-floor.ts dial) in the node whose agent dials, both with SVIDs of the
// lab's own CA for two of the benchmark's identities, on the underlay like
// the agents' port 4250. The benchmark asks for one handshake at a time, in
// the gaps between its pairs, so floor and agents share the same moments of
// the machine but never overlap.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { authFloorDir, controlDir, processTag } from '../../core/names.ts';
import { TAG_ENV } from '../../core/processes.ts';
import { nodeScriptArgv, REPO_ROOT } from '../../kernel/node-script.ts';
import { spawn, type ResultPromise } from '../../kernel/spawn.ts';
import { generateSvidKey, issueSvid, loadCa, sniOf } from '../../spiffe/ca.ts';
import { FLOOR_LISTENING, type FloorSample } from './tls-floor.ts';
import { AUTH_PORT } from '../../abi/generated.ts';

/** The floor server's port on the server node's underlay address, beside the agents'. */
export const FLOOR_PORT = AUTH_PORT + 1;
const SCRIPT = 'lab/bench/auth/tls-floor.ts';

export interface FloorEnds {
  /** The node whose agent dials (the one that saw the drop). */
  dialer: { netns: string; node: string; identity: number };
  /** The node whose agent answers, and its underlay address. */
  server: { netns: string; node: string; identity: number; ip: string };
}

export interface Floor {
  /** One fresh handshake; resolves with the client's timings. */
  handshake(): Promise<FloorSample>;
  stop(): Promise<void>;
}

/** Writes the two SVIDs (issued by the lab's CA, keys made here, mode 0600) and the trust bundle. */
async function writeCredentials(lab: string, ends: FloorEnds): Promise<string> {
  const dir = authFloorDir(lab);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await loadCa(`${controlDir(lab)}/ca.key.pem`);
  for (const [role, identity] of [['server', ends.server.identity], ['client', ends.dialer.identity]] as const) {
    const key = await generateSvidKey();
    const svid = await issueSvid(ca, identity, { publicKey: key.publicKeyPem });
    await writeFile(`${dir}/${role}.pem`, svid.certPem);
    await writeFile(`${dir}/${role}.key.pem`, key.keyPem, { mode: 0o600 });
    await chmod(`${dir}/${role}.key.pem`, 0o600);
  }
  await writeFile(`${dir}/ca.pem`, ca.certPem);
  return dir;
}

/** Waits for a line from a child's stdout, with a deadline. */
function firstLine(child: ResultPromise, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`${what}: no output after ${timeoutMs} ms`)), timeoutMs);
    lines.once('line', (l) => {
      clearTimeout(timer);
      lines.close();
      resolve(l);
    });
    void child.then((r) => reject(new Error(`${what} exited (${r.exitCode}): ${String(r.stderr ?? '').slice(-300)}`)));
  });
}

export async function startFloor(lab: string, ends: FloorEnds): Promise<Floor> {
  const dir = await writeCredentials(lab, ends);
  const tag = (node: string) => ({ [TAG_ENV]: processTag(lab, node, 'bench') });
  const server = spawn(nodeScriptArgv(SCRIPT, ['serve', ends.server.ip, String(FLOOR_PORT), dir]), { netns: ends.server.netns, env: tag(ends.server.node), cwd: REPO_ROOT });
  const children: ResultPromise[] = [server];
  const stop = async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.allSettled(children);
  };
  try {
    const l = await firstLine(server, 'floor server', 10_000);
    if (l !== FLOOR_LISTENING) throw new Error(`floor server said ${l}`);
    const client = spawn(nodeScriptArgv(SCRIPT, ['dial', ends.server.ip, String(FLOOR_PORT), dir, sniOf(ends.server.identity)]), {
      netns: ends.dialer.netns, env: tag(ends.dialer.node), cwd: REPO_ROOT, stdin: 'pipe',
    });
    children.push(client);
    const waiting: ((s: FloorSample) => void)[] = [];
    createInterface({ input: client.stdout! }).on('line', (l) => {
      const raw = JSON.parse(l) as Record<string, unknown>;
      const num = (v: unknown) => (typeof v === 'number' ? v : NaN); // NaN went through JSON as null
      waiting.shift()?.({ connectMs: num(raw.connectMs), secureMs: num(raw.secureMs), closeMs: num(raw.closeMs), ok: raw.ok === true, ...(raw.error ? { error: String(raw.error) } : {}) });
    });
    const exited = client.then((r) => new Error(`floor client exited (${r.exitCode})`));
    const handshake = () =>
      Promise.race([
        new Promise<FloorSample>((resolve) => {
          waiting.push(resolve);
          client.stdin!.write('go\n');
        }),
        exited.then((e) => Promise.reject(e)),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('floor handshake: no answer after 10 s')), 10_000).unref()),
      ]);
    // The first handshake loads code paths and fills caches: not a sample.
    await handshake();
    return {
      handshake,
      stop: async () => {
        client.stdin!.end();
        await stop();
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
