//! DynamoDB: the prices table, read per entity (Query on its partition) and written in
//! BatchWriteItem requests of puts and deletes.

use crate::history::{Planned, Write};
use crate::ports::{HistoryReader, HistoryWriter, StoreError, WriteOutcome};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use futures_util::StreamExt;
use pricewire_pipeline::adapters::{describe, is_retryable, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::batching::{batch_write_chunks, Deduped};
use pricewire_pipeline::table::{self, Change, Item};
use std::collections::{BTreeSet, HashMap};

/// BatchWriteItem requests of one batch in flight at once.
const BATCH_WRITES_IN_FLIGHT: usize = 4;

pub struct DynamoPrices {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: RetryPolicy,
}

impl DynamoPrices {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        DynamoPrices {
            client,
            table: table.into(),
            policy,
        }
    }

    /// One page of `pk`'s changes with `sk` between `from` and `to`, in the given direction.
    async fn query(
        &self,
        pk: &str,
        from: &str,
        to: &str,
        forward: bool,
        limit: Option<i32>,
        start: Option<Item>,
    ) -> Result<(Vec<Change>, Option<Item>), StoreError> {
        let attempt = || async {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .expression_attribute_values(":from", AttributeValue::S(from.to_string()))
                .expression_attribute_values(":to", AttributeValue::S(to.to_string()))
                // What the last batch wrote must be seen, or a change would be stored twice.
                .consistent_read(true)
                .scan_index_forward(forward)
                .set_limit(limit)
                .set_exclusive_start_key(start.clone())
                .send()
                .await
        };
        let out = attempt
            .retried(self.policy)
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        let changes = out.items().iter().filter_map(Change::from_item).collect();
        let next = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        Ok((changes, next))
    }

    fn key_of(w: &WriteRequest) -> (String, String) {
        let key: Option<&HashMap<String, AttributeValue>> = w
            .put_request()
            .map(|p| p.item())
            .or_else(|| w.delete_request().map(|d| d.key()));
        let get = |k: &str| match key.and_then(|m| m.get(k)) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        (get("pk"), get("sk"))
    }

    fn request(w: Write) -> Result<WriteRequest, String> {
        Ok(match w {
            Write::Put(item) => WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
            Write::Delete { pk, sk } => WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .key("pk", AttributeValue::S(pk))
                        .key("sk", AttributeValue::S(sk))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
        })
    }

    async fn write_chunk(&self, chunk: Vec<(WriteRequest, Vec<usize>)>, out: &mut WriteOutcome) {
        let mut pending: HashMap<(String, String), (WriteRequest, Vec<usize>)> = chunk
            .into_iter()
            .map(|(w, origins)| (Self::key_of(&w), (w, origins)))
            .collect();
        let mut delays = self.policy.delays();
        loop {
            out.requests += 1;
            let requests: Vec<WriteRequest> = pending.values().map(|(w, _)| w.clone()).collect();
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
                        .map(|reqs| reqs.iter().map(Self::key_of).collect())
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
                    tracing::warn!(retrying = pending.len(), error = ?out.last_error, "BatchWriteItem left writes unprocessed; retrying them");
                    tokio::time::sleep(delay).await;
                }
                None => break,
            }
        }
        for (_, origins) in pending.into_values() {
            out.failed.extend(origins);
        }
    }
}

#[async_trait]
impl HistoryReader for DynamoPrices {
    async fn newest(&self, pk: &str) -> Result<Option<Change>, StoreError> {
        let (changes, _) = self
            .query(
                pk,
                table::CHANGE_SK_PREFIX,
                table::CHANGE_SK_END,
                false,
                Some(1),
                None,
            )
            .await?;
        Ok(changes.into_iter().next())
    }

    async fn before(&self, pk: &str, sk: &str) -> Result<Option<Change>, StoreError> {
        // BETWEEN is inclusive: a change at exactly `sk` is dropped here (`since` has it).
        let (changes, _) = self
            .query(pk, table::CHANGE_SK_PREFIX, sk, false, Some(2), None)
            .await?;
        Ok(changes.into_iter().find(|c| c.sk.as_str() < sk))
    }

    async fn since(&self, pk: &str, sk: &str) -> Result<Vec<Change>, StoreError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let (changes, next) = self
                .query(pk, sk, table::CHANGE_SK_END, true, None, start)
                .await?;
            all.extend(changes);
            match next {
                Some(k) => start = Some(k),
                None => return Ok(all),
            }
        }
    }
}

#[async_trait]
impl HistoryWriter for DynamoPrices {
    async fn write(&self, writes: Vec<Planned>) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(writes.len());
        let mut origins: Vec<Vec<usize>> = Vec::with_capacity(writes.len());
        for p in writes {
            match Self::request(p.write) {
                Ok(w) => {
                    requests.push(w);
                    origins.push(p.origins);
                }
                Err(e) => {
                    out.last_error = Some(e);
                    out.failed.extend(p.origins);
                }
            }
        }
        // The same key twice in one batch (a put, then a delete): the last one stands, and a
        // failure is charged to the records behind either.
        let chunks: Vec<Vec<(WriteRequest, Vec<usize>)>> =
            batch_write_chunks(requests, Self::key_of)
                .into_iter()
                .map(|chunk| {
                    chunk
                        .into_iter()
                        .map(|d: Deduped<WriteRequest>| {
                            let mut charged: Vec<usize> =
                                d.origins.iter().flat_map(|&i| origins[i].clone()).collect();
                            charged.sort_unstable();
                            charged.dedup();
                            (d.item, charged)
                        })
                        .collect()
                })
                .collect();
        // Chunks hold distinct keys (de-duplicated above), so they can be in flight at once.
        let outcomes: Vec<WriteOutcome> =
            futures_util::stream::iter(chunks.into_iter().map(|chunk| async move {
                let mut part = WriteOutcome::default();
                self.write_chunk(chunk, &mut part).await;
                part
            }))
            .buffer_unordered(BATCH_WRITES_IN_FLIGHT)
            .collect()
            .await;
        for part in outcomes {
            out.failed.extend(part.failed);
            out.written += part.written;
            out.requests += part.requests;
            out.retried_items += part.retried_items;
            if part.last_error.is_some() {
                out.last_error = part.last_error;
            }
        }
        out
    }
}
