//! DynamoDB: alert claims in the state table, the alerter's de-duplication store.

use crate::ports::{Claim, DedupStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use pricewire_pipeline::adapters::dynamodb::Item;
use pricewire_pipeline::adapters::{describe, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;
use std::collections::HashMap;
use std::time::Duration;

/// Claims live in the state table as `pk = ALERT#…`, `sk = CLAIM`, with a TTL.
pub struct DynamoDedup {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: RetryPolicy,
}

pub const CLAIM_SK: &str = "CLAIM";
/// A claim is free when absent, expired (TTL deletion lags by up to days, so expiry is
/// checked here), released after a failed publish, or left `pending` longer than any
/// invocation can run (the claimant died between claiming and marking sent).
const CLAIM_CONDITION: &str =
    "attribute_not_exists(pk) OR expires_at < :now OR #status = :released OR (#status = :pending AND claimed_epoch < :stale)";
/// Marking sent needs the claim still there, still pending, and still this record's.
const MARK_CONDITION: &str = "attribute_exists(pk) AND #status = :pending AND record_id = :r";
/// How long a pending claim is held: Lambda's maximum timeout (15 minutes), so a claim is
/// never taken over from an invocation that may still publish.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

impl DynamoDedup {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        DynamoDedup {
            client,
            table: table.into(),
            policy,
        }
    }
}

#[async_trait]
impl DedupStore for DynamoDedup {
    async fn claim(
        &self,
        key: &str,
        record_id: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<Claim, StoreError> {
        let expires = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
        let item: Item = HashMap::from([
            ("pk".to_string(), AttributeValue::S(key.to_string())),
            ("sk".to_string(), AttributeValue::S(CLAIM_SK.to_string())),
            ("status".to_string(), AttributeValue::S("pending".into())),
            (
                "record_id".to_string(),
                AttributeValue::S(record_id.to_string()),
            ),
            (
                "claimed_at".to_string(),
                AttributeValue::S(now.to_rfc3339()),
            ),
            (
                "claimed_epoch".to_string(),
                AttributeValue::N(now.timestamp().to_string()),
            ),
            (
                "expires_at".to_string(),
                AttributeValue::N(expires.timestamp().to_string()),
            ),
        ]);
        let attempt = || async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(CLAIM_CONDITION)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
                .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
                .expression_attribute_values(":released", AttributeValue::S("released".into()))
                .expression_attribute_values(
                    ":stale",
                    AttributeValue::N((now.timestamp() - CLAIM_LEASE.as_secs() as i64).to_string()),
                )
                .send()
                .await
        };
        match attempt.retried(self.policy).await {
            Ok(_) => Ok(Claim::Acquired),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Claim::AlreadySent)
            }
            Err(e) => Err(StoreError(describe(&e))),
        }
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let attempt = || async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .key("sk", AttributeValue::S(CLAIM_SK.to_string()))
                .update_expression("SET #status = :released")
                .condition_expression("#status = :pending")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":released", AttributeValue::S("released".into()))
                .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
                .send()
                .await
        };
        match attempt.retried(self.policy).await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError(describe(&e))),
        }
    }

    async fn mark_sent(
        &self,
        key: &str,
        record_id: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let attempt = || async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .key("sk", AttributeValue::S(CLAIM_SK.to_string()))
                .update_expression("SET #status = :sent, message_id = :m")
                // Only our live claim: an update creates a missing item, and a claim whose
                // lease ran out may be gone (TTL) or taken; recreating it would hold a
                // deal nobody sent, or mark another claimant's publish as ours.
                .condition_expression(MARK_CONDITION)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":sent", AttributeValue::S("sent".into()))
                .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
                .expression_attribute_values(":r", AttributeValue::S(record_id.to_string()))
                .expression_attribute_values(":m", AttributeValue::S(message_id.to_string()))
                .send()
                .await
        };
        match attempt.retried(self.policy).await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError(format!(
                    "claim {key} is no longer this record's pending claim (expired, released or taken): not marked sent"
                )))
            }
            Err(e) => Err(StoreError(describe(&e))),
        }
    }
}
