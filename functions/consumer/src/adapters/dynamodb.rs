//! DynamoDB: the prices table (history + latest), the consumer's store.

use crate::ports::{HistoryOutcome, LatestOutcome, PriceStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use pricewire_pipeline::adapters::{describe, is_retryable, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::batching::{batch_write_chunks, Deduped};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::table::{self, Item};
use std::collections::{BTreeSet, HashMap};

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
