//! The scenarios of the routing-quality issue: who the backends are, how fast they run over
//! time, and how much traffic arrives.

use crate::dist::ServiceTime;
use crate::rng::SimRng;

/// Nanoseconds per millisecond.
pub const MS: u64 = 1_000_000;
/// Nanoseconds per second.
pub const SEC: u64 = 1_000_000_000;

/// Mean service time at full speed (μ).
pub const MEAN_SERVICE: f64 = 10.0 * MS as f64;
/// Concurrency limit of every backend (c).
pub const LIMIT: usize = 8;
/// Balancer instances.
pub const INSTANCES: usize = 4;
/// The client gives up after this long.
pub const TIMEOUT: u64 = 2 * SEC;

/// Offered load as a fraction of capacity over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// The same all run long.
    Constant(f64),
    /// A sinusoid between `low` and `high` with this period (a compressed day).
    Sine {
        /// Trough.
        low: f64,
        /// Peak.
        high: f64,
        /// One "day".
        period: u64,
    },
    /// `base`, and `peak` for `length` from `start`.
    Spike {
        /// Load outside the spike.
        base: f64,
        /// Load during the spike.
        peak: f64,
        /// When the spike begins.
        start: u64,
        /// How long it lasts.
        length: u64,
    },
    /// Linear from `from` at the start to `to` at the end of the run.
    Ramp {
        /// Load at t = 0.
        from: f64,
        /// Load at the end.
        to: f64,
    },
    /// `base`, rising linearly to `peak` over `rise` from `start`, held for `hold`, falling
    /// back to `base` over `fall` (a compressed busy day).
    Plateau {
        /// Load outside the peak.
        base: f64,
        /// Load on the plateau.
        peak: f64,
        /// When the rise begins.
        start: u64,
        /// Rise length.
        rise: u64,
        /// Plateau length.
        hold: u64,
        /// Fall length.
        fall: u64,
    },
}

impl Load {
    /// Load at `t` in a run of length `duration`.
    pub fn at(&self, t: u64, duration: u64) -> f64 {
        match *self {
            Load::Constant(x) => x,
            Load::Sine { low, high, period } => {
                let phase = (t % period) as f64 / period as f64;
                let mid = (low + high) / 2.0;
                mid + (high - low) / 2.0 * (2.0 * std::f64::consts::PI * phase).sin()
            }
            Load::Spike {
                base,
                peak,
                start,
                length,
            } => {
                if t >= start && t < start + length {
                    peak
                } else {
                    base
                }
            }
            Load::Ramp { from, to } => from + (to - from) * t as f64 / duration.max(1) as f64,
            Load::Plateau {
                base,
                peak,
                start,
                rise,
                hold,
                fall,
            } => {
                let top = start + rise;
                let down = top + hold;
                let share = |from: u64, length: u64| (t - from) as f64 / length.max(1) as f64;
                if t < start || t >= down + fall {
                    base
                } else if t < top {
                    base + (peak - base) * share(start, rise)
                } else if t < down {
                    peak
                } else {
                    peak + (base - peak) * share(down, fall)
                }
            }
        }
    }

    /// The highest load of the run (the rate arrivals are thinned from).
    pub fn max(&self) -> f64 {
        match *self {
            Load::Constant(x) => x,
            Load::Sine { high, .. } => high,
            Load::Spike { base, peak, .. } => base.max(peak),
            Load::Ramp { from, to } => from.max(to),
            Load::Plateau { base, peak, .. } => base.max(peak),
        }
    }
}

/// How backends' speeds change (multipliers on service time).
#[derive(Debug, Clone, PartialEq)]
pub enum Speed {
    /// Every backend at full speed all run long.
    Uniform,
    /// Some backends permanently slower: (backend, multiplier).
    Static(Vec<(usize, f64)>),
    /// An antagonist on each listed backend (with its phase offset): service × `factor` for
    /// `on` out of every `period`.
    SquareWave {
        /// (backend, phase offset).
        backends: Vec<(usize, u64)>,
        /// Service-time multiplier while the antagonist runs.
        factor: f64,
        /// Cycle length.
        period: u64,
        /// Time on per cycle.
        on: u64,
    },
    /// Full stops of `length` every `every` ± `jitter` (uniform) on the listed backends.
    Stalls {
        /// Backends that stall.
        backends: Vec<usize>,
        /// Mean time between stall starts.
        every: u64,
        /// Uniform jitter on each gap.
        jitter: u64,
        /// Stall length.
        length: u64,
    },
    /// `backend` starts at `from`× at `start` and falls linearly to 1× over `length`.
    WarmUp {
        /// The backend warming up.
        backend: usize,
        /// Multiplier when it joins.
        from: f64,
        /// When it joins.
        start: u64,
        /// Warm-up length.
        length: u64,
    },
}

/// One speed change: from `at`, `backend` serves at `multiplier`× (infinity: stalled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// When.
    pub at: u64,
    /// Which backend.
    pub backend: usize,
    /// New service-time multiplier.
    pub multiplier: f64,
}

/// Steps of a linear warm-up (a speed change per step).
const WARM_UP_STEP: u64 = 100 * MS;

/// One row group of the report.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short key, e.g. "S3-ln".
    pub key: String,
    /// The scenario this is a variant of, e.g. "S3".
    pub family: &'static str,
    /// What it is, in words.
    pub title: String,
    /// Backends in the simulation (including any that join later).
    pub backends: usize,
    /// Backends every instance routes to from the start (0..initial).
    pub initial: usize,
    /// When backend `initial` joins (added to every instance's members), if one does.
    pub join_at: Option<u64>,
    /// Service times at full speed.
    pub service: ServiceTime,
    /// Whether backends report utilisation (ORCA) with each response.
    pub reports: bool,
    /// Arrivals stop at this virtual time.
    pub duration: u64,
    /// Requests arriving before this are not counted.
    pub warmup: u64,
    /// Offered load.
    pub load: Load,
    /// Speed changes.
    pub speed: Speed,
    /// Backends whose share the table shows (the slowed ones).
    pub tagged: Vec<usize>,
    /// Warm-ups of the standby backends, which are the last `standby.len()` ones (S9): closed
    /// until an activation strategy wakes them, and not part of `capacity`.
    pub standby: Vec<u64>,
}

impl Scenario {
    /// Whether backend `b` is a standby one.
    pub fn is_standby(&self, b: usize) -> bool {
        b + self.standby.len() >= self.backends
    }

    /// Requests per second the initial non-standby backends can serve at their static
    /// speeds: the "capacity" loads are fractions of. Dynamic slow-downs (S3, S4, S8) do not
    /// lower it.
    pub fn capacity(&self) -> f64 {
        let statics = match &self.speed {
            Speed::Static(list) => list.clone(),
            _ => Vec::new(),
        };
        (0..self.initial)
            .filter(|&b| !self.is_standby(b))
            .map(|b| {
                let m = statics
                    .iter()
                    .find(|(i, _)| *i == b)
                    .map_or(1.0, |&(_, m)| m);
                LIMIT as f64 / (self.service.mean() * m / SEC as f64)
            })
            .sum()
    }

    /// Every speed change of the run in time order, drawn with `rng` where random (stall
    /// jitter), so that every policy meets the same changes in a seed.
    pub fn timeline(&self, rng: &mut SimRng) -> Vec<Change> {
        let end = self.duration + TIMEOUT;
        let mut out = Vec::new();
        let mut push = |at: u64, backend: usize, multiplier: f64| {
            out.push(Change {
                at,
                backend,
                multiplier,
            })
        };
        match &self.speed {
            Speed::Uniform => {}
            Speed::Static(list) => {
                for &(b, m) in list {
                    push(0, b, m);
                }
            }
            Speed::SquareWave {
                backends,
                factor,
                period,
                on,
            } => {
                for &(b, offset) in backends {
                    let mut start = offset % period;
                    if start + on > *period {
                        // The wave wraps: the run begins inside an "on" phase.
                        push(0, b, *factor);
                        push(start + on - period, b, 1.0);
                    }
                    while start < end {
                        push(start, b, *factor);
                        push(start + on, b, 1.0);
                        start += period;
                    }
                }
            }
            Speed::Stalls {
                backends,
                every,
                jitter,
                length,
            } => {
                for &b in backends {
                    let mut start = rng.between(0.2, 1.0) * *every as f64;
                    while (start as u64) < end {
                        push(start as u64, b, f64::INFINITY);
                        push(start as u64 + length, b, 1.0);
                        let j = *jitter as f64;
                        start += *every as f64 + rng.between(-j, j);
                    }
                }
            }
            Speed::WarmUp {
                backend,
                from,
                start,
                length,
            } => {
                let steps = (length / WARM_UP_STEP).max(1);
                for k in 0..=steps {
                    let m = from - (from - 1.0) * k as f64 / steps as f64;
                    push(start + k * WARM_UP_STEP, *backend, m);
                }
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then(a.backend.cmp(&b.backend)));
        out
    }

    /// A variant of this scenario with lognormal service times (same mean, σ = μ).
    fn lognormal(&self) -> Scenario {
        Scenario {
            key: format!("{}-ln", self.key),
            title: format!("{} — lognormal service", self.title),
            service: ServiceTime::lognormal(MEAN_SERVICE, MEAN_SERVICE),
            ..self.clone()
        }
    }

    /// Virtual seconds simulated (for ordering work, longest first).
    pub fn cost(&self) -> f64 {
        let mean_load = (0..100)
            .map(|k| self.load.at(self.duration / 100 * k, self.duration))
            .sum::<f64>()
            / 100.0;
        self.duration as f64 / SEC as f64 * mean_load * self.capacity()
    }
}

/// The scenarios and the variants the report adds. `quick` shortens every run for a
/// CI smoke test (the predictor then never sees enough history to find a season).
pub fn all(quick: bool) -> Vec<Scenario> {
    let (short, long, warmup) = if quick {
        (24 * SEC, 60 * SEC, 2 * SEC)
    } else {
        (120 * SEC, 300 * SEC, 10 * SEC)
    };
    let base = Scenario {
        key: String::new(),
        family: "",
        title: String::new(),
        backends: 10,
        initial: 10,
        join_at: None,
        service: ServiceTime::normal(MEAN_SERVICE),
        reports: true,
        duration: short,
        warmup,
        load: Load::Constant(0.7),
        speed: Speed::Uniform,
        tagged: Vec::new(),
        standby: Vec::new(),
    };
    let named = |key: &str, family: &'static str, title: &str| Scenario {
        key: key.into(),
        family,
        title: title.into(),
        ..base.clone()
    };
    let s1 = named("S1", "S1", "homogeneous, load 0.7");
    let s2a = Scenario {
        speed: Speed::Static((5..10).map(|b| (b, 2.0)).collect()),
        tagged: (5..10).collect(),
        ..named(
            "S2a",
            "S2",
            "static heterogeneity: 5 of 10 backends 2× slower, load 0.7",
        )
    };
    let s2b = Scenario {
        speed: Speed::Static(vec![(9, 10.0)]),
        tagged: vec![9],
        ..named(
            "S2b",
            "S2",
            "static heterogeneity: 1 of 10 backends 10× slower, load 0.7",
        )
    };
    let s3 = Scenario {
        duration: long,
        speed: Speed::SquareWave {
            backends: vec![(0, 0), (1, 6_700 * MS), (2, 13_300 * MS)],
            factor: 2.5,
            period: 20 * SEC,
            on: 10 * SEC,
        },
        tagged: vec![0, 1, 2],
        ..named(
            "S3",
            "S3",
            "periodic degradation: service ×2.5 for 10 s of every 20 s on backends 0, 1, 2 \
             (phases 0, 6.7, 13.3 s), load 0.7",
        )
    };
    let s3_blind = Scenario {
        key: "S3-noorca".into(),
        title: format!("{} — no utilisation reports", s3.title),
        reports: false,
        ..s3.clone()
    };
    let s4 = Scenario {
        speed: Speed::Stalls {
            backends: vec![3, 7],
            every: 10 * SEC,
            jitter: SEC,
            length: 200 * MS,
        },
        tagged: vec![3, 7],
        ..named(
            "S4",
            "S4",
            "GC-like stalls: 200 ms full stop every 10 s ± 1 s on backends 3 and 7, load 0.7",
        )
    };
    let s5 = Scenario {
        duration: long,
        load: Load::Sine {
            low: 0.3,
            high: 1.2,
            period: 120 * SEC,
        },
        ..named(
            "S5",
            "S5",
            "daily-like sinusoid: load 0.3–1.2, one \"day\" = 120 s",
        )
    };
    let spike_len = if quick { 4 * SEC } else { 20 * SEC };
    let s6 = Scenario {
        load: Load::Spike {
            base: 0.15,
            peak: 0.75,
            start: short / 2,
            length: spike_len,
        },
        ..named(
            "S6",
            "S6",
            &format!(
                "unannounced 5× spike: load 0.15, 0.75 for {} s from t = {} s",
                spike_len / SEC,
                short / 2 / SEC
            ),
        )
    };
    let s7 = Scenario {
        load: Load::Ramp {
            from: 0.75,
            to: 1.74,
        },
        ..named("S7", "S7", "ramp: load 0.75 → 1.74 over the run")
    };
    let (join, warm) = (short / 4, short / 4);
    let s8 = Scenario {
        backends: 11,
        join_at: Some(join),
        speed: Speed::WarmUp {
            backend: 10,
            from: 5.0,
            start: join,
            length: warm,
        },
        tagged: vec![10],
        ..named(
            "S8",
            "S8",
            &format!(
                "cold join: backend 10 joins at t = {} s, service 5× falling to 1× over {} s, \
                 load 0.7 of the first 10",
                join / SEC,
                warm / SEC
            ),
        )
    };
    let mut out = vec![
        s1.clone(),
        s2a.clone(),
        s2b.clone(),
        s3.clone(),
        s4,
        s5,
        s6,
        s7,
        s8,
    ];
    out.extend([&s1, &s2a, &s2b, &s3].map(Scenario::lognormal));
    out.push(s3_blind);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_counts_static_slowness() {
        let s = all(false);
        let by = |k: &str| s.iter().find(|x| x.key == k).unwrap().capacity();
        assert!((by("S1") - 8000.0).abs() < 1e-6);
        assert!((by("S2a") - 6000.0).abs() < 1e-6);
        assert!((by("S2b") - 7280.0).abs() < 1e-6);
        assert!((by("S8") - 8000.0).abs() < 1e-6);
    }

    #[test]
    fn loads_follow_their_shapes() {
        let sine = Load::Sine {
            low: 0.3,
            high: 1.2,
            period: 120 * SEC,
        };
        assert!((sine.at(30 * SEC, 0) - 1.2).abs() < 1e-9);
        assert!((sine.at(90 * SEC, 0) - 0.3).abs() < 1e-9);
        let ramp = Load::Ramp {
            from: 0.75,
            to: 1.74,
        };
        assert!((ramp.at(60 * SEC, 120 * SEC) - 1.245).abs() < 1e-9);
        let plateau = Load::Plateau {
            base: 0.6,
            peak: 1.4,
            start: 150 * SEC,
            rise: 30 * SEC,
            hold: 60 * SEC,
            fall: 30 * SEC,
        };
        let at = |t: u64| plateau.at(t * SEC, 300 * SEC);
        assert_eq!(
            (at(0), at(150), at(180), at(239), at(299)),
            (0.6, 0.6, 1.4, 1.4, 0.6)
        );
        assert!((at(165) - 1.0).abs() < 1e-9 && (at(255) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn timelines_are_ordered_and_shaped() {
        let s = all(false);
        let s3 = s.iter().find(|x| x.key == "S3").unwrap();
        let t = s3.timeline(&mut SimRng::new(1));
        assert!(t.windows(2).all(|w| w[0].at <= w[1].at));
        let on_b1: Vec<u64> = t
            .iter()
            .filter(|c| c.backend == 1 && c.multiplier > 1.0)
            .map(|c| c.at)
            .take(2)
            .collect();
        assert_eq!(on_b1, vec![6_700 * MS, 26_700 * MS]);
        let s4 = s.iter().find(|x| x.key == "S4").unwrap();
        let t = s4.timeline(&mut SimRng::new(1));
        let stalls: Vec<u64> = t
            .iter()
            .filter(|c| c.backend == 3 && c.multiplier.is_infinite())
            .map(|c| c.at)
            .collect();
        assert!(stalls
            .windows(2)
            .all(|w| (9 * SEC..=11 * SEC).contains(&(w[1] - w[0]))));
        let s8 = s.iter().find(|x| x.key == "S8").unwrap();
        let t = s8.timeline(&mut SimRng::new(1));
        assert_eq!(
            t.first().map(|c| (c.at, c.multiplier)),
            Some((30 * SEC, 5.0))
        );
        assert_eq!(
            t.last().map(|c| (c.at, c.multiplier)),
            Some((60 * SEC, 1.0))
        );
    }
}
