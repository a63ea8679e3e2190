//! DynamoDB: the prices table (history + latest) and the state table (alert claims).

use super::{describe, is_retryable, RetriedCall};
use crate::backoff::RetryPolicy;
use crate::batching::{batch_write_chunks, Deduped};
use crate::envelope::Envelope;
use crate::table::{self, Item};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

#[async_trait]
pub trait PriceStore: Send + Sync {
    async fn write_history(&self, records: &[Envelope]) -> HistoryOutcome;
    async fn put_latest(&self, record: &Envelope) -> Result<LatestOutcome, StoreError>;
}

pub struct DynamoPriceStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    history_ttl: chrono::Duration,
    policy: RetryPolicy,
}

impl DynamoPriceStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        history_ttl_days: u32,
        policy: RetryPolicy,
    ) -> Self {
        DynamoPriceStore {
            client,
            table: table.into(),
            history_ttl: chrono::Duration::days(history_ttl_days.into()),
            policy,
        }
    }

    fn key_of(item: &Item) -> (String, String) {
        let get = |k: &str| match item.get(k) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        (get("pk"), get("sk"))
    }

    async fn write_chunk(&self, chunk: Vec<Deduped<Item>>, out: &mut HistoryOutcome) {
        let mut pending: HashMap<(String, String), Deduped<Item>> = chunk
            .into_iter()
            .map(|d| (Self::key_of(&d.item), d))
            .collect();
        let mut delays = self.policy.delays();
        loop {
            out.requests += 1;
            let mut requests = Vec::with_capacity(pending.len());
            for d in pending.values() {
                match PutRequest::builder().set_item(Some(d.item.clone())).build() {
                    Ok(put) => requests.push(WriteRequest::builder().put_request(put).build()),
                    Err(e) => out.last_error = Some(e.to_string()),
                }
            }
            let result = self
                .client
                .batch_write_item()
                .request_items(self.table.clone(), requests)
                .send()
                .await;
            match result {
                Ok(resp) => {
                    let unprocessed: BTreeSet<(String, String)> = resp
                        .unprocessed_items()
                        .and_then(|m| m.get(&self.table))
                        .map(|reqs| {
                            reqs.iter()
                                .filter_map(|r| {
                                    r.put_request().map(|p| Self::key_of(&p.item().clone()))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let sent = pending.len();
                    pending.retain(|key, _| unprocessed.contains(key));
                    out.written += sent - pending.len();
                    if pending.is_empty() {
                        return;
                    }
                    out.last_error = Some(format!("{} UnprocessedItems", pending.len()));
                }
                Err(e) => {
                    out.last_error = Some(describe(&e));
                    if !is_retryable(&e) {
                        break;
                    }
                }
            }
            match delays.next() {
                Some(delay) => {
                    out.retried_items += pending.len();
                    tracing::warn!(retrying = pending.len(), error = ?out.last_error, "BatchWriteItem left items unprocessed; retrying them");
                    tokio::time::sleep(delay).await;
                }
                None => break,
            }
        }
        for d in pending.into_values() {
            out.failed.extend(d.origins);
        }
    }
}

#[async_trait]
impl PriceStore for DynamoPriceStore {
    async fn write_history(&self, records: &[Envelope]) -> HistoryOutcome {
        let items: Vec<Item> = records
            .iter()
            .map(|e| table::history_item(e, self.history_ttl))
            .collect();
        let mut out = HistoryOutcome::default();
        for chunk in batch_write_chunks(items, Self::key_of) {
            self.write_chunk(chunk, &mut out).await;
        }
        out
    }

    async fn put_latest(&self, record: &Envelope) -> Result<LatestOutcome, StoreError> {
        let item = table::latest_item(record);
        let values = table::latest_condition_values(record);
        let attempt = || async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(table::LATEST_CONDITION)
                .set_expression_attribute_values(Some(values.clone()))
                .send()
                .await
        };
        match attempt.retried(self.policy).await {
            Ok(_) => Ok(LatestOutcome::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(LatestOutcome::Stale)
            }
            Err(e) => Err(StoreError(describe(&e))),
        }
    }
}

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
    async fn mark_sent(&self, key: &str, message_id: &str) -> Result<(), StoreError>;
    /// Gives a claim back after a failed publish, so the retried record can take it at once.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}

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

    async fn mark_sent(&self, key: &str, message_id: &str) -> Result<(), StoreError> {
        let attempt = || async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .key("sk", AttributeValue::S(CLAIM_SK.to_string()))
                .update_expression("SET #status = :sent, message_id = :m")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":sent", AttributeValue::S("sent".into()))
                .expression_attribute_values(":m", AttributeValue::S(message_id.to_string()))
                .send()
                .await
        };
        attempt
            .retried(self.policy)
            .await
            .map(|_| ())
            .map_err(|e| StoreError(describe(&e)))
    }
}

/// Operational state in the state table, each item with sort key `STATE` and plain
/// attributes so an operator (and `pricewire status`) can read them: the collector's
/// `BREAKER#<host>`, `LIMIT#<host><path>`, `CURSOR#<job>` and `RUN#<job>`, and the stream
/// readers' `CHECKPOINT#<function>#<shard>`.
pub struct DynamoHostState {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: RetryPolicy,
}

pub const STATE_SK: &str = "STATE";
pub const BREAKER_PREFIX: &str = "BREAKER#";
pub const LIMIT_PREFIX: &str = "LIMIT#";
pub const CURSOR_PREFIX: &str = "CURSOR#";
pub const RUN_PREFIX: &str = "RUN#";
pub const CHECKPOINT_PREFIX: &str = "CHECKPOINT#";
/// A cursor nobody resumed within a day is stale (the data moved on): TTL removes it.
const CURSOR_TTL: chrono::Duration = chrono::Duration::days(1);

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl DynamoHostState {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        DynamoHostState {
            client,
            table: table.into(),
            policy,
        }
    }

    async fn get(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let attempt = || async {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(STATE_SK.into()))
                .consistent_read(true)
                .send()
                .await
        };
        attempt
            .retried(self.policy)
            .await
            .map(|out| out.item)
            .map_err(|e| StoreError(describe(&e)))
    }

    async fn put(&self, mut item: Item, pk: String) -> Result<(), StoreError> {
        item.insert("pk".into(), AttributeValue::S(pk));
        item.insert("sk".into(), AttributeValue::S(STATE_SK.into()));
        item.insert(
            "updated_at".into(),
            AttributeValue::S(Utc::now().to_rfc3339()),
        );
        let attempt = || async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .send()
                .await
        };
        attempt
            .retried(self.policy)
            .await
            .map(|_| ())
            .map_err(|e| StoreError(describe(&e)))
    }
}

#[async_trait]
impl crate::state::HostStateStore for DynamoHostState {
    async fn load_breaker(
        &self,
        host: &str,
    ) -> Result<Option<crate::breaker::BreakerState>, StoreError> {
        let Some(item) = self.get(format!("{BREAKER_PREFIX}{host}")).await? else {
            return Ok(None);
        };
        Ok(Some(crate::breaker::BreakerState {
            phase: item
                .get("phase")
                .and_then(|v| v.as_s().ok())
                .and_then(|s| crate::breaker::Phase::parse(s))
                .unwrap_or_default(),
            failures: get_n(&item, "failures").unwrap_or(0),
            open_until_ms: get_n(&item, "open_until_ms").unwrap_or(0),
            probe_until_ms: get_n(&item, "probe_until_ms").unwrap_or(0),
            opened: get_n(&item, "opened").unwrap_or(0),
            version: get_n(&item, "version").unwrap_or(0),
        }))
    }

    async fn save_breaker(
        &self,
        host: &str,
        s: &crate::breaker::BreakerState,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let item: Item = HashMap::from([
            (
                "pk".to_string(),
                AttributeValue::S(format!("{BREAKER_PREFIX}{host}")),
            ),
            ("sk".to_string(), AttributeValue::S(STATE_SK.into())),
            (
                "phase".to_string(),
                AttributeValue::S(s.phase.as_str().into()),
            ),
            ("failures".to_string(), n(s.failures)),
            ("open_until_ms".to_string(), n(s.open_until_ms)),
            ("probe_until_ms".to_string(), n(s.probe_until_ms)),
            ("opened".to_string(), n(s.opened)),
            ("version".to_string(), n(s.version)),
            (
                "updated_at".to_string(),
                AttributeValue::S(Utc::now().to_rfc3339()),
            ),
        ]);
        let attempt = || async {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()));
            match expected {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(v) => put
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", n(v)),
            }
            .send()
            .await
        };
        match attempt.retried(self.policy).await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError(describe(&e))),
        }
    }

    async fn load_limit(
        &self,
        key: &str,
    ) -> Result<Option<crate::ratelimit::LimitState>, StoreError> {
        let item = self.get(format!("{LIMIT_PREFIX}{key}")).await?;
        Ok(item.and_then(|item| {
            Some(crate::ratelimit::LimitState {
                rpm: get_n(&item, "rpm")?,
                paused_until_ms: get_n(&item, "paused_until_ms"),
                credit: get_n(&item, "credit").unwrap_or(0),
            })
        }))
    }

    async fn save_limit(
        &self,
        key: &str,
        state: &crate::ratelimit::LimitState,
    ) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("rpm".to_string(), n(format!("{:.3}", state.rpm))),
            ("credit".to_string(), n(state.credit)),
        ]);
        if let Some(p) = state.paused_until_ms {
            item.insert("paused_until_ms".into(), n(p));
        }
        self.put(item, format!("{LIMIT_PREFIX}{key}")).await
    }

    async fn load_cursor(&self, job: &str) -> Result<Option<crate::state::Cursor>, StoreError> {
        let item = self.get(format!("{CURSOR_PREFIX}{job}")).await?;
        Ok(item.and_then(|item| {
            Some(crate::state::Cursor {
                page_size: get_n(&item, "page_size").unwrap_or(0),
                next_page: get_n(&item, "next_page")?,
                done: item
                    .get("done")
                    .and_then(|v| v.as_s().ok())
                    .map(|s| s.split(',').filter_map(|p| p.parse().ok()).collect())
                    .unwrap_or_default(),
                started_ms: get_n(&item, "started_ms").unwrap_or(0),
            })
        }))
    }

    async fn save_cursor(&self, job: &str, c: &crate::state::Cursor) -> Result<(), StoreError> {
        let done: Vec<String> = c.done.iter().map(u32::to_string).collect();
        let item: Item = HashMap::from([
            ("page_size".to_string(), n(c.page_size)),
            ("next_page".to_string(), n(c.next_page)),
            ("done".to_string(), AttributeValue::S(done.join(","))),
            ("started_ms".to_string(), n(c.started_ms)),
            // From the walk's start, not this save: a walk stuck on a page still expires.
            (
                "expires_at".to_string(),
                n(c.started_ms / 1000 + CURSOR_TTL.num_seconds()),
            ),
        ]);
        self.put(item, format!("{CURSOR_PREFIX}{job}")).await
    }

    async fn save_run(&self, job: &str, run: &crate::state::RunRecord) -> Result<(), StoreError> {
        let item: Item = HashMap::from([
            ("at_ms".to_string(), n(run.at_ms)),
            ("records_out".to_string(), n(run.records_out)),
            ("pages".to_string(), n(run.pages)),
            ("complete".to_string(), AttributeValue::Bool(run.complete)),
        ]);
        self.put(item, format!("{RUN_PREFIX}{job}")).await
    }

    async fn clear_cursor(&self, job: &str) -> Result<(), StoreError> {
        let pk = format!("{CURSOR_PREFIX}{job}");
        let attempt = || async {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(STATE_SK.into()))
                .send()
                .await
        };
        attempt
            .retried(self.policy)
            .await
            .map(|_| ())
            .map_err(|e| StoreError(describe(&e)))
    }
}

#[async_trait]
impl crate::state::CheckpointStore for DynamoHostState {
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
        self.put(item, format!("{CHECKPOINT_PREFIX}{function}#{shard}"))
            .await
    }
}
