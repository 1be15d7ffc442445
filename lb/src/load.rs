//! Smoothed port-load model (SPEC section 4, paper eqs. 4 to 8).
//!
//! Loads are fractions in `[0, 1]` everywhere; only the balance degree WL
//! is in percent, because the paper's threshold 1.86 is.

use crate::LbError;

/// Index of each load factor in [`LoadConfig::weights`].
pub const FACTOR_UTILISATION: usize = 0;
pub const FACTOR_DROP: usize = 1;
pub const FACTOR_OVERFLOW: usize = 2;

/// Every parameter of the load model, with the paper's values as defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadConfig {
    /// Weights `lambda_j` of (utilisation, drop rate, queue-overflow rate);
    /// each in `[0, 1]`, summing to 1. Default `[0.84, 0.09, 0.07]`.
    pub weights: [f64; 3],
    /// Smoothing factor of eq. 6, in `[0, 1]`. Default 0.8.
    pub gamma: f64,
    /// Which term `gamma` weights (SPEC: the paper is ambiguous).
    /// `false` (default): `L(t) = gamma * L'(t) + (1 - gamma) * L(t-1)`,
    /// gamma weights the fresh sample. The balancer acts once per period
    /// on what the snapshot says; with the other reading a port's figure
    /// trails its real load by about `1 / (1 - gamma)` = 5 periods, new
    /// flows keep going to a port that filled up several periods ago, and
    /// the simulation in `tests/paper_claim.rs` measures a clearly worse
    /// spread (figures in `docs/load-balancing.md`). Flapping is prevented
    /// by flow stickiness and the WL hysteresis, not by slow loads.
    /// `true`: `L(t) = gamma * L(t-1) + (1 - gamma) * L'(t)`, eq. 6 as SPEC
    /// writes it, a heavy low-pass filter.
    pub gamma_weights_previous: bool,
    /// The expected load that replaces the measured mean `mu` (eq. 7), as
    /// a fraction; `None` (default) uses the mean of the available ports.
    pub expected_load: Option<f64>,
    /// Balance-degree trigger: balancing starts when WL (percent) exceeds
    /// it. Default 1.86, must be finite and >= 0.
    pub threshold: f64,
    /// Hysteresis as a fraction of `threshold`: once started, balancing
    /// stops only when WL falls below `threshold * (1 - hysteresis)`, so a
    /// WL hovering at the threshold does not switch it on and off every
    /// period. In `[0, 1]`, default 0.5: balancing that started goes on
    /// until the ports are about twice as even as the trigger.
    pub hysteresis: f64,
    /// A destination node's rx port whose load is within this margin
    /// (fraction) of the node's least-loaded port counts as least-loaded;
    /// flows split over those ports by hash, so that every sender does not
    /// converge on the single minimum between two table refreshes. 0 gives
    /// the paper's strict minimum. In `[0, 1]`, default 0.02.
    pub rx_margin: f64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            weights: [0.84, 0.09, 0.07],
            gamma: 0.8,
            gamma_weights_previous: false,
            expected_load: None,
            threshold: 1.86,
            hysteresis: 0.5,
            rx_margin: 0.02,
        }
    }
}

impl LoadConfig {
    /// Checks every parameter; the first violation is the error.
    pub fn validate(&self) -> Result<(), LbError> {
        for (index, &value) in self.weights.iter().enumerate() {
            if !value.is_finite() {
                return Err(LbError::NotFinite { name: "weights" });
            }
            if !(0.0..=1.0).contains(&value) {
                return Err(LbError::WeightOutOfRange { index, value });
            }
        }
        let sum: f64 = self.weights.iter().sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(LbError::WeightsSum { sum });
        }
        if !self.gamma.is_finite() {
            return Err(LbError::NotFinite { name: "gamma" });
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(LbError::GammaOutOfRange(self.gamma));
        }
        if let Some(expected) = self.expected_load {
            if !expected.is_finite() {
                return Err(LbError::NotFinite {
                    name: "expected_load",
                });
            }
            if !(0.0..=1.0).contains(&expected) {
                return Err(LbError::ExpectedLoadOutOfRange(expected));
            }
        }
        if !self.threshold.is_finite() {
            return Err(LbError::NotFinite { name: "threshold" });
        }
        if self.threshold < 0.0 {
            return Err(LbError::NegativeThreshold(self.threshold));
        }
        if !self.hysteresis.is_finite() {
            return Err(LbError::NotFinite { name: "hysteresis" });
        }
        if !(0.0..=1.0).contains(&self.hysteresis) {
            return Err(LbError::HysteresisOutOfRange(self.hysteresis));
        }
        if !self.rx_margin.is_finite() {
            return Err(LbError::NotFinite { name: "rx_margin" });
        }
        if !(0.0..=1.0).contains(&self.rx_margin) {
            return Err(LbError::RxMarginOutOfRange(self.rx_margin));
        }
        Ok(())
    }

    /// Whether balancing is on after a period with balance degree `wl`,
    /// given whether it was on before (the hysteresis rule).
    pub fn balancing_active(&self, was_active: bool, wl: f64) -> bool {
        if was_active {
            wl > self.threshold * (1.0 - self.hysteresis)
        } else {
            wl > self.threshold
        }
    }
}

/// One period's measurements of a port, each a fraction in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PortSample {
    /// Bits sent and received per second over the port's bandwidth
    /// (Ethernet framing overhead included).
    pub utilisation: f64,
    /// Dropped / (received + dropped).
    pub drop_rate: f64,
    /// Queue-full events / enqueue attempts.
    pub overflow_rate: f64,
}

/// Clamps a measured fraction into `[0, 1]`; NaN counts as 0 so one broken
/// counter cannot poison the smoothed state forever.
fn clamp_fraction(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

impl PortSample {
    /// The instantaneous load `L'(t) = sum_j lambda_j * f_j` (eq. 4, 5).
    pub fn instant_load(&self, weights: &[f64; 3]) -> f64 {
        let factors = [
            clamp_fraction(self.utilisation),
            clamp_fraction(self.drop_rate),
            clamp_fraction(self.overflow_rate),
        ];
        clamp_fraction(weights.iter().zip(factors).map(|(w, f)| w * f).sum())
    }
}

/// The smoothed load of one port (eq. 6).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PortLoad {
    value: f64,
    primed: bool,
}

impl PortLoad {
    /// Folds one sample in and returns the new smoothed load. The first
    /// sample is taken as is: starting from 0 would report an idle port for
    /// several periods and attract every new flow.
    pub fn update(&mut self, config: &LoadConfig, sample: &PortSample) -> f64 {
        let fresh = sample.instant_load(&config.weights);
        self.value = if !self.primed {
            fresh
        } else if config.gamma_weights_previous {
            config.gamma * self.value + (1.0 - config.gamma) * fresh
        } else {
            config.gamma * fresh + (1.0 - config.gamma) * self.value
        };
        self.primed = true;
        self.value
    }

    /// The current smoothed load (0 before the first sample).
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Forgets the history (a port that comes back up starts afresh).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The average load `mu` (eq. 7); 0 for no ports.
pub fn mean_load(loads: &[f64]) -> f64 {
    if loads.is_empty() {
        0.0
    } else {
        loads.iter().sum::<f64>() / loads.len() as f64
    }
}

/// The balance degree WL (eq. 8): population standard deviation of the
/// loads around `mu`, loads and result in percent; 0 for no ports.
pub fn balance_degree(loads: &[f64], mu: f64) -> f64 {
    if loads.is_empty() {
        return 0.0;
    }
    let variance = loads
        .iter()
        .map(|l| {
            let d = (l - mu) * 100.0;
            d * d
        })
        .sum::<f64>()
        / loads.len() as f64;
    variance.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_and_valid() {
        let c = LoadConfig::default();
        assert_eq!(c.weights, [0.84, 0.09, 0.07]);
        assert_eq!(c.gamma, 0.8);
        assert_eq!(c.threshold, 1.86);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_configs_are_errors() {
        let ok = LoadConfig::default();
        let cases: Vec<(LoadConfig, LbError)> = vec![
            (
                LoadConfig {
                    weights: [0.5, 0.4, 0.2],
                    ..ok
                },
                LbError::WeightsSum { sum: 1.1 },
            ),
            (
                LoadConfig {
                    weights: [1.5, -0.3, -0.2],
                    ..ok
                },
                LbError::WeightOutOfRange {
                    index: 0,
                    value: 1.5,
                },
            ),
            (
                LoadConfig {
                    weights: [f64::NAN, 0.0, 0.0],
                    ..ok
                },
                LbError::NotFinite { name: "weights" },
            ),
            (
                LoadConfig { gamma: 1.2, ..ok },
                LbError::GammaOutOfRange(1.2),
            ),
            (
                LoadConfig {
                    gamma: f64::INFINITY,
                    ..ok
                },
                LbError::NotFinite { name: "gamma" },
            ),
            (
                LoadConfig {
                    threshold: -1.0,
                    ..ok
                },
                LbError::NegativeThreshold(-1.0),
            ),
            (
                LoadConfig {
                    threshold: f64::NAN,
                    ..ok
                },
                LbError::NotFinite { name: "threshold" },
            ),
            (
                LoadConfig {
                    expected_load: Some(2.0),
                    ..ok
                },
                LbError::ExpectedLoadOutOfRange(2.0),
            ),
            (
                LoadConfig {
                    hysteresis: 1.5,
                    ..ok
                },
                LbError::HysteresisOutOfRange(1.5),
            ),
            (
                LoadConfig {
                    rx_margin: -0.1,
                    ..ok
                },
                LbError::RxMarginOutOfRange(-0.1),
            ),
        ];
        for (config, expected) in cases {
            match (config.validate().unwrap_err(), expected) {
                (LbError::WeightsSum { sum }, LbError::WeightsSum { sum: want }) => {
                    assert!((sum - want).abs() < 1e-9)
                }
                (got, want) => assert_eq!(got, want),
            }
        }
    }

    #[test]
    fn weights_sum_tolerance_is_1e9() {
        let c = LoadConfig {
            weights: [0.84 + 5e-10, 0.09, 0.07],
            ..LoadConfig::default()
        };
        assert!(c.validate().is_ok());
        let c = LoadConfig {
            weights: [0.84 + 5e-9, 0.09, 0.07],
            ..LoadConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn instant_load_is_weighted_sum() {
        let s = PortSample {
            utilisation: 0.5,
            drop_rate: 0.1,
            overflow_rate: 0.2,
        };
        let l = s.instant_load(&[0.84, 0.09, 0.07]);
        assert!((l - (0.42 + 0.009 + 0.014)).abs() < 1e-12);
        let broken = PortSample {
            utilisation: f64::NAN,
            drop_rate: 7.0,
            overflow_rate: -1.0,
        };
        assert!((broken.instant_load(&[0.84, 0.09, 0.07]) - 0.09).abs() < 1e-12);
    }

    #[test]
    fn gamma_weights_the_chosen_term() {
        let sample = |u| PortSample {
            utilisation: u,
            drop_rate: 0.0,
            overflow_rate: 0.0,
        };
        let weights = [1.0, 0.0, 0.0];
        let fresh = LoadConfig {
            weights,
            ..LoadConfig::default()
        };
        assert!(!fresh.gamma_weights_previous, "default weights the sample");
        let mut l = PortLoad::default();
        assert_eq!(l.update(&fresh, &sample(0.5)), 0.5, "first sample primes");
        let v = l.update(&fresh, &sample(1.0));
        assert!((v - (0.8 * 1.0 + 0.2 * 0.5)).abs() < 1e-12);

        let history = LoadConfig {
            gamma_weights_previous: true,
            ..fresh
        };
        let mut l = PortLoad::default();
        l.update(&history, &sample(0.5));
        let v = l.update(&history, &sample(1.0));
        assert!((v - (0.8 * 0.5 + 0.2 * 1.0)).abs() < 1e-12);
        l.reset();
        assert_eq!(l.value(), 0.0);
    }

    #[test]
    fn mean_and_balance_degree() {
        let loads = [0.10, 0.20, 0.30, 0.40];
        let mu = mean_load(&loads);
        assert!((mu - 0.25).abs() < 1e-12);
        // Population std-dev of 10, 20, 30, 40 percent = sqrt(125).
        assert!((balance_degree(&loads, mu) - 125f64.sqrt()).abs() < 1e-9);
        assert_eq!(balance_degree(&[0.3; 8], 0.3), 0.0);
        assert_eq!(mean_load(&[]), 0.0);
        assert_eq!(balance_degree(&[], 0.0), 0.0);
    }

    #[test]
    fn hysteresis_keeps_balancing_on_near_threshold() {
        let c = LoadConfig::default();
        assert!(!c.balancing_active(false, 1.8));
        assert!(c.balancing_active(false, 1.9));
        assert!(c.balancing_active(true, 1.0), "stays on above 0.93");
        assert!(!c.balancing_active(true, 0.9));
    }
}
