//! Distributions the simulator draws from: exponential inter-arrival times and the service
//! times of requests (a truncated normal and a lognormal with the same mean).

use std::f64::consts::PI;

use crate::rng::SimRng;

/// An exponential draw with the given mean.
pub fn exponential(rng: &mut SimRng, mean: f64) -> f64 {
    -rng.open_unit().ln() * mean
}

/// A standard normal draw (Box-Muller, one of the pair; the other is not kept so that a
/// draw never depends on what was drawn before).
pub fn standard_normal(rng: &mut SimRng) -> f64 {
    let radius = (-2.0 * rng.open_unit().ln()).sqrt();
    radius * (2.0 * PI * rng.unit()).cos()
}

/// Standard normal density.
fn phi(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Standard normal distribution function, from a Chebyshev fit of erfc (fractional error
/// below 1.2e-7 everywhere; Numerical Recipes' `erfcc`).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, c| acc * t + c);
    let erfc = t * (-z * z + poly).exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// How long a request needs at a backend running at full speed, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Normal(m, s), draws below zero resampled (a truncated normal; no atom at zero).
    TruncatedNormal {
        /// Location of the untruncated normal.
        m: f64,
        /// Scale of the untruncated normal.
        s: f64,
    },
    /// exp(Normal(mu, sigma)).
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
}

impl ServiceTime {
    /// The Normal(μ, σ = μ) truncated at zero by resampling. Resampling raises the
    /// mean to 1.288 m, so the location is scaled down (m = 0.777 μ, σ = m) to keep the mean
    /// exactly `mean`: capacity and load stay what the scenario says.
    pub fn normal(mean: f64) -> Self {
        let unit = Self::TruncatedNormal { m: 1.0, s: 1.0 }.mean();
        let m = mean / unit;
        Self::TruncatedNormal { m, s: m }
    }

    /// A lognormal with this mean and standard deviation.
    pub fn lognormal(mean: f64, sd: f64) -> Self {
        let sigma2 = (1.0 + (sd / mean).powi(2)).ln();
        Self::LogNormal {
            mu: mean.ln() - sigma2 / 2.0,
            sigma: sigma2.sqrt(),
        }
    }

    /// One draw (always > 0 for the normal, >= 0 in principle for both).
    pub fn sample(&self, rng: &mut SimRng) -> f64 {
        match *self {
            Self::TruncatedNormal { m, s } => loop {
                let x = m + s * standard_normal(rng);
                if x > 0.0 {
                    return x;
                }
            },
            Self::LogNormal { mu, sigma } => (mu + sigma * standard_normal(rng)).exp(),
        }
    }

    /// Exact mean.
    pub fn mean(&self) -> f64 {
        match *self {
            Self::TruncatedNormal { m, s } => m + s * Self::inverse_mills(-m / s),
            Self::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
        }
    }

    /// Exact standard deviation.
    pub fn sd(&self) -> f64 {
        match *self {
            Self::TruncatedNormal { m, s } => {
                let a = -m / s;
                let l = Self::inverse_mills(a);
                s * (1.0 + a * l - l * l).sqrt()
            }
            Self::LogNormal { mu, sigma } => {
                ((sigma * sigma).exp_m1() * (2.0 * mu + sigma * sigma).exp()).sqrt()
            }
        }
    }

    /// φ(a) / (1 − Φ(a)): the shift of the mean of a normal truncated below at `a`.
    fn inverse_mills(a: f64) -> f64 {
        phi(a) / (1.0 - normal_cdf(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(n: usize, mut draw: impl FnMut() -> f64) -> (f64, f64) {
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let x = draw();
            sum += x;
            sq += x * x;
        }
        let mean = sum / n as f64;
        (mean, (sq / n as f64 - mean * mean).sqrt())
    }

    #[test]
    fn normal_cdf_matches_tables() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-7);
        assert!((normal_cdf(-1.96) - 0.024_997_895).abs() < 1e-7);
    }

    #[test]
    fn exponential_has_its_mean_and_sd() {
        let mut rng = SimRng::new(3);
        let (mean, sd) = moments(1_000_000, || exponential(&mut rng, 10.0));
        assert!((mean - 10.0).abs() < 0.05, "{mean}");
        assert!((sd - 10.0).abs() < 0.1, "{sd}");
    }

    #[test]
    fn standard_normal_has_mean_zero_and_sd_one() {
        let mut rng = SimRng::new(4);
        let (mean, sd) = moments(1_000_000, || standard_normal(&mut rng));
        assert!(mean.abs() < 0.005, "{mean}");
        assert!((sd - 1.0).abs() < 0.005, "{sd}");
    }

    #[test]
    fn truncated_normal_keeps_the_requested_mean() {
        let d = ServiceTime::normal(10.0);
        assert!((d.mean() - 10.0).abs() < 1e-6, "{}", d.mean());
        // Normal(1, 1) resampled below 0: mean 1.2876, sd 0.7935; scaled to mean 10.
        assert!((d.sd() - 10.0 * 0.7935 / 1.2876).abs() < 0.01, "{}", d.sd());
        let mut rng = SimRng::new(5);
        let (mean, sd) = moments(1_000_000, || {
            let x = d.sample(&mut rng);
            assert!(x > 0.0);
            x
        });
        assert!((mean - d.mean()).abs() < 0.03, "{mean}");
        assert!((sd - d.sd()).abs() < 0.03, "{sd} vs {}", d.sd());
    }

    #[test]
    fn lognormal_has_the_requested_mean_and_sd() {
        let d = ServiceTime::lognormal(10.0, 10.0);
        assert!((d.mean() - 10.0).abs() < 1e-9);
        assert!((d.sd() - 10.0).abs() < 1e-9);
        let mut rng = SimRng::new(6);
        let (mean, sd) = moments(2_000_000, || d.sample(&mut rng));
        assert!((mean - 10.0).abs() < 0.05, "{mean}");
        // Heavy tail: the sample sd converges slowly.
        assert!((sd - 10.0).abs() < 0.5, "{sd}");
    }
}
