//! The simulator's own pseudo-random numbers: xoshiro256** (Blackman and Vigna), seeded by
//! expanding a 64-bit seed with splitmix64.
//!
//! Every random choice the simulator makes comes from one of these, each seeded from the
//! run's seed and a fixed stream number, so a seed reproduces a run bit for bit.

/// A xoshiro256** generator: fast, 256 bits of state, good enough for Monte Carlo.
#[derive(Debug, Clone)]
pub struct SimRng {
    s: [u64; 4],
}

/// One step of splitmix64: advances `state` and returns a well-mixed output.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SimRng {
    /// A generator whose whole state is derived from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix(&mut state);
        }
        if s == [0; 4] {
            // The all-zero state is the one fixed point of xoshiro; splitmix never yields
            // four zeros in a row, but be explicit about it.
            s[0] = 1;
        }
        SimRng { s }
    }

    /// An independent-looking generator for stream `stream` of run `seed`.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut mix = seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03);
        Self::new(splitmix(&mut mix))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    pub fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) for n > 0 (multiply-high; the bias is below 2^-32 for the
    /// small n used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_different_seed_different_sequence() {
        let (mut a, mut b, mut c) = (SimRng::new(7), SimRng::new(7), SimRng::new(8));
        let xa: Vec<u64> = (0..10).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..10).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..10).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        let mut s1 = SimRng::stream(7, 1);
        let mut s2 = SimRng::stream(7, 2);
        assert_ne!(s1.next_u64(), s2.next_u64());
    }

    #[test]
    fn unit_has_the_uniform_mean_and_variance() {
        let mut rng = SimRng::new(1);
        let n = 1_000_000;
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            sum += u;
            sq += u * u;
        }
        let mean = sum / n as f64;
        let var = sq / n as f64 - mean * mean;
        assert!((mean - 0.5).abs() < 0.002, "{mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.001, "{var}");
    }

    #[test]
    fn open_unit_never_returns_zero_and_below_is_uniform() {
        let mut rng = SimRng::new(2);
        let mut counts = [0u32; 10];
        for _ in 0..200_000 {
            assert!(rng.open_unit() > 0.0);
            counts[rng.below(10)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (19_000..21_000).contains(&c)),
            "{counts:?}"
        );
    }
}
