//! augur-predictor: backend selection. Immutable member lists plus per-backend atomic live
//! counters, and the policies that pick from them without locks or allocation.
//!
//! The forecasting models and the snapshot they publish arrive with the predictor issue; the
//! `Policy` trait is the seam they plug into.
#![forbid(unsafe_code)]

pub mod live;
pub mod load_report;
pub mod models;
pub mod policy;
pub mod predictive;
pub mod sampling;
pub mod snapshot;

pub use live::PeakRtt;
pub use live::{InFlight, Live, LiveFigures, STATUS_CLASSES};
pub use policy::{LeastConn, Member, PickContext, Policy, RoundRobin, Tried};
pub use predictive::{Predictive, PredictiveParams};
pub use sampling::{P2cLeastRequest, P2cPeakEwma, Random, Rng};
pub use snapshot::{BackendId, Eligibility, Forecast, Snapshot};
