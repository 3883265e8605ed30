// `mtless auth`: see lab/cli/table.ts for its summary.
import { writeAuthEntry, deleteAuthEntry } from '../../datapath/auth.ts';
import { AUTH_TYPE_SPIRE } from '../../abi/generated.ts';
import { UsageError, type Command } from '../command.ts';
import { runningLab, nodeOf } from '../running-lab.ts';

export const command: Command = {
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
};
