//! augur-segmenter: micro-segmentation at accept.
//!
//! A *segment* is a named set of source networks. A listener's `allow` names the segments
//! whose hosts may connect; a connection from anywhere else is refused at accept, before
//! TLS and before a byte is read. A route's `allow` narrows further, per request. A
//! listener without `allow` admits what `segmentation.default` says (allow or deny).
//!
//! - **Modes.** `enforce` refuses ([`Decision::Deny`]); `audit` decides the same way but
//!   lets the connection through ([`Decision::WouldDeny`]); `learn` lets everything through
//!   ([`Decision::Learn`]) and records flows (source /24 or /64, listener, route) from which
//!   [`Table::suggest`] writes a `segments:` + `allow:` fragment admitting exactly them.
//! - **Addresses.** IPv4 and IPv6. The IPv4-mapped block is IPv4 space: a source
//!   `::ffff:10.1.2.3` (what a dual-stack socket reports) is the host 10.1.2.3 and matches
//!   IPv4 prefixes, and a prefix written inside the block (`::ffff:10.0.0.0/104`) is the
//!   IPv4 prefix it maps; wider IPv6 prefixes (`::/0`) cover IPv6 hosts only. Overlapping
//!   and duplicate prefixes are fine. [`Prefix::contains`] is the definition; the table is
//!   that, made fast.
//! - **Cost.** [`Table::compile`] cuts every prefix into sorted disjoint ranges per family
//!   and precomputes, for every distinct set of segments and every allow list, the first
//!   admitting segment. A decision is then one binary search (O(log n) in the number of
//!   prefixes), two array reads and one relaxed atomic add: no allocation, no lock.
//! - **Reload.** A [`Table`] is immutable; the proxy compiles a new one from the new config
//!   and swaps it in (an `ArcSwap`). Counters ([`Tally`]), denial log budgets
//!   ([`LogBudget`]) and learned [`Flows`] are taken over from the previous table by
//!   listener and segment name, so they survive reloads.
//! - **Logging.** The crate writes no logs: [`Table::log_permit`] says whether a denial may
//!   be logged now (a per-listener budget of [`DENIAL_LOG_LINES_PER_SECOND`]) and how many
//!   lines were held back, and the proxy writes the `tracing` event.
//!
//! No Pingora, no tokio, no sockets: values in, values out.
#![forbid(unsafe_code)]

mod decision;
mod flows;
mod log_budget;
mod ranges;
#[doc(hidden)]
pub mod reference;
mod rules;
mod suggest;
mod table;
mod tally;

pub use augur_config::{Prefix, PrefixError, Segment, SegmentDefault, SegmentMode};
pub use decision::Decision;
pub use flows::{Flow, Flows, DEFAULT_FLOW_SLOTS};
pub use log_budget::{LogBudget, LogPermit, DENIAL_LOG_LINES_PER_SECOND};
pub use rules::{ListenerRules, Rules};
pub use table::Table;
pub use tally::{ConnectionCounts, Counts, RouteCounts, Tally};
