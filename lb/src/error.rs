use thiserror::Error;

/// Everything that can be configured wrongly in this crate.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LbError {
    #[error("Toeplitz key of {key_len} bytes is too short for {max_input_len}-byte inputs (needs input + 4)")]
    KeyTooShort {
        key_len: usize,
        max_input_len: usize,
    },
    #[error("parameter {name} is not finite")]
    NotFinite { name: &'static str },
    #[error("load weights sum to {sum}, expected 1")]
    WeightsSum { sum: f64 },
    #[error("load weight {index} = {value} is outside [0, 1]")]
    WeightOutOfRange { index: usize, value: f64 },
    #[error("gamma = {0} is outside [0, 1]")]
    GammaOutOfRange(f64),
    #[error("threshold = {0} is negative")]
    NegativeThreshold(f64),
    #[error("expected load = {0} is outside [0, 1]")]
    ExpectedLoadOutOfRange(f64),
    #[error("hysteresis = {0} is outside [0, 1]")]
    HysteresisOutOfRange(f64),
    #[error("port count {0} is outside 1..=16")]
    PortCount(usize),
    #[error("port {port} does not exist (port count {count})")]
    NoSuchPort { port: usize, count: usize },
    #[error("bucket count {0} is not a power of two in 16..=65536")]
    BucketCount(usize),
    #[error("{got} samples for {expected} ports")]
    SampleCount { got: usize, expected: usize },
    #[error("flow load bounds [{min}, {max}] are not 0 <= min <= max <= 1")]
    FlowLoadRange { min: f64, max: f64 },
    #[error("charge carry = {0} is outside [0, 1]")]
    ChargeCarryOutOfRange(f64),
    #[error("rx margin = {0} is outside [0, 1]")]
    RxMarginOutOfRange(f64),
}
