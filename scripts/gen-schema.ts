// Writes topologies/topology.schema.json from the zod schema.
// Run after changing lab/topology/schema.ts: npx tsx scripts/gen-schema.ts
import { writeFile } from 'node:fs/promises';
import { topologyJsonSchema } from '../lab/topology/json-schema.ts';

const target = new URL('../topologies/topology.schema.json', import.meta.url);
await writeFile(target, JSON.stringify(topologyJsonSchema(), null, 2) + '\n');
console.log(`wrote ${target.pathname}`);
