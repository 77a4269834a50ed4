//! A datastream's plausible range: the values a sensor can really report
//! (a PM sensor 0 to 1000 µg/m³, a thermometer -40 to 85 °C). A reading
//! outside is rejected as `out_of_range`; either bound may be open.

use serde::{Deserialize, Serialize};

/// Inclusive bounds, each optional; `min <= max` when both are given.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PlausibleRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Why bounds do not make a range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    #[error("min and max must be finite numbers")]
    NotFinite,
    #[error("min ({min}) is greater than max ({max})")]
    Inverted { min: f64, max: f64 },
}

impl PlausibleRange {
    /// Checks that the bounds are finite and in order.
    pub fn new(min: Option<f64>, max: Option<f64>) -> Result<Self, RangeError> {
        if min.is_some_and(|v| !v.is_finite()) || max.is_some_and(|v| !v.is_finite()) {
            return Err(RangeError::NotFinite);
        }
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(RangeError::Inverted { min, max });
            }
        }
        Ok(Self { min, max })
    }

    /// No bound at all: nothing is checked.
    pub fn is_open(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

impl std::fmt::Display for PlausibleRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(min), Some(max)) => write!(f, "{min} to {max}"),
            (Some(min), None) => write!(f, "at least {min}"),
            (None, Some(max)) => write!(f, "at most {max}"),
            (None, None) => f.write_str("any value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_may_be_open() {
        let pm = PlausibleRange::new(Some(0.0), Some(1000.0)).unwrap();
        assert!(pm.contains(0.0) && pm.contains(1000.0) && !pm.contains(-0.1) && !pm.contains(1000.5));
        let above = PlausibleRange::new(Some(-40.0), None).unwrap();
        assert!(above.contains(1e9) && !above.contains(-41.0));
        assert!(PlausibleRange::default().contains(f64::MAX));
    }

    #[test]
    fn inverted_or_infinite_bounds_are_refused() {
        assert_eq!(PlausibleRange::new(Some(2.0), Some(1.0)), Err(RangeError::Inverted { min: 2.0, max: 1.0 }));
        assert_eq!(PlausibleRange::new(Some(f64::NAN), None), Err(RangeError::NotFinite));
    }
}
