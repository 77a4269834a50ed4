//! Deterministic noise: pseudo-random numbers that are a pure function of
//! (seed, thing, time) instead of a generator's state.
//!
//! That is what makes the backfill repeatable: a restarted simulator computes
//! exactly the same value for the same datastream and time, whatever it
//! published before, so ingest's de-duplication (datastream + time) sees
//! identical readings instead of conflicting ones.

/// SplitMix64's finaliser: a cheap, well-mixing 64-bit permutation.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of `text`: a stable hash (std's hashers may change between Rust
/// releases, which would change the published history).
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}

/// A source of noise for one (seed, thing, quantity).
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    state: u64,
}

impl Noise {
    pub fn new(seed: u64, key: u64) -> Self {
        Self { state: mix(mix(seed) ^ key) }
    }

    /// An independent source for another quantity of the same thing.
    pub fn stream(self, salt: &str) -> Self {
        Self { state: mix(self.state ^ stable_hash(salt)) }
    }

    fn bits(self, index: i64, lane: u64) -> u64 {
        // Reinterpreting the sign bit is intended: negative indexes are as good as any.
        mix(mix(self.state ^ lane.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index as u64)
    }

    /// Uniform in `[0, 1)` for `index`.
    pub fn uniform(self, index: i64) -> f64 {
        (self.bits(index, 1) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal for `index` (Box–Muller), clamped to ±4 so that no
    /// single reading is absurd.
    pub fn gaussian(self, index: i64) -> f64 {
        let u1 = ((self.bits(index, 2) >> 11) as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
        let u2 = self.uniform(index);
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        z.clamp(-4.0, 4.0)
    }

    /// Smooth noise: standard normal values at knots `period_secs` apart,
    /// cosine-interpolated in between (weather, slow drifts).
    pub fn smooth(self, t_secs: f64, period_secs: f64) -> f64 {
        let position = t_secs / period_secs;
        let knot = position.floor();
        let fraction = position - knot;
        // Each period is its own stream, so two scales of drift are independent.
        let salted = Self { state: mix(self.state ^ period_secs.to_bits()) };
        let (a, b) = (salted.gaussian(knot as i64), salted.gaussian(knot as i64 + 1));
        let weight = (1.0 - (std::f64::consts::PI * fraction).cos()) / 2.0;
        a + (b - a) * weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_numbers_other_seeds_other_numbers() {
        let a = Noise::new(42, stable_hash("thing"));
        assert_eq!(a.gaussian(7), Noise::new(42, stable_hash("thing")).gaussian(7));
        assert_ne!(a.gaussian(7), Noise::new(43, stable_hash("thing")).gaussian(7));
        assert_ne!(a.gaussian(7), a.stream("x").gaussian(7));
    }

    #[test]
    fn gaussian_has_roughly_zero_mean_and_unit_variance() {
        let noise = Noise::new(1, 2);
        let samples: Vec<f64> = (0..20_000).map(|i| noise.gaussian(i)).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.1, "variance {variance}");
        let uniform_ok = (0..1000).map(|i| noise.uniform(i)).all(|u| (0.0..1.0).contains(&u));
        assert!(uniform_ok);
    }

    #[test]
    fn smooth_noise_is_continuous() {
        let noise = Noise::new(5, 6);
        for step in 0..1000 {
            let t = f64::from(step) * 60.0;
            let jump = (noise.smooth(t + 1.0, 3600.0) - noise.smooth(t, 3600.0)).abs();
            assert!(jump < 0.01, "jump {jump} at {t}");
        }
    }
}
