//! The console command parsers on arbitrary lines: no panic, and a parsed command is stable
//! under extra whitespace.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::console::{parse_node, parse_registry};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let registry = parse_registry(&line);
    let node = parse_node(&line);
    let padded = format!("  {line}\t ");
    assert_eq!(parse_registry(&padded), registry);
    assert_eq!(parse_node(&padded), node);
});
