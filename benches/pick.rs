//! Cost of one routing pick per policy, beside a baseline measured in the same run: a bare
//! atomic counter modulo the member count (the least any pick can cost).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use augur_predictor::{LeastConn, Live, Member, Policy, RoundRobin, Tried};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn members(n: u32) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            weight: 1 + i % 4,
            live: Arc::new(Live::default()),
        })
        .collect()
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3u32, 16, 100] {
        let m = members(n);
        let baseline = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("baseline_atomic_mod", n), &m, |b, m| {
            b.iter(|| black_box(baseline.fetch_add(1, Ordering::Relaxed) % m.len()))
        });
        let rr = RoundRobin::new(&m);
        group.bench_with_input(BenchmarkId::new("round_robin", n), &m, |b, m| {
            b.iter(|| black_box(rr.pick(black_box(m), &Tried::default())))
        });
        let lc = LeastConn::new();
        group.bench_with_input(BenchmarkId::new("least_conn", n), &m, |b, m| {
            b.iter(|| black_box(lc.pick(black_box(m), &Tried::default())))
        });
        let mut tried = Tried::default();
        tried.insert(0);
        group.bench_with_input(BenchmarkId::new("round_robin_retry", n), &m, |b, m| {
            b.iter(|| black_box(rr.pick(black_box(m), &tried)))
        });
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
