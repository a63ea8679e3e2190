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
}

#[async_trait]
pub trait RunLog: Send + Sync {
    async fn save_run(&self, job: &str, run: &RunRecord) -> Result<(), StoreError>;
}

/// Everything the collector keeps, for wiring one store into every port.
pub trait HostState: BreakerStore + LimitStore + CursorStore + HoldStore + RunLog {}

impl<T: BreakerStore + LimitStore + CursorStore + HoldStore + RunLog> HostState for T {}
