// Same-node socket acceleration (sockmap): the public API.
//   install:  SOCKMAP_STEP (an `up` step) = loadSockmap → writeSockmapPods → attachSockmap, per node
//   operate:  attachSockOps / detachSockOps, unloadSockmap
//   inspect:  readSockmapCounters, dumpSockhash, dumpSockmapPods, sockOpsAttached
//   run apps: podCommand / spawnInPod / runInPod (pod netns + node cgroup; lab/kernel/run.ts podPlace when the cgroup is optional)
//   measure:  lab/bench/sockmap/ (run.ts: benchSockmap)
export * from './load.ts';
export * from './pod.ts';
// Structs, maps, programs and metric slots of bpf/sockmap.c: the table in lab/abi.
export { SOCKMAP_MAPS, SOCKMAP_PROGRAMS, SOCKMAP_MAP_CODECS, type SockKey, type SockmapMetric, type SockmapPod } from '../abi/generated.ts';
export { appArgv } from './app.ts';
