//! DynamoDB, the part every stream reader shares: checkpoints in the state table. The
//! prices table belongs to the consumer, alert claims to the alerter and the collector's
//! host state to the collector; each crate keeps its own adapter.

use super::{describe, RetriedCall};
use crate::backoff::RetryPolicy;
use crate::checkpoint::CheckpointStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The sort key of every operational item in the state table.
pub const STATE_SK: &str = "STATE";
/// `CHECKPOINT#<function>#<shard>`: where a stream reader got to.
pub const CHECKPOINT_PREFIX: &str = "CHECKPOINT#";

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// Puts one operational item (`pk`, `sk = STATE`, `updated_at` added) under a retry policy.
pub async fn put_state(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    policy: RetryPolicy,
    pk: String,
    mut item: Item,
) -> Result<(), StoreError> {
    item.insert("pk".into(), AttributeValue::S(pk));
    item.insert("sk".into(), AttributeValue::S(STATE_SK.into()));
    item.insert(
        "updated_at".into(),
        AttributeValue::S(Utc::now().to_rfc3339()),
    );
    let attempt = || async {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(item.clone()))
            .send()
            .await
    };
    attempt
        .retried(policy)
        .await
        .map(|_| ())
        .map_err(|e| StoreError(describe(&e)))
}

/// Stream readers' checkpoints in the state table.
pub struct DynamoCheckpoints {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: RetryPolicy,
}

impl DynamoCheckpoints {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        DynamoCheckpoints {
            client,
            table: table.into(),
            policy,
        }
    }
}

#[async_trait]
impl CheckpointStore for DynamoCheckpoints {
    async fn checkpoint(
        &self,
        function: &str,
        shard: &str,
        sequence_number: &str,
        arrival_ms: i64,
    ) -> Result<(), StoreError> {
        let item: Item = HashMap::from([
            (
                "sequence_number".to_string(),
                AttributeValue::S(sequence_number.into()),
            ),
            ("arrival_ms".to_string(), n(arrival_ms)),
        ]);
        put_state(
            &self.client,
            &self.table,
            self.policy,
            format!("{CHECKPOINT_PREFIX}{function}#{shard}"),
            item,
        )
        .await
    }
}
