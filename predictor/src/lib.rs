//! augur-predictor: backend selection. Immutable member lists plus per-backend atomic live
//! counters, and the policies that pick from them without locks or allocation.
//!
//! The forecasting models and the snapshot they publish arrive with the predictor issue; the
//! `Policy` trait is the seam they plug into.
#![forbid(unsafe_code)]

pub mod live;
pub mod policy;

pub use live::{InFlight, Live, LiveFigures, STATUS_CLASSES};
pub use policy::{LeastConn, Member, Policy, RoundRobin, Tried};
