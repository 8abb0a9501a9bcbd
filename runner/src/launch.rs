//! Carrying out a `Plan`: the parent side of a run.
//!
//! DRAFT: being written (owned by the launch work item).

use crate::error::Result;
use crate::plan::Plan;
use crate::report::Report;

/// Run `plan` to completion: fork, confine, exec, measure, kill and reap everything of the run.
/// Must be called from a single-threaded process (it forks and runs setup code in the child).
pub fn run(_plan: &Plan) -> Result<Report> {
    todo!()
}
