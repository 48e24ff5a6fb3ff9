//! The predictor thread: every tick it drains the recorder, updates the models and publishes
//! the next snapshot (and the figures `/status` and `/metrics` show) through `ArcSwap`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use augur_predictor::{BackendReport, Predictor, PredictorSettings};

use crate::clock;
use crate::state::Shared;

/// What the predictor publishes besides the snapshot, for the admin pages.
#[derive(Debug, Default)]
pub struct PredictorView {
    /// Per `BackendId`: what the predictor knows.
    pub reports: Vec<Option<BackendReport>>,
    /// Ticks so far.
    pub ticks: u64,
    /// How long the last tick took.
    pub last_tick: Duration,
}

/// Starts the predictor thread with the config's settings.
pub fn spawn(shared: Arc<Shared>, config: &augur_config::Predictor) -> std::io::Result<()> {
    let settings = PredictorSettings {
        tick: config.tick,
        horizon: config.horizon,
        lead: config.lead,
        slow_start: config.slow_start,
        ..PredictorSettings::default()
    };
    std::thread::Builder::new()
        .name("augur-predictor".into())
        .spawn(move || run(&shared, settings))?;
    Ok(())
}

fn run(shared: &Shared, settings: PredictorSettings) {
    let mut predictor = Predictor::new(settings);
    let mut next = Instant::now() + settings.tick;
    loop {
        // A fixed-rate ticker: the models take one step per tick.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += settings.tick;
        let started = Instant::now();
        let ids = shared.registry.ids();
        for &id in &ids {
            predictor.track(id);
        }
        while let Some(observation) = shared.recorder.pop() {
            predictor.observe(&observation);
        }
        let snapshot = predictor.tick(clock::now_nanos());
        shared.snapshot.store(Arc::new(snapshot));
        let reports = (0..ids.len() as u32)
            .map(|id| predictor.report(id))
            .collect();
        shared.predictor_view.store(Arc::new(PredictorView {
            reports,
            ticks: predictor.ticks(),
            last_tick: started.elapsed(),
        }));
        // After a long stall (suspended process), do not try to catch up tick by tick.
        if next < Instant::now() {
            next = Instant::now() + settings.tick;
        }
    }
}
