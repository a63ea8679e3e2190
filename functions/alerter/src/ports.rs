//! The alerter's ports: where claims are taken (de-duplication) and where alerts are
//! published. Adapters: `adapters::dynamodb`, `adapters::sns`, `adapters::memory`.

use crate::message::Alert;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

pub use pricewire_pipeline::adapters::dynamodb::StoreError;

/// Whether an alert may be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: publish, then mark sent.
    Acquired,
    /// Sent within the window already.
    AlreadySent,
}

#[async_trait]
pub trait DedupStore: Send + Sync {
    async fn claim(
        &self,
        key: &str,
        record_id: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<Claim, StoreError>;
    /// Marks this record's claim sent; fails when the claim is no longer this record's and
    /// pending (it expired, was released, or was taken over).
    async fn mark_sent(
        &self,
        key: &str,
        record_id: &str,
        message_id: &str,
    ) -> Result<(), StoreError>;
    /// Gives a claim back after a failed publish, so the retried record can take it at once.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SNS publish: {0}")]
pub struct PublishError(pub String);

#[async_trait]
pub trait AlertPublisher: Send + Sync {
    /// Publishes one alert; returns the SNS message id.
    async fn publish(&self, alert: &Alert) -> Result<String, PublishError>;
}
