//! How many times a run is retried, and how long it waits in between.

use std::time::Duration;

/// The retry settings of a task or flow, as written in `#[task(retries = …, retry_delay = …)]`.
///
/// ```
/// use flowcore::RetryPolicy;
/// use std::time::Duration;
///
/// const DELAYS: &[Duration] = &[Duration::from_secs(1), Duration::from_secs(10)];
/// let policy = RetryPolicy { retries: 3, delays: DELAYS, backoff: 1.0, jitter: 0.0 };
/// assert_eq!(policy.attempts(), 4);
/// assert_eq!(policy.delay_before_retry(1), Duration::from_secs(1));
/// assert_eq!(policy.delay_before_retry(2), Duration::from_secs(10));
/// assert_eq!(policy.delay_before_retry(3), Duration::from_secs(10)); // the last repeats
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// The delay before each retry; the last one repeats. Empty means no delay.
    pub delays: &'static [Duration],
    /// Each retry's delay is multiplied by `backoff` raised to the number of earlier retries.
    pub backoff: f64,
    /// Each delay is moved by a random amount of up to ± `jitter` × the delay.
    pub jitter: f64,
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        retries: 0,
        delays: &[],
        backoff: 1.0,
        jitter: 0.0,
    };

    /// The number of attempts in all: `retries + 1`.
    pub const fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The delay before retry number `retry` (1 for the second attempt).
    ///
    /// With backoff or jitter the delay is rounded to the millisecond, so logs read
    /// "Retrying in 22s 500ms" rather than a nanosecond count.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let index = retry.saturating_sub(1);
        let Some(base) = self
            .delays
            .get(index as usize)
            .or_else(|| self.delays.last())
        else {
            return Duration::ZERO;
        };
        if self.backoff == 1.0 && self.jitter == 0.0 {
            return *base;
        }
        let exponent = i32::try_from(index).unwrap_or(i32::MAX);
        let mut secs = base.as_secs_f64() * self.backoff.powi(exponent);
        if self.jitter > 0.0 {
            secs *= 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        }
        let millis = (secs * 1000.0).round();
        // A runaway backoff saturates instead of overflowing; tokio caps long sleeps itself.
        if millis.is_finite() && millis < u64::MAX as f64 {
            Duration::from_millis(millis.max(0.0) as u64)
        } else {
            Duration::MAX
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIFTEEN: &[Duration] = &[Duration::from_secs(15)];

    #[test]
    fn backoff_multiplies_each_retry() {
        let p = RetryPolicy {
            retries: 4,
            delays: FIFTEEN,
            backoff: 2.0,
            jitter: 0.0,
        };
        let delays: Vec<_> = (1..=4).map(|r| p.delay_before_retry(r).as_secs()).collect();
        assert_eq!(delays, [15, 30, 60, 120]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy {
            retries: 1,
            delays: FIFTEEN,
            backoff: 1.0,
            jitter: 0.2,
        };
        for _ in 0..1000 {
            let d = p.delay_before_retry(1);
            assert!((12_000..=18_000).contains(&d.as_millis()), "{d:?}");
        }
    }

    #[test]
    fn no_delays_means_immediate_retry() {
        assert_eq!(RetryPolicy::NONE.delay_before_retry(1), Duration::ZERO);
    }

    #[test]
    fn huge_backoff_saturates() {
        let p = RetryPolicy {
            retries: 2000,
            delays: FIFTEEN,
            backoff: 10.0,
            jitter: 0.0,
        };
        assert_eq!(p.delay_before_retry(2000), Duration::MAX);
    }
}
