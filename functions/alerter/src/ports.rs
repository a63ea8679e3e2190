//! The alerter's ports: where claims are taken (de-duplication), where a rule's last alert
//! per entity is kept (re-alerting), where bookmakers' moves are counted (quorum), where SMS are counted against subscribers' daily caps,
//! and where alerts are published. Adapters: `adapters::dynamodb`, `adapters::sns`,
//! `adapters::memory`.

use crate::message::Alert;
use crate::realert::Armed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
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

/// The last alert of a rule per entity (`realert`).
#[async_trait]
pub trait ArmStore: Send + Sync {
    async fn last(&self, rule: &str, entity: &str) -> Result<Option<Armed>, StoreError>;
    /// Records an alert as the rule's last about the entity, kept until `expires`; an
    /// older alert never replaces a newer one.
    async fn record(
        &self,
        rule: &str,
        entity: &str,
        armed: &Armed,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Bookmakers' qualifying moves per (rule, group) (`quorum`).
#[async_trait]
pub trait MoveStore: Send + Sync {
    /// Records that `bookmaker` moved at `at_ms` (kept until `expires`; an older move never
    /// replaces a newer one) and returns every bookmaker's latest move in the group.
    async fn record_move(
        &self,
        rule: &str,
        group: &str,
        bookmaker: &str,
        at_ms: i64,
        expires: DateTime<Utc>,
    ) -> Result<BTreeMap<String, i64>, StoreError>;
}

/// SMS sent per subscriber and local day, against a cap.
#[async_trait]
pub trait SmsQuota: Send + Sync {
    /// Takes one SMS of the subscriber's `day`; `Ok(false)`: the cap is spent.
    async fn take(&self, subscriber: &str, day: &str, cap: u32) -> Result<bool, StoreError>;
    /// Gives one back (the publish failed; the retry takes it again).
    async fn give_back(&self, subscriber: &str, day: &str) -> Result<(), StoreError>;
}

/// Whom SNS delivers an alert to: the subscribers named here, through their subscriptions'
/// filter policies (`sms_to`, `email_to`). `None` at publish: no one is declared, every
/// subscription gets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sms_to: Vec<String>,
    pub email_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SNS publish: {0}")]
pub struct PublishError(pub String);

#[async_trait]
pub trait AlertPublisher: Send + Sync {
    /// Publishes one alert; returns the SNS message id.
    async fn publish(&self, alert: &Alert, to: Option<&Delivery>) -> Result<String, PublishError>;
}
