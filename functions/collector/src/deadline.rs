//! The invocation's deadline, as every wait and request of a run sees it.

use std::time::{Duration, Instant};

/// When the invocation must be done, and how long one request may take: no request is
/// started, and no backoff slept, that could not finish before the deadline (less a margin
/// to flush what was fetched and report).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub request_timeout: Duration,
}

/// Kept free at the end of an invocation to archive, put and report.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

impl Deadline {
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether a request started after `wait` could still finish in time.
    pub fn allows(&self, wait: Duration) -> bool {
        wait.saturating_add(self.request_timeout)
            .saturating_add(DEADLINE_MARGIN)
            <= self.remaining()
    }
}

/// The invocation's deadline as an `Instant` (`Context::deadline` is epoch milliseconds;
/// 0, as in a default test context, means none).
pub fn of_context(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    Some(Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms)))
}
