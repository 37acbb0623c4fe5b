//! Every "try again later" in the pipeline: a named `RetryPolicy` (capped exponential backoff with
//! jitter) and the one loop that applies it, `RetryPolicy::run`. What is worth retrying is decided by
//! the caller, error by error (`Next`), next to the error type that knows.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait the next backoff delay, then try again.
    Retry,
    /// Give up: the error is returned to the caller.
    Stop,
}

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Talking to a service (Kafka, registry, sinks, the events API): 100 ms doubling up to 10 s.
    pub const SERVICE: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.base, self.max)
    }

    /// Runs `attempt` until it succeeds or `on_error` answers `Stop` for its error. `on_error` hears
    /// every failure with the number of failures before it (to log the first and every n-th).
    pub async fn run<T, E, Fut>(
        &self,
        mut attempt: impl FnMut() -> Fut,
        mut on_error: impl FnMut(&E, u32) -> Next,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = self.backoff();
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => match on_error(&e, backoff.attempts()) {
                    Next::Stop => return Err(e),
                    Next::Retry => tokio::time::sleep(backoff.next_delay()).await,
                },
            }
        }
    }
}

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

    #[tokio::test(start_paused = true)]
    async fn run_retries_until_success_or_stop() {
        let policy = RetryPolicy::SERVICE;
        let mut calls = 0;
        let ok: Result<u32, &str> = policy
            .run(
                || {
                    calls += 1;
                    let n = calls;
                    async move { if n < 4 { Err("down") } else { Ok(n) } }
                },
                |_, _| Next::Retry,
            )
            .await;
        assert_eq!(ok, Ok(4));
        let mut seen = Vec::new();
        let stopped: Result<(), &str> = policy
            .run(
                || async { Err("refused") },
                |e, failures| {
                    seen.push((*e, failures));
                    if failures == 2 { Next::Stop } else { Next::Retry }
                },
            )
            .await;
        assert_eq!(stopped, Err("refused"));
        assert_eq!(seen, vec![("refused", 0), ("refused", 1), ("refused", 2)]);
    }
}
