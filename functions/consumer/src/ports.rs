//! The consumer's ports: where prices are stored and where poison records are reported.
//! Adapters: `adapters::dynamodb` (the prices table), `adapters::sqs` (the dead-letter
//! queue), `adapters::memory`.

use async_trait::async_trait;
use pricewire_pipeline::envelope::Envelope;
use std::collections::BTreeSet;

pub use pricewire_pipeline::adapters::dynamodb::StoreError;

/// What became of a set of history writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HistoryOutcome {
    /// Positions (in the input) of records whose item was not written.
    pub failed: BTreeSet<usize>,
    pub written: usize,
    pub requests: usize,
    /// Items sent again because DynamoDB returned them as UnprocessedItems (or throttled).
    pub retried_items: usize,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestOutcome {
    Written,
    /// The stored latest item is as new or newer: nothing written.
    Stale,
}

#[async_trait]
pub trait PriceStore: Send + Sync {
    async fn write_history(&self, records: &[Envelope]) -> HistoryOutcome;
    async fn put_latest(&self, record: &Envelope) -> Result<LatestOutcome, StoreError>;
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
