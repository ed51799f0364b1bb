//! The run summary: the table the reference prints, its verdict, and the JSON result.

mod accounting;
mod format;
mod hops;
mod json;
mod result;
mod table;
mod totals;
mod verdict;

pub use accounting::{Accounting, LinkAccount, account};
pub use format::{counted, duration, thousands};
pub use json::{RunReport, ScriptResult, Settings};
pub use result::{Ending, Measured, NodeResult, PASS_WITH_CRASHES, RunResult};
pub use table::SUMMARY_ROWS_MAX;
pub use totals::Totals;

#[cfg(test)]
use hops::HopSpread;

#[cfg(test)]
mod tests;
