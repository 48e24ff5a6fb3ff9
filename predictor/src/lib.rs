//! augur-predictor: forecasts of every backend's latency and load, and the policies that
//! route on them.
//!
//! The request path pushes `Observation`s into a bounded `Recorder` and picks backends with a
//! `Policy` from an immutable member list, per-backend atomic `Live` counters and the newest
//! `Snapshot`: no lock, no allocation. A predictor thread drains the recorder every tick,
//! updates the `models`, and publishes the next `Snapshot` (`Predictor::tick`). No Pingora, no
//! tokio, no clock reads: time is always an argument, so a simulator can drive all of it.
#![forbid(unsafe_code)]

pub mod attempt;
pub mod capacity;
pub mod demand;
pub mod eligibility;
pub mod health;
pub mod kind;
pub mod live;
pub mod load_report;
pub mod models;
pub mod policy;
pub mod predict;
pub mod predictive;
pub mod publish;
pub mod recorder;
pub mod retry_budget;
pub mod sampling;
pub mod snapshot;
pub mod standby;
#[cfg(test)]
mod testing;

pub use attempt::{Attempt, Exchange, Verdicts};
pub use capacity::{
    CapacityPlanner, DemandEvent, Pool, PoolMember, PoolReport, Scaling, Standby, Transition,
};
pub use eligibility::eligibility;
pub use health::{
    EjectionPolicy, Failure, Health, HealthChange, HealthFigures, HealthState, Reason,
    UpstreamHealth,
};
pub use kind::{BuildPolicy, PolicyKind};
pub use live::PeakRtt;
pub use live::{InFlight, Live, LiveFigures, STATUS_CLASSES};
pub use policy::{LeastConn, Member, PickContext, Policy, RoundRobin, Tried};
pub use predict::{BackendReport, Predictor, PredictorSettings};
pub use predictive::{Predictive, PredictiveParams};
pub use publish::finish_tick;
pub use recorder::{Observation, Outcome, Recorder};
pub use retry_budget::RetryBudget;
pub use sampling::{P2cLeastRequest, P2cPeakEwma, Random, Rng};
pub use snapshot::{BackendId, Eligibility, Forecast, Snapshot};
pub use standby::{Decision, PlannedUpstream, PoolConcurrency, StandbyPlanning, StandbyStep};
