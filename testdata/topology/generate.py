#!/usr/bin/env python3
"""Writes the sysfs topology trees of testdata/topology/ (see README.md there).

Only the files `judged topology` reads are written. Run from anywhere:
    python3 testdata/topology/generate.py
It removes and rewrites each tree, so a change here and a rerun is the whole update.
"""

import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_list(cpus):
    """The kernel's compact form: 0-3,8,10-11."""
    cpus = sorted(set(cpus))
    ranges = []
    for cpu in cpus:
        if ranges and ranges[-1][1] + 1 == cpu:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def write(root, path, text):
    path = os.path.join(root, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


def tree(name, cpus, online, nodes, siblings_file="core_cpus_list", present=None):
    """cpus: {cpu: (package, core_id, [siblings])}; nodes: {node: [cpus]} or None (no NUMA).

    Offline CPUs get no topology directory, as on a real kernel, and are left out of the
    sibling and node lists (the kernel drops them from those masks).
    """
    root = os.path.join(HERE, name)
    shutil.rmtree(root, ignore_errors=True)
    system = "sys/devices/system"
    write(root, f"{system}/cpu/online", cpu_list(online))
    write(root, f"{system}/cpu/present", cpu_list(present if present is not None else cpus))
    for cpu in sorted(online):
        package, core_id, siblings = cpus[cpu]
        topology = f"{system}/cpu/cpu{cpu}/topology"
        write(root, f"{topology}/physical_package_id", str(package))
        write(root, f"{topology}/core_id", str(core_id))
        write(root, f"{topology}/{siblings_file}", cpu_list(s for s in siblings if s in online))
    if nodes is not None:
        write(root, f"{system}/node/online", cpu_list(nodes))
        for node, members in nodes.items():
            write(root, f"{system}/node/node{node}/cpulist", cpu_list(c for c in members if c in online))


def smt_host(sockets, cores_per_socket, core_ids=None):
    """Linux's usual x86 numbering with 2 threads per core: the first threads of every core
    of socket 0, then of socket 1, ..., then the second threads in the same order; CPU n and
    n + cores are siblings."""
    cores = sockets * cores_per_socket
    core_ids = core_ids or list(range(cores_per_socket))
    cpus = {}
    for index in range(cores):
        package, within = divmod(index, cores_per_socket)
        for cpu in (index, index + cores):
            cpus[cpu] = (package, core_ids[within], [index, index + cores])
    return cpus


# A laptop: one 4-core/8-thread Core i7 (e.g. i7-8550U), one node.
laptop = smt_host(1, 4)
tree("laptop-4c8t", laptop, laptop.keys(), {0: laptop.keys()})

# The judgehosts in the field: 2 x Xeon Gold 6148 (20 cores, 40 threads each), a node per
# socket. Skylake-SP's mesh leaves the disabled tiles' core ids out: these gaps are the
# pattern of one such part. Debian 10's kernel 4.19 predates core_cpus_list.
xeon_core_ids = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20, 24, 25, 26, 27, 28]
xeon = smt_host(2, 20, xeon_core_ids)
tree(
    "xeon-2s-40c-smt",
    xeon,
    xeon.keys(),
    {0: [*range(0, 20), *range(40, 60)], 1: [*range(20, 40), *range(60, 80)]},
    siblings_file="thread_siblings_list",
)

# One EPYC 7763 (Zen 3, 64 cores, 128 threads, 8 CCDs of 8 cores) with the BIOS's "L3 cache
# as NUMA domain" on: 8 nodes of one CCD each. CPU n and n + 64 are siblings.
epyc = smt_host(1, 64)
tree(
    "epyc-8node",
    epyc,
    epyc.keys(),
    {n: [*range(8 * n, 8 * n + 8), *range(64 + 8 * n, 64 + 8 * n + 8)] for n in range(8)},
)

# A one-CPU virtual machine on a kernel built without NUMA (no node directory).
tree("single-cpu", {0: (0, 0, [0])}, [0], None, siblings_file="thread_siblings_list")

# A 6-core/12-thread desktop where the admin took CPUs offline: CPU 8 (the sibling of 2), and
# the whole core of CPUs 4 and 10, so the online list has holes.
desktop = smt_host(1, 6)
offline = {4, 8, 10}
tree(
    "desktop-6c12t-offline",
    desktop,
    [c for c in desktop if c not in offline],
    {0: desktop.keys()},
)
