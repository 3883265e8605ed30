// JSON Schema of the topology file, for editors (yaml-language-server) and
// other tools. Generated from the zod schema so the two cannot disagree;
// the semantic rules of validate.ts are not expressible here.
import { z } from 'zod';
import { TopologyFileSchema } from './schema.ts';

export function topologyJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(TopologyFileSchema, {
      // The file as written: fields with defaults are optional.
      io: 'input',
      // yaml-language-server handles draft 7 best.
      target: 'draft-07',
    }),
    title: 'mtless-lab topology',
  };
}
