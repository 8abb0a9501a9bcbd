//! runguard's manual (`--help`) and version (`--version`).

use super::config::{
    DEFAULT_CHROOT_PREFIX, DEFAULT_CONFIG_PATH, DEFAULT_NETNS_POOL_DIR, DEFAULT_NETNS_POOL_SIZE,
};

pub fn version() -> String {
    format!(
        "runguard (judged {}): a drop-in replacement for DOMjudge's runguard\n",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn manual() -> String {
    format!(
        "\
Usage: runguard [OPTION]... [--] COMMAND [ARG]...
Run COMMAND with restrictions and report what it used.

Options stop at the first word that is not an option, or at `--': everything after is
COMMAND and its arguments. Long options take `--opt=VALUE' or `--opt VALUE' and may be
abbreviated; short ones take `-tVALUE' or `-t VALUE' and bundle (`-cq').

DOMjudge's options:
  -r, --root=DIR         chroot into DIR (must lie within a chroot prefix of the config);
                           COMMAND is then resolved inside it
  -u, --user=USER        run COMMAND as USER (name or uid); must be a valid user of the
                           config and not root
  -g, --group=GROUP      run COMMAND with group GROUP (name or gid), supplementary groups
                           cleared; default with -u: the group named like the user
  -d, --chdir=DIR        change to DIR after the chroot (only together with -r)
  -t, --walltime=TIME    wall-clock time limit
  -C, --cputime=TIME     CPU time limit, all processes of the run together
  -m, --memsize=SIZE     memory limit of the whole run in kB (swap forbidden)
  -f, --filesize=SIZE    largest file COMMAND may write, in kB
  -p, --nproc=N          at most N processes and threads in the run
  -P, --cpuset=LIST      run only on these CPUs, e.g. 1 or 0,2-3 (must be online)
  -c, --no-core          no core dumps
  -o, --stdout=FILE      write COMMAND's stdout to FILE instead of ours
  -e, --stderr=FILE      write COMMAND's stderr to FILE instead of ours
  -s, --streamsize=SIZE  keep at most SIZE kB of each of stdout and stderr; the rest is
                           read and discarded, so COMMAND never blocks
  -E, --environment      keep our whole environment (default: only PATH)
  -V, --variable=K=V[;K2=V2]
                         add environment variables; may be repeated; a bare K removes K
  -M, --outmeta=FILE     write the meta file (below) to FILE
  -U, --runpipepid=PID   at a hard wall-time kill, first send SIGUSR1 to PID (interactive
                           problems, runpipe)
  -v, --verbose          more messages on stderr
  -q, --quiet            no warnings on stderr
      --help             show this manual and exit
      --version          show the version and exit

Options of our own:
      --namespaces=LIST  give the run its own instance of these namespaces, comma-separated
                           from mount,uts,ipc,net,pid,user,cgroup,time
                           (default: mount,uts,ipc,net, as DOMjudge)
      --no-namespaces    share all namespaces with us
      --profile=FILE     apply a sandbox profile (TOML: namespaces, mounts, seccomp)
      --json=FILE        also write a JSON report: the meta file's values and the full
                           measurements (setup time, OOM kills, throttling, cgroup layout)
      --cgroup-parent=PATH
                         create the run's cgroups under PATH in each hierarchy (relative,
                           default from the config: judged)
      --config=FILE      read the config from FILE (default: {DEFAULT_CONFIG_PATH} if it
                           exists, else built-in defaults)
      --cpu-quota=CPUS   CFS bandwidth of the whole run: CPUS of CPU time per 100 ms period,
                           e.g. 0.5 (half a CPU) or 2, as a container's CPU limit; the JSON
                           report's throttling then tells how often the run was held back
      --activity         measure what else held the run back, for the JSON report's
                           `activity': its stalls waiting for a CPU, for IO and in memory
                           reclaim (PSI of its cgroup), its major faults and file refaults
      --cpuset-mems=LIST allocate the run's memory only on these NUMA nodes, e.g. 0 or 0-1
                           (cpuset.mems; must have memory, see
                           /sys/devices/system/node/has_memory); with -P, a run's CPUs and
                           memory on one node
      --clear-netns-pool unpin the pooled network namespaces no run holds (see the config
                           file below) and exit

TIME is in seconds, a float: SOFT or SOFT:HARD with HARD >= SOFT (default HARD = SOFT).
Only the hard limit kills; the soft one marks the result. Both clocks start when COMMAND
is executed, not when we fork: our own setup is reported apart (setup-time).

Config file (TOML, unknown keys are an error):
  valid_users = [\"domjudge-run\", \"domjudge-run-*\"]   # `*' and `?' wildcards
  chroot_prefixes = [\"{DEFAULT_CHROOT_PREFIX}\"]
  cgroup_parent = \"judged\"
  netns_pool_dir = \"{DEFAULT_NETNS_POOL_DIR}\"   # empty network namespaces, reused
  netns_pool_size = {DEFAULT_NETNS_POOL_SIZE}                        # 0: a new one per run
The values shown are the defaults. A numeric -u is valid when it is the uid of a user
named exactly in valid_users. Users and groups are looked up in /etc/passwd and
/etc/group only (not LDAP or other NSS modules): make run users local accounts.

Making a network namespace is the costliest step of a run's setup (~0.85 ms), so runs
enter an empty one pinned in netns_pool_dir (like `ip netns add' does), one run per
namespace at a time, and give it back when every process of the run is dead. Such a
namespace has only a loopback device that is down and that the run, without
capabilities, cannot bring up. Runs with their own user namespace make their own. The
pins stay when runguard exits (they are the pool); --clear-netns-pool removes those no
run holds.

Without -u, COMMAND runs as our real user; run as root (e.g. through sudo) without -u,
runguard refuses: root privileges are never left to COMMAND.

Meta file (-M), one `key: value' line each, in this order; empty values keep their line:
  memory-bytes      peak memory of the run, bytes
  exitcode          COMMAND's exit status, or 128 + the signal that killed it
  signal            only when runguard stopped the run: 14 at the hard wall-time limit,
                      15 when runguard got SIGTERM
  wall-time         seconds (%.3f), monotonic clock, from exec to the last process gone
  user-time         CPU seconds in user mode, all processes of the run
  sys-time          CPU seconds in the kernel, all processes of the run
  cpu-time          user-time + sys-time
  time-used         wall-time or cpu-time: whichever of -t/-C came last (default cpu-time)
  time-result       empty, soft-timelimit or hard-timelimit, for the time-used clock;
                      hard-timelimit whenever any hard limit fired
  output-truncated  only with -s: empty, stdout, stderr or stdout,stderr
  stdin-bytes       always 0 (stdin is passed through, not counted)
  stdout-bytes      bytes COMMAND wrote to stdout, discarded ones included
  stderr-bytes      the same for stderr
  setup-time        seconds from fork to exec: our setup, not billed to COMMAND
  internal-error    only when runguard itself failed (a judgehost disables itself)
Meta and JSON files are truncated if they exist (keeping their owner), else created
with mode 0600.

Exit status:
  N        COMMAND exited with status N
  128+S    COMMAND was killed by signal S (e.g. 137 for SIGKILL, 143 for SIGTERM)
  255      runguard failed (bad option, refused user or root, sandbox failure): the
             message is on stderr and, with -M, in the meta file as internal-error
  0        --help, --version, --clear-netns-pool

Environment:
  RUNGUARD_BACKEND=warm   carry the run out in a warm sandbox (a `keeper` process built for
                          this run; used to run the same tests against warm sandboxes)
  JUDGED_KEEPER=PATH      the keeper binary (default: `keeper` beside runguard)

Examples:
  A test run as DOMjudge starts it:
    runguard -r /opt/domjudge/judgehost/judgings/1/c --nproc=64 --no-core
      --streamsize=8192 --user=domjudge-run-0 --group=domjudge-run --walltime=1:1.5
      --cputime=1:1.5 --memsize=2097152 --filesize=8192 --stderr=program.err
      --outmeta=program.meta -- /testcase00001/1/execdir/program
  An output validator (exit 42 correct, 43 wrong answer, passed through):
    runguard -u domjudge-run -m 2097152 -t 30 -f 2621440 -s 2621440 --no-core
      -M compare.meta -- compare testdata.in testdata.out feedback/
  A quick check that 1 s of sleep costs 1 s of wall time and no CPU time:
    sudo runguard -u domjudge-run -t 2 -M /dev/stdout sleep 1
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_documents_every_option_and_meta_key() {
        let manual = manual();
        for option in [
            "--root",
            "--user",
            "--group",
            "--chdir",
            "--walltime",
            "--cputime",
            "--memsize",
            "--filesize",
            "--nproc",
            "--cpuset",
            "--no-core",
            "--stdout",
            "--stderr",
            "--streamsize",
            "--environment",
            "--variable",
            "--outmeta",
            "--runpipepid",
            "--verbose",
            "--quiet",
            "--help",
            "--version",
            "--namespaces",
            "--no-namespaces",
            "--profile",
            "--json",
            "--cgroup-parent",
            "--config",
            "--cpu-quota",
            "--activity",
            "--cpuset-mems",
            "--clear-netns-pool",
        ] {
            assert!(manual.contains(option), "{option} missing from --help");
        }
        for key in [
            "memory-bytes",
            "exitcode",
            "signal",
            "wall-time",
            "user-time",
            "sys-time",
            "cpu-time",
            "time-used",
            "time-result",
            "output-truncated",
            "stdin-bytes",
            "stdout-bytes",
            "stderr-bytes",
            "setup-time",
            "internal-error",
        ] {
            assert!(
                manual.contains(&format!("\n  {key} ")),
                "{key} missing from --help"
            );
        }
        assert!(manual.contains("Exit status"));
    }
}
