# Mininet's side of the bring-up benchmark (lab/bench/up/mininet.ts runs it):
# builds NODES switches of PODS hosts each with Debian's mininet (Python API,
# Linux bridges, no controller), times net.start() and net.stop(), and prints
# one JSON line: {"upMs", "downMs", "hosts", "switches"}.
#
#   /usr/bin/python3 mininet-driver.py NODES PODS
#
# It runs in mininet's "root" namespace, which is one of the benchmark's
# (bench-mn's): its switches (Linux bridges) and host-side veth ends live
# there, its hosts in namespaces of their own (mnexec). Every process carries
# the benchmark's MTLAB_TAG, so leftovers are found by ownership; `mn -c` is
# never needed.
import json, resource, sys, time

nodes, pods = int(sys.argv[1]), int(sys.argv[2])
# Many hosts need many pty/pipe descriptors: raise this process's limit only.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

setLogLevel('error')

class BenchTopo(Topo):
    "One switch per node with its pods' hosts, every node switch linked to a core switch."
    def build(self, nodes, pods):
        core = self.addSwitch('s0')
        h = 0
        for n in range(1, nodes + 1):
            sw = self.addSwitch('s%d' % n)
            self.addLink(sw, core)
            for _ in range(pods):
                h += 1
                self.addLink(self.addHost('h%d' % h), sw)

# Mininet.init() would raise host-wide sysctls (fs.file-max, kernel.pty.max, ...); skip it.
Mininet.inited = True
net = Mininet(topo=BenchTopo(nodes=nodes, pods=pods), switch=LinuxBridge, controller=None, build=False)
result = {}
try:
    t0 = time.perf_counter()
    net.start()
    result['upMs'] = (time.perf_counter() - t0) * 1000
    result['hosts'] = len(net.hosts)
    result['switches'] = len(net.switches)
finally:
    t0 = time.perf_counter()
    net.stop()
    result['downMs'] = (time.perf_counter() - t0) * 1000
print(json.dumps(result))
