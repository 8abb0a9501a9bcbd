//! The one door to the kernel for launching runs: process creation, signals, reaping and the
//! child's confinement sequence. Every `unsafe` block of the launch path lives here, each with a
//! `// SAFETY:` line.

pub mod child;
pub mod file;
pub mod keeper;
pub mod netns_pool;
pub mod process;
pub mod signals;
