//! What the collector keeps between invocations, in the state table: each upstream host's
//! circuit breaker, each host method's learned rate limit, and each job's pagination
//! cursor. The trait is the seam; `adapters::dynamodb::DynamoHostState` is the real store
//! and [`MemoryHostState`] serves the unit tests.

use crate::breaker::BreakerState;
use crate::ratelimit::LimitState;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

pub use crate::adapters::dynamodb::StoreError;

/// Where an interrupted pagination resumes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    /// The page size the pages were counted in (another size makes the cursor void).
    pub page_size: u32,
    /// The first page not yet collected.
    pub next_page: u32,
    /// Pages after `next_page` already collected (fetched concurrently before the stop).
    pub done: BTreeSet<u32>,
    /// When the interrupted walk started (epoch milliseconds).
    pub started_ms: i64,
}

#[async_trait]
pub trait HostStateStore: Send + Sync {
    async fn load_breaker(&self, host: &str) -> Result<Option<BreakerState>, StoreError>;
    /// Writes `state` if the stored version is `expected` (`None`: nothing stored yet).
    /// `Ok(false)`: someone else wrote first.
    async fn save_breaker(
        &self,
        host: &str,
        state: &BreakerState,
        expected: Option<u64>,
    ) -> Result<bool, StoreError>;
    async fn load_limit(&self, key: &str) -> Result<Option<LimitState>, StoreError>;
    async fn save_limit(&self, key: &str, state: &LimitState) -> Result<(), StoreError>;
    async fn load_cursor(&self, job: &str) -> Result<Option<Cursor>, StoreError>;
    async fn save_cursor(&self, job: &str, cursor: &Cursor) -> Result<(), StoreError>;
    async fn clear_cursor(&self, job: &str) -> Result<(), StoreError>;
    /// Records a job's last successful run (what `pricewire status` shows).
    async fn save_run(&self, job: &str, run: &RunRecord) -> Result<(), StoreError>;
}

/// A job's last successful run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the run ended (epoch milliseconds).
    pub at_ms: i64,
    pub records_out: u64,
    pub pages: u64,
    /// False when the run stopped early (deadline, open breaker, long Retry-After) and left
    /// a cursor for the next one.
    pub complete: bool,
}

/// Where a stream reader got to: the last record of its last batch on one shard. Written by
/// the consumer and the alerter after each batch (`CHECKPOINT#<function>#<shard>`); `pricewire
/// status` measures consumer lag from it.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn checkpoint(
        &self,
        function: &str,
        shard: &str,
        sequence_number: &str,
        arrival_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Checkpoints a handled batch: per shard, the last record before its first failure. Only
/// `pricewire status` reads checkpoints, so a failed write is logged, never fatal.
pub async fn checkpoint_batch(
    store: &dyn CheckpointStore,
    function: &str,
    records: &[aws_lambda_events::kinesis::KinesisEventRecord],
    failed: &BTreeSet<String>,
) {
    for (shard, seq, arrival) in crate::stream::checkpoints(records, failed) {
        if let Err(e) = store.checkpoint(function, &shard, &seq, arrival).await {
            tracing::warn!(function, shard = %shard, error = %e, "checkpoint not written");
        }
    }
}

/// In memory, with the same conditional-write semantics.
#[derive(Default)]
pub struct MemoryHostState {
    breakers: Mutex<HashMap<String, BreakerState>>,
    limits: Mutex<HashMap<String, LimitState>>,
    cursors: Mutex<HashMap<String, Cursor>>,
    pub runs: Mutex<HashMap<String, RunRecord>>,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError("state lock poisoned".into())
}

#[async_trait]
impl HostStateStore for MemoryHostState {
    async fn load_breaker(&self, host: &str) -> Result<Option<BreakerState>, StoreError> {
        Ok(self.breakers.lock().map_err(poisoned)?.get(host).cloned())
    }

    async fn save_breaker(
        &self,
        host: &str,
        state: &BreakerState,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut map = self.breakers.lock().map_err(poisoned)?;
        if map.get(host).map(|s| s.version) != expected {
            return Ok(false);
        }
        map.insert(host.into(), state.clone());
        Ok(true)
    }

    async fn load_limit(&self, key: &str) -> Result<Option<LimitState>, StoreError> {
        Ok(self.limits.lock().map_err(poisoned)?.get(key).cloned())
    }

    async fn save_limit(&self, key: &str, state: &LimitState) -> Result<(), StoreError> {
        self.limits
            .lock()
            .map_err(poisoned)?
            .insert(key.into(), state.clone());
        Ok(())
    }

    async fn load_cursor(&self, job: &str) -> Result<Option<Cursor>, StoreError> {
        Ok(self.cursors.lock().map_err(poisoned)?.get(job).cloned())
    }

    async fn save_cursor(&self, job: &str, cursor: &Cursor) -> Result<(), StoreError> {
        self.cursors
            .lock()
            .map_err(poisoned)?
            .insert(job.into(), cursor.clone());
        Ok(())
    }

    async fn clear_cursor(&self, job: &str) -> Result<(), StoreError> {
        self.cursors.lock().map_err(poisoned)?.remove(job);
        Ok(())
    }

    async fn save_run(&self, job: &str, run: &RunRecord) -> Result<(), StoreError> {
        self.runs
            .lock()
            .map_err(poisoned)?
            .insert(job.into(), run.clone());
        Ok(())
    }
}
