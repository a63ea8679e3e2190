//! What the collector keeps between invocations, in the state table, and the ports it
//! reaches them through: one capability each, defined here beside the walk that uses them
//! (the breaker's and the limiter's live in `breaker` and `ratelimit`).
//!
//! | item | what |
//! |---|---|
//! | `BREAKER#<host>` | the host's circuit breaker (`breaker`) |
//! | `LIMIT#<host><path or *>` | the learned rate limit and any pause (`ratelimit`) |
//! | `CURSOR#<job>` | where an interrupted walk resumes, or where the next walk starts |
//! | `HOLD#source#<source>` / `HOLD#host#<host>` | stay away until (a spent quota, a ban) |
//! | `RUN#<job>` | the job's last successful run (what `pricewire status` shows) |
//!
//! `adapters::dynamodb::DynamoHostState` is the real store and
//! `adapters::memory::MemoryHostState` the in-memory one.

use crate::breaker::BreakerStore;
use crate::ratelimit::LimitStore;
use async_trait::async_trait;
use pricewire_pipeline::sources::{HoldScope, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use pricewire_pipeline::adapters::dynamodb::StoreError;

/// Where an interrupted walk resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// What was being walked (the plan's fingerprint): a cursor of another plan (the job
    /// changed) is void.
    pub plan: String,
    /// The first step not yet collected: a page, or the token the last answer gave.
    pub next: Step,
    /// Page walks: pages after `next` already collected (fetched concurrently before the
    /// stop).
    pub done: BTreeSet<u32>,
    /// Chain walks: steps already taken in this walk (its `max_steps` counts them all).
    pub steps: u32,
    /// When the interrupted walk started (epoch milliseconds).
    pub started_ms: i64,
    /// Not an interrupted walk but a completed one's high-water mark: the next walk starts
    /// at `next` (a time window: everything since the last run).
    #[serde(default)]
    pub mark: bool,
    /// Ids of the records of the last step collected before `next` (at most
    /// [`CURSOR_EDGE_IDS_MAX`]): an API that repeats a page's last row as the next page's
    /// first (Bybit's cursors do) gets that row put once, not once per invocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edge: Vec<String>,
}

/// Edge ids a cursor keeps: 1,000 ids of 32 hex digits are 33 KB, well inside DynamoDB's
/// 400 KB item limit (`limits::DYNAMODB_ITEM_MAX_BYTES`) beside the cursor's other fields.
pub const CURSOR_EDGE_IDS_MAX: usize = 1_000;

/// The edge a cursor keeps of a step's records: their ids, the last ones when there are
/// more than [`CURSOR_EDGE_IDS_MAX`] (a boundary repeat is of the page's end).
pub fn edge_of(ids: &[String]) -> Vec<String> {
    ids[ids.len().saturating_sub(CURSOR_EDGE_IDS_MAX)..].to_vec()
}

#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn load_cursor(&self, job: &str) -> Result<Option<Cursor>, StoreError>;
    async fn save_cursor(&self, job: &str, cursor: &Cursor) -> Result<(), StoreError>;
    async fn clear_cursor(&self, job: &str) -> Result<(), StoreError>;
}

/// No request to a source (its quota is spent) or a host (it banned us) before `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldState {
    pub until_ms: i64,
    pub reason: String,
}

/// The key a hold is kept under: `source#<name>` or `host#<host>`.
pub fn hold_key(scope: HoldScope, name: &str) -> String {
    match scope {
        HoldScope::Source => format!("source#{name}"),
        HoldScope::Host => format!("host#{name}"),
    }
}

#[async_trait]
pub trait HoldStore: Send + Sync {
    async fn load_hold(&self, key: &str) -> Result<Option<HoldState>, StoreError>;
    async fn save_hold(&self, key: &str, hold: &HoldState) -> Result<(), StoreError>;
}

/// A job's last successful run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the run ended (epoch milliseconds).
    pub at_ms: i64,
    pub records_out: u64,
    pub pages: u64,
    /// False when the run stopped early (deadline, open breaker, long Retry-After, a hold)
    /// and left a cursor for the next one.
    pub complete: bool,
    /// When the job's runs began ending without collecting a page (stalled), while they
    /// still do; `None` after a run that collected.
    #[serde(default)]
    pub stalled_since_ms: Option<i64>,
    /// When the job's runs began ending incomplete, while they still do; `None` after a
    /// run that completed its walk.
    #[serde(default)]
    pub incomplete_since_ms: Option<i64>,
}

impl RunRecord {
    /// This run's record, carrying the streaks of `before` on: a run that stalls (or ends
    /// incomplete) after runs that did keeps their start; one that does not ends them.
    pub fn after(before: Option<&RunRecord>, mut run: RunRecord, stalled: bool) -> RunRecord {
        let since = |streak: Option<i64>, on: bool| match on {
            true => Some(streak.unwrap_or(run.at_ms).min(run.at_ms)),
            false => None,
        };
        run.stalled_since_ms = since(before.and_then(|b| b.stalled_since_ms), stalled);
        run.incomplete_since_ms = since(before.and_then(|b| b.incomplete_since_ms), !run.complete);
        run
    }

    /// Whole minutes the job has been stalled, and has been ending incomplete, as of this
    /// run (0 when it is not): the alarms' figures, one series per source, not per job.
    pub fn streak_minutes(&self) -> (u64, u64) {
        let minutes =
            |since: Option<i64>| since.map_or(0, |s| ((self.at_ms - s).max(0) / 60_000) as u64);
        (
            minutes(self.stalled_since_ms),
            minutes(self.incomplete_since_ms),
        )
    }
}

#[async_trait]
pub trait RunLog: Send + Sync {
    /// The job's last run, read only after a run that stalled or ended incomplete (to
    /// carry its streak on), so a healthy run costs no read.
    async fn load_run(&self, job: &str) -> Result<Option<RunRecord>, StoreError>;
    async fn save_run(&self, job: &str, run: &RunRecord) -> Result<(), StoreError>;
}

/// Everything the collector keeps, for wiring one store into every port.
pub trait HostState: BreakerStore + LimitStore + CursorStore + HoldStore + RunLog {}

impl<T: BreakerStore + LimitStore + CursorStore + HoldStore + RunLog> HostState for T {}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at_min: i64, pages: u64, complete: bool) -> RunRecord {
        RunRecord {
            at_ms: at_min * 60_000,
            pages,
            complete,
            ..RunRecord::default()
        }
    }

    #[test]
    fn streaks_start_at_the_first_bad_run_and_end_at_a_good_one() {
        // Stalled at 0, 30 and 60 minutes: 60 minutes stalled, and incomplete.
        let mut last: Option<RunRecord> = None;
        for at in [0, 30, 60] {
            last = Some(RunRecord::after(last.as_ref(), run(at, 0, false), true));
        }
        let r = last.clone().unwrap();
        assert_eq!(r.streak_minutes(), (60, 60));
        // A page collected but the walk cut again: no longer stalled, still incomplete.
        let r = RunRecord::after(Some(&r), run(75, 3, false), false);
        assert_eq!((r.stalled_since_ms, r.streak_minutes()), (None, (0, 75)));
        // A complete run ends both.
        let r = RunRecord::after(Some(&r), run(90, 3, true), false);
        assert_eq!(
            (
                r.stalled_since_ms,
                r.incomplete_since_ms,
                r.streak_minutes()
            ),
            (None, None, (0, 0))
        );
        // With no record before it a bad run starts its streak at itself.
        let r = RunRecord::after(None, run(5, 0, false), true);
        assert_eq!(
            (r.stalled_since_ms, r.streak_minutes()),
            (Some(300_000), (0, 0))
        );
    }
}
