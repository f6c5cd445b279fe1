//! Admission limits: per-partner event rates (in process, `governor`).

mod rate;

pub use rate::{RateDecision, RateLimiter};
