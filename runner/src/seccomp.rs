//! Seccomp policies: turning a policy file into the BPF programs the child installs last.
//!
//! A policy file is seccompiler's JSON format (`docs/json_format.md` of the seccompiler crate):
//! an object mapping filter names to filters, each a default action, a match action and a list
//! of syscall rules. JSON has no comments, so every rule and every argument condition carries a
//! `"comment"` field saying why it is there (seccompiler accepts and drops it). [`compile`]
//! refuses a policy in which any of them is missing or empty: a rule that does not justify itself
//! never reaches a sandbox, and the unit tests compile every policy under `profiles/seccomp/`, so
//! `cargo test` is the build-time check.
//!
//! One file may hold several filters because a filter has a single match action (e.g. `EPERM` for
//! the deny-list, `ENOSYS` for `clone3` so that glibc falls back to `clone`, whose flags a filter
//! can inspect). The kernel runs every installed filter and obeys the most severe verdict, so the
//! filters of a file are independent; they are returned in name order.
//!
//! Each seccompiler filter kills the process on a foreign architecture (e.g. i386 syscalls via
//! `int 0x80` on x86_64), so numbers cannot be smuggled past it that way. On x86_64 a small fixed
//! guard comes first: x32 syscalls use the x86_64 architecture value with bit 30 set in the number,
//! which no rule names, so a deny-list would let them through on kernels built with x32 support.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seccompiler::{sock_filter, BpfProgram, TargetArch};
use serde::Deserialize;

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot read seccomp policy `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "seccomp policy `{path}` does not compile for {arch:?}: {source}; \
         see seccompiler's JSON format (docs/json_format.md)"
    )]
    Compile {
        path: PathBuf,
        arch: TargetArch,
        #[source]
        source: seccompiler::Error,
    },
    #[error("seccomp policy `{path}` is not in seccompiler's JSON format: {source}")]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "seccomp policy `{path}`: filter `{filter}`, rule {rule} (`{syscall}`){} has no \
         comment: add a non-empty \"comment\" saying why it is there",
        condition.map(|index| format!(", argument condition {index},")).unwrap_or_default()
    )]
    Uncommented {
        path: PathBuf,
        filter: String,
        rule: usize,
        syscall: String,
        /// `None` for the rule itself, else the index of the uncommented argument condition.
        condition: Option<usize>,
    },
    #[error(
        "seccomp policy `{path}`: filter `{filter}` lists `{syscall}` both without and with \
         `args`; seccompiler would keep only the conditional rules, so the unconditional one \
         would silently stop matching: merge them into one kind"
    )]
    MixedRules {
        path: PathBuf,
        filter: String,
        syscall: String,
    },
    #[error("seccomp policies cannot be compiled for this architecture ({0}): {1}")]
    UnsupportedArch(&'static str, #[source] seccompiler::BackendError),
}

/// Compile the policy file for the architecture we run on. Install every returned program, in
/// order, as the last step before exec (with `no_new_privs`, which `seccompiler::apply_filter`
/// sets). Compile in the parent: it allocates, which has no place between fork and exec.
pub fn compile(policy_json: &Path) -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|error| SeccompError::UnsupportedArch(std::env::consts::ARCH, error))?;
    compile_for(policy_json, arch)
}

/// Compile the policy file for `arch` (tests check every policy for every supported arch).
pub fn compile_for(policy_json: &Path, arch: TargetArch) -> Result<Vec<BpfProgram>, SeccompError> {
    let text = std::fs::read_to_string(policy_json).map_err(|source| SeccompError::Read {
        path: policy_json.to_owned(),
        source,
    })?;
    let compile_error = |source| SeccompError::Compile {
        path: policy_json.to_owned(),
        arch,
        source,
    };
    let mut named = seccompiler::compile_from_json(text.as_bytes(), arch).map_err(compile_error)?;
    // It compiled, so it is well-formed JSON in seccompiler's shape; now demand the comments.
    let commented: BTreeMap<String, CommentedFilter> =
        serde_json::from_str(&text).map_err(|source| SeccompError::Syntax {
            path: policy_json.to_owned(),
            source,
        })?;
    check_rules(policy_json, &commented)?;

    let mut programs = Vec::with_capacity(named.len() + 1);
    if arch == TargetArch::x86_64 {
        programs.push(x32_guard());
    }
    programs.extend(commented.keys().filter_map(|name| named.remove(name)));
    Ok(programs)
}

/// The parts of seccompiler's JSON that carry justifications; everything else is ignored here.
#[derive(Deserialize)]
struct CommentedFilter {
    filter: Vec<CommentedRule>,
}

#[derive(Deserialize)]
struct CommentedRule {
    syscall: String,
    comment: Option<String>,
    args: Option<Vec<CommentedCondition>>,
}

#[derive(Deserialize)]
struct CommentedCondition {
    comment: Option<String>,
}

fn has_text(comment: &Option<String>) -> bool {
    comment
        .as_deref()
        .is_some_and(|text| !text.trim().is_empty())
}

/// Every rule and condition is commented, and no syscall mixes unconditional and conditional
/// rules in one filter.
fn check_rules(
    path: &Path,
    filters: &BTreeMap<String, CommentedFilter>,
) -> Result<(), SeccompError> {
    for (name, filter) in filters {
        let uncommented = |rule: usize, syscall: &str, condition| SeccompError::Uncommented {
            path: path.to_owned(),
            filter: name.clone(),
            rule,
            syscall: syscall.to_owned(),
            condition,
        };
        let mut conditional_by_syscall: BTreeMap<&str, bool> = BTreeMap::new();
        for (index, rule) in filter.filter.iter().enumerate() {
            if !has_text(&rule.comment) {
                return Err(uncommented(index, &rule.syscall, None));
            }
            for (arg, condition) in rule.args.iter().flatten().enumerate() {
                if !has_text(&condition.comment) {
                    return Err(uncommented(index, &rule.syscall, Some(arg)));
                }
            }
            let conditional = rule.args.as_ref().is_some_and(|args| !args.is_empty());
            let seen = *conditional_by_syscall
                .entry(&rule.syscall)
                .or_insert(conditional);
            if seen != conditional {
                return Err(SeccompError::MixedRules {
                    path: path.to_owned(),
                    filter: name.clone(),
                    syscall: rule.syscall.clone(),
                });
            }
        }
    }
    Ok(())
}

/// x86_64 only: fail every x32 syscall with `ENOSYS` (what a kernel without x32 answers anyway).
fn x32_guard() -> BpfProgram {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    // Offset of `nr` in `struct seccomp_data`.
    const SYSCALL_NR_OFFSET: u32 = 0;
    let instruction = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    vec![
        instruction(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            SYSCALL_NR_OFFSET,
            0,
            0,
        ),
        instruction(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            1,
        ),
        instruction(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            0,
            0,
        ),
        instruction(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Output};

    use super::*;

    use crate::repo_path;

    fn fixture(name: &str) -> PathBuf {
        repo_path("testdata/profiles/policies").join(name)
    }

    /// The build-time check of rule 8: every shipped policy compiles for every architecture we
    /// support, and (enforced by `compile_for`) every rule and condition says why it is there.
    #[test]
    fn every_shipped_policy_compiles_and_justifies_each_rule() {
        let policies: Vec<PathBuf> = std::fs::read_dir(repo_path("profiles/seccomp"))
            .expect("profiles/seccomp is readable")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        assert!(!policies.is_empty(), "no policy under profiles/seccomp");
        for policy in &policies {
            for arch in [TargetArch::x86_64, TargetArch::aarch64] {
                let programs = compile_for(policy, arch)
                    .unwrap_or_else(|error| panic!("{}: {error}", policy.display()));
                assert!(programs.iter().all(|program| !program.is_empty()));
            }
        }
    }

    #[test]
    fn a_rule_without_comment_is_refused() {
        let error = compile_for(&fixture("uncommented.json"), TargetArch::x86_64).unwrap_err();
        assert!(
            matches!(&error, SeccompError::Uncommented { rule: 1, syscall, condition: None, .. }
                if syscall == "bpf"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("uncommented.json"), "{message}");
        assert!(message.contains("add a non-empty \"comment\""), "{message}");
    }

    #[test]
    fn a_condition_with_a_blank_comment_is_refused() {
        let error =
            compile_for(&fixture("uncommented-condition.json"), TargetArch::x86_64).unwrap_err();
        assert!(
            matches!(&error, SeccompError::Uncommented { rule: 0, syscall, condition: Some(0), .. }
                if syscall == "ioctl"),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .contains("(`ioctl`), argument condition 0, has no comment"));
    }

    #[test]
    fn mixing_unconditional_and_conditional_rules_is_refused() {
        let error = compile_for(&fixture("mixed.json"), TargetArch::x86_64).unwrap_err();
        assert!(
            matches!(&error, SeccompError::MixedRules { syscall, .. } if syscall == "ioctl"),
            "{error:?}"
        );
    }

    #[test]
    fn an_unknown_syscall_names_the_policy_and_the_syscall() {
        let error = compile_for(&fixture("unknown-syscall.json"), TargetArch::x86_64).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SeccompError::Compile { .. }), "{error:?}");
        assert!(message.contains("unknown-syscall.json"), "{message}");
        assert!(message.contains("ptrase"), "{message}");
    }

    #[test]
    fn a_missing_policy_names_the_path() {
        let error = compile(&fixture("does-not-exist.json")).unwrap_err();
        assert!(matches!(error, SeccompError::Read { .. }), "{error:?}");
        assert!(error.to_string().contains("does-not-exist.json"));
    }

    #[test]
    fn x86_64_programs_start_with_the_x32_guard() {
        let policy = fixture("commented.json");
        let x86_64 = compile_for(&policy, TargetArch::x86_64).unwrap();
        assert_eq!(x86_64.len(), 2);
        assert_eq!(x86_64[0], x32_guard());
        let aarch64 = compile_for(&policy, TargetArch::aarch64).unwrap();
        assert_eq!(aarch64.len(), 1);
        assert!(!aarch64.contains(&x32_guard()));
    }

    /// Root lets `unshare` succeed without a filter, so a refusal is the filter's doing. A skip
    /// is a failure under `CI=true`.
    fn root_for_unshare(test: &str) -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        let reason = format!("{test} needs root (unshare must succeed without the filter)");
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true forbids skipping: {reason}"
        );
        eprintln!("skipping: {reason}");
        false
    }

    /// Run `command` with the default policy installed in the child, right before exec.
    fn run_under_default_policy(command: &mut Command) -> Output {
        let programs = compile(&repo_path("profiles/seccomp/default.json")).unwrap();
        // SAFETY: the hook runs in the forked child before exec. It only installs programs
        // compiled before the fork (two prctl/seccomp syscalls each) and allocates only to
        // report a failure, after which the child exits.
        unsafe {
            command.pre_exec(move || {
                for program in &programs {
                    seccompiler::apply_filter(program).map_err(io::Error::other)?;
                }
                Ok(())
            });
        }
        command.output().expect("spawn the filtered child")
    }

    #[test]
    fn default_policy_refuses_namespaces_but_runs_programs() {
        if !root_for_unshare("default_policy_refuses_namespaces_but_runs_programs") {
            return;
        }
        for flag in ["-n", "-U", "-m"] {
            let unfiltered = Command::new("unshare")
                .args([flag, "true"])
                .output()
                .unwrap();
            assert!(
                unfiltered.status.success(),
                "unshare {flag} true fails even unfiltered"
            );
            let filtered = run_under_default_policy(Command::new("unshare").args([flag, "true"]));
            let stderr = String::from_utf8_lossy(&filtered.stderr);
            assert!(!filtered.status.success(), "unshare {flag} was allowed");
            assert!(stderr.contains("Operation not permitted"), "{stderr}");
        }
        // clone(CLONE_NEWUSER | SIGCHLD): the way around `unshare` the clone flag rules close.
        let clone_new_user = format!(
            "my $pid = syscall({}, {}, 0, 0, 0, 0); exit 0 if $pid == 0; \
             die \"$!\\n\" if $pid < 0; waitpid($pid, 0); exit 0",
            libc::SYS_clone,
            libc::CLONE_NEWUSER | libc::SIGCHLD
        );
        let unfiltered = Command::new("perl").args(["-e", &clone_new_user]).output();
        assert!(
            unfiltered.unwrap().status.success(),
            "clone fails even unfiltered"
        );
        let filtered = run_under_default_policy(Command::new("perl").args(["-e", &clone_new_user]));
        let stderr = String::from_utf8_lossy(&filtered.stderr);
        assert!(
            stderr.contains("Operation not permitted"),
            "clone was allowed: {stderr}"
        );

        let plain = run_under_default_policy(&mut Command::new("true"));
        assert!(
            plain.status.success(),
            "`true` failed under the policy: {plain:?}"
        );
    }

    /// Threads come from clone3, which the policy answers with ENOSYS so that glibc falls back
    /// to clone: with EPERM instead, every multithreaded program (the JVM!) would fail. Needs no
    /// privilege: `apply_filter` sets `no_new_privs`, which lets anyone install a filter.
    #[test]
    fn default_policy_lets_threads_start() {
        let output =
            run_under_default_policy(Command::new(std::env::current_exe().unwrap()).args([
                "--ignored",
                "--exact",
                "seccomp::tests::spawn_and_join_a_thread",
                "--test-threads=1",
            ]));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the helper did not run: {stdout}"
        );
    }

    #[test]
    #[ignore = "helper: default_policy_lets_threads_start runs it under the seccomp policy"]
    fn spawn_and_join_a_thread() {
        let answer = std::thread::spawn(|| 6 * 7)
            .join()
            .expect("thread panicked");
        assert_eq!(answer, 42);
    }
}
