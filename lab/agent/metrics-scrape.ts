// Prints the body of GET URL (an agent's /metrics) to stdout; exit 1 with the
// reason on stderr otherwise. `mtless metrics` runs it inside a node's
// namespace, where the agent's management address is reachable.
import { get } from 'node:http';

const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: metrics-scrape.ts URL\n');
  process.exit(2);
}
const TIMEOUT_MS = 5000;
const req = get(url, { timeout: TIMEOUT_MS }, (res) => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const body = Buffer.concat(chunks);
    if (res.statusCode !== 200) {
      process.stderr.write(`${url} answered ${res.statusCode}: ${body.toString().trim()}\n`);
      process.exit(1);
    }
    process.stdout.write(body, () => process.exit(0));
  });
});
req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
req.on('error', (e: NodeJS.ErrnoException) => {
  process.stderr.write(`cannot scrape ${url}: ${e.code === 'ECONNREFUSED' ? 'nothing listens there (is the agent running?)' : e.message}\n`);
  process.exit(1);
});
