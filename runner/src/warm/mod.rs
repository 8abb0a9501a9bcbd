//! Warm sandboxes: one sandbox built once per worker and reused for many runs, with the
//! one-shot path's guarantees and report for each run.
//!
//! Pieces: [`Sandbox`] is the client a judge or benchmark holds; it starts a [`keeper`] (the
//! `keeper` binary) and speaks [`protocol`] with it. The keeper lives inside the sandbox's
//! namespaces and cgroups ([`cgroup`]) and forks every run itself, so a run inherits them: no
//! per-run namespace creation and no per-run cgroup migration. Between runs it clears what the
//! run left ([`reset`]). A sandbox found broken is rebuilt by the client and the run retried
//! once; a second failure is a `SandboxError`, never a report.

pub mod cgroup;
pub mod keeper;
pub mod protocol;
pub mod reset;
mod sandbox;

pub use protocol::{Request, SandboxSpec};
pub use sandbox::{default_keeper_binary, Sandbox};
