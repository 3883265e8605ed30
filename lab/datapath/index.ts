// The datapath's public API, for `mtless up`, the node agent and scenarios.
//   install:  loadNodeDatapath → writeNodeState(compileNodeState(…)) → attachEndpoints
//   operate:  writeAuthEntry / deleteAuthEntry / dumpAuth, streamSignals, streamFlows
//   inspect:  dumpNodeMap, readMetrics, formatFlow, runProgram
//   identity in skb->mark: identityToMark / identityFromMark
export * from './load.ts';
export * from './state.ts';
export * from './auth.ts';
export * from './events.ts';
export * from './format.ts';
export * from './maps.ts';
export * from './progrun.ts';
export * from './mark.ts';
export { applyBatch, dumpMap, dumpMapRaw, dumpPerCpuMap, mapDelete, mapInfo, mapLookup, mapUpdate, type MapEntry, type MapOp } from './bpftool.ts';
export * as layouts from '../abi/layouts.ts';
export * from '../abi/generated.ts';
