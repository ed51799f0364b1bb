//! overlay: a Chord-like structured peer-to-peer overlay with a zero-copy io_uring data plane.
//!
//! Layers (see docs/ARCHITECTURE.md): the protocol core (`wire`, `routing`, `registry`,
//! `node`) does no I/O; `io` is the io_uring driver, the only module where `unsafe_code` is
//! allowed.
#![deny(unsafe_code)]

pub mod auth;
pub mod buffer;
pub mod chord;
pub mod console;
#[allow(unsafe_code)]
pub mod io;
pub mod limits;
pub mod machine;
pub mod metrics;
pub mod node;
pub mod registry;
pub mod routing;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
pub mod stats;
pub mod strangers;
pub mod summary;
pub mod warnings;
pub mod wire;
