//! Deterministic noise for the models' unit tests: the policies' splitmix64 driving
//! Box–Muller.

use crate::sampling::Rng;

/// A reproducible source of uniform and Gaussian noise.
pub(crate) struct Noise {
    rng: Rng,
}

impl Noise {
    /// A source whose whole sequence is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
        }
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (mean 0, standard deviation 1).
    pub(crate) fn gaussian(&mut self) -> f64 {
        let radius = (-2.0 * self.uniform().ln()).sqrt();
        radius * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::Noise;

    #[test]
    fn gaussian_has_unit_moments() {
        let mut noise = Noise::new(7);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| noise.gaussian()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
