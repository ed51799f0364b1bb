//! Routing by identifier: identifiers of up to 160 bits, the membership ring and who owns a
//! key, finger tables under either finger rule (the reference's positions, or Chord's
//! successor(n + 2^i)), the next hop toward a key, and lookups walked through every table.
//! No I/O: a messaging node routes with its own [`FingerTable::next_hop`], and a simulator
//! walks every node's table in memory with the same code (`simulate`, `overlay simulate`).
//! The rules, the path lengths they give and why: `docs/CHORD.md`.

pub mod churn;
pub mod id;
pub mod lookup;
pub mod membership;
pub mod simulate;
pub mod table;

pub use id::{Id, IdSpace};
pub use lookup::{Lookup, lookup, walk};
pub use membership::Membership;
pub use table::{FingerRule, FingerTable, Step};
