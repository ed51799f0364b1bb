//! Helpers for tests that run the real `overlay` binary, by topic:
//! - `process`: child processes whose output is read on threads (so a test can wait for a
//!   line), killed on drop;
//! - `roles`: a registry on a free port, its nodes, what a node says once registered;
//! - `runs`: a run at the console that must pass, a scripted session's result, mean hops;
//! - `client`: a raw control-message client of the registry;
//! - `wait`: the shared deadline, polling a condition or a file;
//! - `files`: temporary files handed to the processes;
//! - `system`: /proc readings (resident memory, CPU time), the open-files limit;
//! - `netns`: network namespaces with cleanup on drop, iptables inside them;
//! - `prerequisites`: programs installed on demand, and the loud marker of a skipped test.
//!
//! Everything is re-exported here: tests write `common::Proc`, not the module path. Each test
//! binary compiles this module and uses a part of it, hence the allowances.

#![allow(dead_code, unused_imports)]

mod client;
mod files;
mod netns;
mod prerequisites;
mod process;
mod roles;
mod runs;
mod system;
mod wait;

pub use client::*;
pub use files::*;
pub use netns::*;
pub use prerequisites::*;
pub use process::*;
pub use roles::*;
pub use runs::*;
pub use system::*;
pub use wait::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_overlay");
