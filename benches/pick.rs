//! Cost of one routing pick per policy, beside a baseline measured in the same run: a bare
//! atomic counter modulo the member count (the least any pick can cost).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use augur_predictor::{
    BackendId, BuildPolicy, Forecast, Member, PickContext, Policy, PolicyKind, PredictiveParams,
    RoundRobin, Snapshot, Tried,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn members(n: u32) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            weight: 1 + i % 4,
            cost: f64::from(i % 3) * 0.2,
            ..Member::new(i as BackendId)
        })
        .collect()
}

fn snapshot(n: u32) -> Snapshot {
    Snapshot {
        version: 1,
        built_at_nanos: 0,
        backends: (0..n)
            .map(|i| Forecast {
                latency_ms: 5.0 + f64::from(i % 7),
                observed_latency_ms: 5.0,
                utilization: f64::from(i % 10) / 10.0,
                ..Forecast::default()
            })
            .collect(),
    }
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3u32, 16, 64, 100] {
        let m = members(n);
        let snap = snapshot(n);
        let cx = PickContext {
            now_nanos: 1_000_000,
            snapshot: &snap,
            ignore_health: false,
            slow_start_nanos: 0,
        };
        let baseline = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("baseline_atomic_mod", n), &m, |b, m| {
            b.iter(|| black_box(baseline.fetch_add(1, Ordering::Relaxed) % m.len()))
        });
        for (seed, kind) in (1..).zip(PolicyKind::ALL) {
            let policy = kind.build(&m, PredictiveParams::default(), seed);
            group.bench_with_input(BenchmarkId::new(policy.name(), n), &m, |b, m| {
                b.iter(|| black_box(policy.pick(black_box(&cx), black_box(m), &Tried::default())))
            });
        }
        let rr = RoundRobin::new(&m);
        let mut tried = Tried::default();
        tried.insert(0);
        group.bench_with_input(BenchmarkId::new("round_robin_retry", n), &m, |b, m| {
            b.iter(|| black_box(rr.pick(&cx, black_box(m), &tried)))
        });
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
