//! The consumer's ports: reading an entity's stored history, writing what a batch changes
//! in it, and reporting poison records. Adapters: `adapters::dynamodb` (the prices table),
//! `adapters::sqs` (the dead-letter queue), `adapters::memory` (both, in memory).

use crate::history::Planned;
use async_trait::async_trait;
use pricewire_pipeline::table::Change;
use std::collections::BTreeSet;

pub use pricewire_pipeline::adapters::dynamodb::StoreError;

/// What became of a set of writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Batch positions of records whose writes did not all land.
    pub failed: BTreeSet<usize>,
    pub written: usize,
    pub requests: usize,
    /// Writes sent again because DynamoDB returned them as UnprocessedItems (or throttled).
    pub retried_items: usize,
    pub last_error: Option<String>,
}

/// One entity's stored changes, read before anything is written.
#[async_trait]
pub trait HistoryReader: Send + Sync {
    /// The entity's newest change (its latest value), if it has any.
    async fn newest(&self, pk: &str) -> Result<Option<Change>, StoreError>;
    /// The newest change sorted before `sk`: the value in force there.
    async fn before(&self, pk: &str, sk: &str) -> Result<Option<Change>, StoreError>;
    /// Every change from `sk` on, in order.
    async fn since(&self, pk: &str, sk: &str) -> Result<Vec<Change>, StoreError>;
}

/// Applies planned puts and deletes (BatchWriteItem), charging failures to their records.
#[async_trait]
pub trait HistoryWriter: Send + Sync {
    async fn write(&self, writes: Vec<Planned>) -> WriteOutcome;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS send: {0}")]
pub struct DeadLetterError(pub String);

/// A function's dead-letter queue, for the poison records it sets aside itself.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Sends one message body (JSON, within `limits::SQS_MESSAGE_MAX_BYTES`).
    async fn send(&self, body: String) -> Result<(), DeadLetterError>;
}
