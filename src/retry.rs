//! Capped exponential backoff with jitter, for every "try again later" in the pipeline.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The default for talking to a service: 100 ms doubling up to 10 s.
    pub fn service() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// The next delay: base·2^attempt capped at max, then "equal jitter" (half fixed, half random), so
    /// many clients that failed together don't retry together.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        let capped = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = capped / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    /// The same backoff as if `attempts` delays had been taken already.
    pub fn after(mut self, attempts: u32) -> Self {
        self.attempt = attempts;
        self
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_with_jitter_in_range() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let bounds = [100, 200, 400, 800, 1000, 1000, 1000];
        for max_ms in bounds {
            let d = b.next_delay();
            let max = Duration::from_millis(max_ms);
            assert!(
                d >= max / 2 && d <= max,
                "{d:?} not within [{:?}, {max:?}]",
                max / 2
            );
        }
        assert_eq!(b.attempts(), bounds.len() as u32);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
