//! One simulated backend: at most `limit` requests in service at once, an unbounded FIFO
//! queue behind them, and a speed the scenario changes over time.
//!
//! Speed is modelled with a work clock: a request needs `work` nanoseconds of service at full
//! speed; the backend's clock advances at `rate` = 1 / multiplier work-nanoseconds per
//! nanosecond (0 during a stall), and a request in service completes when the clock reaches
//! the value it started at plus its work. So a slow-down or a stall that begins while a
//! request is in service stretches that request too, as it would on a real machine.

use std::collections::VecDeque;

/// A request's slot in the simulator's request table.
pub type Slot = u32;

/// One backend's queueing state.
#[derive(Debug)]
pub struct Backend {
    limit: usize,
    rate: f64,
    work: f64,
    updated_at: u64,
    in_service: Vec<(Slot, f64)>,
    queue: VecDeque<(Slot, f64)>,
    generation: u32,
}

impl Backend {
    /// An idle backend at full speed serving at most `limit` requests at once.
    pub fn new(limit: usize) -> Self {
        Backend {
            limit: limit.max(1),
            rate: 1.0,
            work: 0.0,
            updated_at: 0,
            in_service: Vec::with_capacity(limit.max(1)),
            queue: VecDeque::new(),
            generation: 0,
        }
    }

    fn advance(&mut self, now: u64) {
        if now > self.updated_at {
            self.work += self.rate * (now - self.updated_at) as f64;
            self.updated_at = now;
        }
    }

    /// From `now` on, service takes `multiplier` times as long (infinity: a full stop).
    pub fn set_multiplier(&mut self, now: u64, multiplier: f64) {
        self.advance(now);
        self.rate = if multiplier.is_finite() && multiplier > 0.0 {
            1.0 / multiplier
        } else {
            0.0
        };
    }

    /// Whether a request could start service now.
    pub fn has_room(&self) -> bool {
        self.in_service.len() < self.limit
    }

    /// Puts a request into service at `now` (the caller checked `has_room`).
    pub fn start(&mut self, now: u64, slot: Slot, work: f64) {
        self.advance(now);
        debug_assert!(self.has_room());
        self.in_service.push((slot, self.work + work));
    }

    /// Puts a request at the back of the queue.
    pub fn enqueue(&mut self, slot: Slot, work: f64) {
        self.queue.push_back((slot, work));
    }

    /// Takes the request at the head of the queue.
    pub fn pop_queued(&mut self) -> Option<(Slot, f64)> {
        self.queue.pop_front()
    }

    /// Removes and returns the request in service that completes first (the one a valid
    /// completion event at `now` is for).
    pub fn finish_next(&mut self, now: u64) -> Option<Slot> {
        self.advance(now);
        let (i, _) = self
            .in_service
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))?;
        Some(self.in_service.swap_remove(i).0)
    }

    /// When the earliest request in service completes if nothing changes; `None` when idle
    /// or stalled.
    pub fn next_completion(&self) -> Option<u64> {
        if self.rate <= 0.0 {
            return None;
        }
        let end = self
            .in_service
            .iter()
            .map(|&(_, end)| end)
            .min_by(f64::total_cmp)?;
        let wait = ((end - self.work) / self.rate).max(0.0).ceil();
        Some(self.updated_at + wait as u64)
    }

    /// Invalidates any completion event scheduled so far and returns the next one to
    /// schedule with its generation (events carrying an older generation are stale).
    pub fn reschedule(&mut self) -> (Option<u64>, u32) {
        self.generation = self.generation.wrapping_add(1);
        (self.next_completion(), self.generation)
    }

    /// The generation of the currently valid completion event.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Requests in service.
    pub fn in_service(&self) -> usize {
        self.in_service.len()
    }

    #[cfg(test)]
    /// Requests waiting (including ones their client has given up on but which have not
    /// reached the head yet).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::{exponential, ServiceTime};
    use crate::rng::SimRng;

    const MS: f64 = 1e6;

    /// Runs Poisson arrivals into one backend and returns the mean time in system (ms).
    fn mean_sojourn(limit: usize, load: f64, mut work: impl FnMut(&mut SimRng) -> f64) -> f64 {
        let mut rng = SimRng::new(11);
        let mut b = Backend::new(limit);
        let mean_service = 10.0 * MS;
        let mean_gap = mean_service / (load * limit as f64);
        let mut arrived_at: Vec<u64> = Vec::new();
        let mut next_arrival = exponential(&mut rng, mean_gap) as u64;
        let (mut total, mut done) = (0.0, 0u64);
        while done < 400_000 {
            let completion = b.next_completion();
            if completion.is_some_and(|c| c <= next_arrival) {
                let now = completion.unwrap_or(next_arrival);
                let slot = b.finish_next(now).unwrap();
                total += (now - arrived_at[slot as usize]) as f64;
                done += 1;
                if let Some((s, w)) = b.pop_queued() {
                    b.start(now, s, w);
                }
            } else {
                let now = next_arrival;
                let slot = arrived_at.len() as Slot;
                arrived_at.push(now);
                let w = work(&mut rng);
                if b.has_room() {
                    b.start(now, slot, w);
                } else {
                    b.enqueue(slot, w);
                }
                next_arrival = now + exponential(&mut rng, mean_gap) as u64;
            }
        }
        total / done as f64 / MS
    }

    #[test]
    fn mm1_at_half_load_takes_twice_the_service_time() {
        // M/M/1: time in system = μ / (1 − ρ) = 20 ms at ρ = 0.5.
        let t = mean_sojourn(1, 0.5, |rng| exponential(rng, 10.0 * MS));
        assert!((t / 20.0 - 1.0).abs() < 0.1, "{t} ms");
    }

    #[test]
    fn mg1_with_the_truncated_normal_follows_pollaczek_khinchine() {
        // W = μ + ρ E[S²] / (2 μ (1 − ρ)).
        let d = ServiceTime::normal(10.0 * MS);
        let (mu, sd, rho) = (10.0, d.sd() / MS, 0.7);
        let expected = mu + rho * (sd * sd + mu * mu) / (2.0 * mu * (1.0 - rho));
        let t = mean_sojourn(1, rho, |rng| d.sample(rng));
        assert!((t / expected - 1.0).abs() < 0.1, "{t} ms vs {expected}");
    }

    #[test]
    fn mmc_matches_erlang_c() {
        // c = 8 at ρ = 0.7: W = μ + C(c, a) μ / (c (1 − ρ)), a = cρ.
        let (c, rho, mu) = (8usize, 0.7f64, 10.0);
        let a = c as f64 * rho;
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..c {
            term *= a / k as f64;
            sum += term;
        }
        let last = term * a / c as f64 / (1.0 - rho);
        let erlang_c = last / (sum + last);
        let expected = mu + erlang_c * mu / (c as f64 * (1.0 - rho));
        let t = mean_sojourn(c, rho, |rng| exponential(rng, 10.0 * MS));
        assert!((t / expected - 1.0).abs() < 0.1, "{t} ms vs {expected}");
    }

    #[test]
    fn limit_queues_the_excess_in_order() {
        let mut b = Backend::new(2);
        for slot in 0..4 {
            if b.has_room() {
                b.start(0, slot, 10.0 * MS);
            } else {
                b.enqueue(slot, 10.0 * MS);
            }
        }
        assert_eq!((b.in_service(), b.queued()), (2, 2));
        assert_eq!(b.next_completion(), Some(10_000_000));
        assert!(b.finish_next(10_000_000).is_some());
        assert_eq!(b.pop_queued().map(|q| q.0), Some(2));
    }

    #[test]
    fn slow_downs_and_stalls_stretch_requests_in_service() {
        let mut b = Backend::new(1);
        b.start(0, 0, 10.0 * MS);
        // Twice as slow from 5 ms: the remaining 5 ms of work take 10 ms.
        b.set_multiplier(5_000_000, 2.0);
        assert_eq!(b.next_completion(), Some(15_000_000));
        // A full stop from 7 ms to 12 ms: nothing completes while stalled, then 5 ms later.
        b.set_multiplier(7_000_000, f64::INFINITY);
        assert_eq!(b.next_completion(), None);
        b.set_multiplier(12_000_000, 2.0);
        assert_eq!(b.next_completion(), Some(20_000_000));
        let (at, generation) = b.reschedule();
        assert_eq!((at, generation), (Some(20_000_000), 1));
        assert_eq!(b.finish_next(20_000_000), Some(0));
        assert_eq!(b.next_completion(), None);
    }
}
