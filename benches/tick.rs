//! Cost of one predictor tick over 1,000 backends (issue target: at most 1 ms), beside a
//! baseline measured in the same run: the same observations only drained and summed.

use std::hint::black_box;

use augur_predictor::{Observation, Outcome, Predictor, PredictorSettings};
use criterion::{criterion_group, criterion_main, Criterion};

const BACKENDS: u32 = 1000;
const PER_TICK: u32 = 5; // observations per backend per tick
const TICK: u64 = 100_000_000;

fn observation(backend: u32, t: u64, k: u32) -> Observation {
    let ms = 5.0 + f64::from(backend % 7) + f64::from(k) * 0.1 + (t % 10) as f64 * 0.05;
    Observation {
        backend,
        at_nanos: t * TICK,
        first_byte_nanos: (ms * 1e6) as u64,
        total_nanos: (ms * 1e6) as u64,
        outcome: Outcome::Ok,
        bytes: 100,
        reported_utilization: Some(0.5),
    }
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_1000_backends");
    // Warm the models past season detection's first run (600 ticks of history).
    let mut predictor = Predictor::new(PredictorSettings::default());
    let mut t = 0u64;
    for _ in 0..700 {
        for b in 0..BACKENDS {
            predictor.observe(&observation(b, t, 0));
        }
        black_box(predictor.tick(t * TICK));
        t += 1;
    }
    group.bench_function("baseline_drain_only", |bench| {
        bench.iter(|| {
            let mut sum = 0u64;
            for b in 0..BACKENDS {
                for k in 0..PER_TICK {
                    sum = sum.wrapping_add(black_box(observation(b, t, k)).total_nanos);
                }
            }
            black_box(sum)
        })
    });
    group.bench_function("predictor_tick", |bench| {
        bench.iter(|| {
            for b in 0..BACKENDS {
                for k in 0..PER_TICK {
                    predictor.observe(&observation(b, t, k));
                }
            }
            t += 1;
            black_box(predictor.tick(t * TICK))
        })
    });
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
