//! The consumer: Kinesis batch → the prices table, holding *changes*. Per entity it reads
//! the stored history first (the newest change; around late records, the window the
//! statistics need), writes one item per change and nothing for a repeat, quarantines
//! implausible and poison records with their reasons, and reports failures per record so
//! Lambda checkpoints everything before the first failure.

pub mod adapters;
pub mod config;
pub mod history;
pub mod plausibility;
pub mod ports;

use adapters::dynamodb::DynamoPrices;
use adapters::sqs::SqsDeadLetters;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use chrono::Utc;
use config::ConsumerConfig;
use futures_util::StreamExt;
use history::{HistoryRules, Plan, Planned};
use lambda_runtime::LambdaEvent;
use ports::{DeadLetters, HistoryReader, HistoryWriter, StoreError};
use pricewire_pipeline::adapters::dynamodb::DynamoCheckpoints;
use pricewire_pipeline::adapters::s3::{Archive, Object, S3Archive};
use pricewire_pipeline::archive;
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::checkpoint::{checkpoint_batch, CheckpointStore};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::stream::{self, decode, Poison};
use pricewire_pipeline::table::{self, Change, Order};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const WRITE_BASE_DELAY: Duration = Duration::from_millis(50);
const WRITE_MAX_DELAY: Duration = Duration::from_secs(2);
/// Entities whose history is read at once in one batch (one to three Queries each).
const ENTITY_READS_IN_FLIGHT: usize = 16;
/// Source label of quarantine files written for stream records that are not envelopes.
pub const POISON_SOURCE: &str = pricewire_pipeline::archive::STREAM_QUARANTINE_SOURCE;
/// The name the consumer checkpoints and reports poison under.
pub const FUNCTION: &str = "consumer";

pub struct Consumer {
    pub reader: Arc<dyn HistoryReader>,
    pub writer: Arc<dyn HistoryWriter>,
    pub rules: HistoryRules,
    pub quarantine: Arc<dyn Archive>,
    /// The consumer's dead-letter queue: one notice per poison record, with its reason.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
    pub checkpoints: Option<Arc<dyn CheckpointStore>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub received: usize,
    pub entities: usize,
    /// Records stored as a change (one item each).
    pub changes: usize,
    /// Records whose value repeated the stored one: nothing written.
    pub repeats: usize,
    /// Records already stored (redelivered or replayed).
    pub duplicates: usize,
    /// Changes stored flagged as outliers (kept out of statistics and alerts).
    pub flagged: usize,
    /// Records refused as implausible and quarantined.
    pub implausible: usize,
    pub poison: usize,
    pub failed: usize,
    pub writes: usize,
    pub write_requests: usize,
    pub retried_items: usize,
}

impl Consumer {
    pub fn from_config(config: &ConsumerConfig, sdk: &aws::SdkConfig) -> Consumer {
        let policy = RetryPolicy::new(config.write_max_attempts, WRITE_BASE_DELAY, WRITE_MAX_DELAY);
        let prices = Arc::new(DynamoPrices::new(
            aws::dynamodb(sdk),
            &config.prices_table,
            policy,
        ));
        Consumer {
            reader: prices.clone(),
            writer: prices,
            rules: HistoryRules {
                windows: config.stat_windows.clone(),
                plausibility: config.plausibility.clone(),
                ttl: chrono::Duration::days(config.history_ttl_days.into()),
            },
            quarantine: Arc::new(S3Archive::new(aws::s3(sdk), &config.archive_bucket, policy)),
            dead_letters: config.dead_letter_queue_url.as_ref().map(|url| {
                Arc::new(SqsDeadLetters::new(aws::sqs(sdk), url, policy)) as Arc<dyn DeadLetters>
            }),
            checkpoints: config.state_table.as_ref().map(|table| {
                Arc::new(DynamoCheckpoints::new(aws::dynamodb(sdk), table, policy))
                    as Arc<dyn CheckpointStore>
            }),
        }
    }

    /// Quarantines the poison records (their bytes, in one S3 object), then reports each to
    /// the dead-letter queue with its reason. Returns the sequence numbers not set aside.
    async fn set_aside(&self, poison: &[(Poison, Option<String>)]) -> BTreeSet<String> {
        let records: Vec<Poison> = poison.iter().map(|(p, _)| p.clone()).collect();
        let key = match self.quarantine_all(&records, "").await {
            Ok(key) => key,
            Err(e) => {
                // Not set aside: let Lambda retry them (and, past the retry limit, send them
                // to the on-failure destination) rather than drop them.
                tracing::error!(error = %e, "could not quarantine poison records");
                return records.into_iter().map(|p| p.sequence_number).collect();
            }
        };
        let mut failed = BTreeSet::new();
        let Some(dlq) = &self.dead_letters else {
            return failed;
        };
        for (p, shard) in poison {
            let notice = stream::poison_notice(FUNCTION, shard.as_deref(), &key, p);
            if let Err(e) = dlq.send(notice).await {
                tracing::error!(sequence_number = %p.sequence_number, error = %e, "poison record not reported to the dead-letter queue");
                failed.insert(p.sequence_number.clone());
            }
        }
        failed
    }

    async fn quarantine_all(&self, records: &[Poison], label: &str) -> Result<String, String> {
        // Named by the first sequence number: a retried batch rewrites the same object
        // instead of quarantining its records again.
        let first = records
            .first()
            .map(|p| p.sequence_number.as_str())
            .unwrap_or("none");
        let key = archive::quarantine_key(
            POISON_SOURCE,
            "consumer",
            Utc::now(),
            &format!("{label}{first}-{}", records.len()),
        );
        self.quarantine
            .put(Object {
                key: key.clone(),
                body: archive::gzip(&archive::json_lines(records)),
                content_type: "application/x-ndjson",
                content_encoding: Some("gzip"),
                metadata: vec![],
            })
            .await
            .map(|()| key)
            .map_err(|e| e.to_string())
    }

    /// The stored changes a batch's records of one entity are judged against, and whether
    /// the entity has any. In order, the common case reads one item (the newest change);
    /// records older than it, or a change that needs statistics, read the window around them.
    async fn stored_around(
        &self,
        pk: &str,
        incoming: &[(usize, &Envelope)],
    ) -> Result<(Vec<Change>, bool), StoreError> {
        let Some(newest) = self.reader.newest(pk).await? else {
            return Ok((Vec::new(), false));
        };
        let Some(first) = incoming.iter().map(|(_, e)| table::order_ms(e)).min() else {
            return Ok((vec![newest], true));
        };
        let series = incoming
            .first()
            .is_some_and(|(_, e)| table::order_of(e.kind()) == Order::Series);
        let from = if series {
            first
        } else {
            first - self.rules.reach_ms()
        };
        let late = first <= newest.at_ms;
        if !late
            && (series
                || newest.at_ms < from
                || incoming
                    .iter()
                    .all(|(_, e)| table::signature(&e.payload) == newest.signature))
        {
            return Ok((vec![newest], true));
        }
        let from_sk = table::sk_at(from);
        let (before, since) = tokio::join!(
            self.reader.before(pk, &from_sk),
            self.reader.since(pk, &from_sk)
        );
        let mut all: BTreeMap<String, Change> = BTreeMap::new();
        for c in before?.into_iter().chain(since?) {
            all.insert(c.sk.clone(), c);
        }
        Ok((all.into_values().collect(), true))
    }

    pub async fn process(&self, event: KinesisEvent) -> (KinesisEventResponse, BatchSummary) {
        let mut summary = BatchSummary {
            received: event.records.len(),
            ..Default::default()
        };
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut envelopes: Vec<Envelope> = Vec::with_capacity(event.records.len());
        let mut positions: Vec<usize> = Vec::with_capacity(event.records.len());
        let mut poison: Vec<(Poison, Option<String>)> = Vec::new();
        for (at, record) in event.records.iter().enumerate() {
            match decode(record).and_then(|e| match table::fits(&e, record.kinesis.data.len()) {
                Ok(()) => Ok(e),
                Err(reason) => Err(Box::new(stream::poison(record, reason))),
            }) {
                Ok(e) => {
                    envelopes.push(e);
                    positions.push(at);
                }
                Err(p) => {
                    tracing::warn!(sequence_number = %p.sequence_number, reason = %p.reason, "poison record set aside");
                    poison.push((*p, stream::shard_of(record).map(str::to_string)));
                }
            }
        }
        summary.poison = poison.len();
        if !poison.is_empty() {
            failed.extend(self.set_aside(&poison).await);
        }
        let seq = |i: usize| event.records[positions[i]].kinesis.sequence_number.clone();

        // Per entity: read what is stored, then plan. Entities are independent.
        let mut by_entity: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, e) in envelopes.iter().enumerate() {
            by_entity.entry(table::entity_pk(e)).or_default().push(i);
        }
        summary.entities = by_entity.len();
        let envelopes_ref = &envelopes;
        let plans: Vec<(Vec<usize>, Result<Plan, StoreError>)> =
            futures_util::stream::iter(by_entity.into_iter().map(|(pk, members)| async move {
                let incoming: Vec<(usize, &Envelope)> =
                    members.iter().map(|&i| (i, &envelopes_ref[i])).collect();
                let plan = self
                    .stored_around(&pk, &incoming)
                    .await
                    .map(|(stored, existed)| {
                        history::plan(stored, existed, &incoming, &self.rules)
                    });
                (members, plan)
            }))
            .buffer_unordered(ENTITY_READS_IN_FLIGHT)
            .collect()
            .await;

        let mut writes: Vec<Planned> = Vec::new();
        let mut implausible: Vec<(usize, String)> = Vec::new();
        for (members, plan) in plans {
            match plan {
                Ok(p) => {
                    summary.changes += p.changes;
                    summary.repeats += p.repeats;
                    summary.duplicates += p.duplicates;
                    summary.flagged += p.flagged;
                    implausible.extend(p.implausible);
                    writes.extend(p.writes);
                }
                Err(e) => {
                    tracing::error!(key = %envelopes[members[0]].key, error = %e, "history not read; the entity's records will be retried");
                    failed.extend(members.into_iter().map(seq));
                }
            }
        }
        summary.implausible = implausible.len();
        if !implausible.is_empty() {
            let records: Vec<Poison> = implausible
                .iter()
                .map(|(i, reason)| {
                    tracing::warn!(key = %envelopes[*i].key, reason = %reason, "implausible record quarantined");
                    stream::poison(&event.records[positions[*i]], reason.clone())
                })
                .collect();
            if let Err(e) = self.quarantine_all(&records, "implausible-").await {
                tracing::error!(error = %e, "could not quarantine implausible records");
                failed.extend(implausible.iter().map(|(i, _)| seq(*i)));
            }
        }

        summary.writes = writes.len();
        let outcome = self.writer.write(writes).await;
        summary.write_requests = outcome.requests;
        summary.retried_items = outcome.retried_items;
        if let Some(err) = &outcome.last_error {
            if !outcome.failed.is_empty() {
                tracing::error!(failed = outcome.failed.len(), error = %err, "history items not written");
            }
        }
        failed.extend(outcome.failed.iter().map(|&i| seq(i)));

        summary.failed = failed.len();
        if let Some(store) = &self.checkpoints {
            checkpoint_batch(store.as_ref(), FUNCTION, &event.records, &failed).await;
        }
        let mut response = KinesisEventResponse::default();
        for seq in failed {
            response.add_failure(seq);
        }
        (response, summary)
    }
}

pub async fn handle(
    consumer: &Consumer,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let (response, s) = consumer.process(event.payload).await;
    tracing::info!(
        received = s.received,
        entities = s.entities,
        changes = s.changes,
        repeats = s.repeats,
        duplicates = s.duplicates,
        flagged = s.flagged,
        implausible = s.implausible,
        poison = s.poison,
        failed = s.failed,
        writes = s.writes,
        write_requests = s.write_requests,
        retried_items = s.retried_items,
        "batch stored"
    );
    // Metrics (a billed series each): what an alarm or the dashboard reads. Details: in
    // the line only, for Logs Insights.
    Emf::new(&[("function", "consumer")])
        .count("RecordsIn", s.received as u64)
        .count("Changes", s.changes as u64)
        .count("Implausible", s.implausible as u64)
        .count("Poison", s.poison as u64)
        .count("FailedRecords", s.failed as u64)
        .detail("Repeats", s.repeats as u64)
        .detail("Flagged", s.flagged as u64)
        .detail("WriteRequests", s.write_requests as u64)
        .detail("RetriedItems", s.retried_items as u64)
        .emit();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryDeadLetters, MemoryPrices};
    use crate::plausibility::Plausibility;
    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemInput, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::WriteRequest;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use lambda_runtime::Context;
    use pricewire_pipeline::adapters::memory::{MemoryArchive, MemoryCheckpoints};
    use pricewire_pipeline::envelope::{FlightPrice, Money, Payload};
    use pricewire_pipeline::stream::event_record;
    use std::collections::HashMap;
    use std::sync::Mutex;

    fn no_retry(c: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
        c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
    }

    fn envelope(entity: usize, price: i64) -> Envelope {
        let t = chrono::DateTime::from_timestamp(1_790_000_000 + price, 0).unwrap();
        Envelope::new(
            "travelpayouts",
            "j",
            format!("LED-KZN/2026-12-{:02}/oneway", entity % 28 + 1),
            Some(t),
            t,
            Payload::FlightPrice(FlightPrice::new(
                "LED",
                "KZN",
                "2026-12-05",
                Money {
                    amount: price.into(),
                    currency: "RUB".into(),
                },
            )),
        )
    }

    fn kinesis_event(envelopes: &[Envelope], poison: &[(usize, &[u8])]) -> KinesisEvent {
        let mut records: Vec<_> = envelopes.iter().map(|e| e.to_json()).collect();
        for (at, bytes) in poison {
            records.insert(*at, bytes.to_vec());
        }
        let mut event = KinesisEvent::default();
        event.records = records
            .into_iter()
            .enumerate()
            .map(|(i, data)| event_record(&format!("{:056}", i + 1), "pk", data))
            .collect();
        event
    }

    fn key_of(w: &WriteRequest) -> (String, String) {
        let item = w.put_request().unwrap().item();
        let s = |k: &str| item[k].as_s().unwrap().clone();
        (s("pk"), s("sk"))
    }

    fn history_rules() -> HistoryRules {
        HistoryRules {
            windows: vec![7, 30],
            plausibility: Plausibility::default(),
            ttl: chrono::Duration::days(90),
        }
    }

    /// An empty prices table, as far as reads go.
    fn nothing_stored() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_dynamodb::Client::query).then_output(|| QueryOutput::builder().build())
    }

    /// The (pk, sk) keys of every BatchWriteItem request, in order.
    type RequestLog = Arc<Mutex<Vec<Vec<(String, String)>>>>;

    /// Records every BatchWriteItem request; returns as unprocessed the items `unprocessed` picks.
    fn batch_rule(
        log: RequestLog,
        unprocessed: impl Fn(usize, &(String, String)) -> bool + Send + Sync + 'static,
    ) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_dynamodb::Client::batch_write_item).then_compute_output(
            move |input: &BatchWriteItemInput| {
                let requests = input.request_items().unwrap()["prices"].clone();
                let mut log = log.lock().unwrap();
                let call = log.len();
                log.push(requests.iter().map(key_of).collect());
                let left: Vec<WriteRequest> = requests
                    .into_iter()
                    .filter(|w| unprocessed(call, &key_of(w)))
                    .collect();
                let mut out = BatchWriteItemOutput::builder();
                if !left.is_empty() {
                    out = out.unprocessed_items("prices", left);
                }
                out.build()
            },
        )
    }

    type Fakes = (
        Consumer,
        Arc<MemoryArchive>,
        Arc<MemoryDeadLetters>,
        Arc<MemoryCheckpoints>,
    );

    fn consumer(rules: &[&aws_smithy_mocks::Rule]) -> Fakes {
        consumer_with(rules, MemoryDeadLetters::default())
    }

    fn consumer_with(rules: &[&aws_smithy_mocks::Rule], queue: MemoryDeadLetters) -> Fakes {
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            rules.iter().copied(),
            no_retry
        );
        let policy = RetryPolicy::new(4, Duration::from_millis(1), Duration::from_millis(2));
        let bucket = Arc::new(MemoryArchive::default());
        let queue = Arc::new(queue);
        let marks = Arc::new(MemoryCheckpoints::default());
        let prices = Arc::new(DynamoPrices::new(client, "prices", policy));
        (
            Consumer {
                reader: prices.clone(),
                writer: prices,
                rules: history_rules(),
                quarantine: bucket.clone(),
                dead_letters: Some(queue.clone()),
                checkpoints: Some(marks.clone()),
            },
            bucket,
            queue,
            marks,
        )
    }

    #[tokio::test]
    async fn unprocessed_items_and_duplicates_land_exactly_once_in_requests_of_at_most_25() {
        // 60 records over 28 entities: 50 distinct observations (each a change), 10 twice.
        let distinct: Vec<Envelope> = (0..50).map(|i| envelope(i, 1000 + i as i64)).collect();
        let mut all = distinct.clone();
        all.extend(distinct[..10].iter().cloned());
        let log = Arc::new(Mutex::new(Vec::new()));
        // First two requests leave a third of their items unprocessed.
        let unprocessed = |call: usize, key: &(String, String)| {
            call < 2 && key.1.len() > 5 && key.1.as_bytes()[5].is_multiple_of(3)
        };
        let batch = batch_rule(log.clone(), unprocessed);
        let query = nothing_stored();
        let (c, ..) = consumer(&[&batch, &query]);
        let (response, summary) = c.process(kinesis_event(&all, &[])).await;
        assert!(response.batch_item_failures.is_empty(), "{:?}", response);
        assert_eq!(
            (summary.changes, summary.duplicates, summary.entities),
            (50, 10, 28)
        );
        assert_eq!(query.num_calls(), 28, "one read per entity");

        let log = log.lock().unwrap();
        let mut accepted: HashMap<(String, String), usize> = HashMap::new();
        for (call, request) in log.iter().enumerate() {
            assert!(request.len() <= 25, "request of {}", request.len());
            let unique: BTreeSet<_> = request.iter().collect();
            assert_eq!(
                unique.len(),
                request.len(),
                "duplicate key inside one request"
            );
            for key in request {
                if !unprocessed(call, key) {
                    *accepted.entry(key.clone()).or_default() += 1;
                }
            }
        }
        let changes: BTreeSet<String> = distinct.iter().map(table::change_sk).collect();
        let written: BTreeSet<String> = accepted
            .keys()
            .filter(|k| k.1 != table::ENTITY_SK)
            .map(|k| k.1.clone())
            .collect();
        assert_eq!(written, changes, "every observation written");
        assert_eq!(
            accepted.keys().filter(|k| k.1 == table::ENTITY_SK).count(),
            28,
            "one entity item per new entity"
        );
        assert!(accepted.values().all(|&n| n == 1), "each written once");
        assert!(log.len() > 4, "unprocessed items were retried");
    }

    #[tokio::test]
    async fn failures_and_poison_are_reported_by_sequence_number() {
        let envelopes: Vec<Envelope> = (0..5).map(|i| envelope(i, 2000 + i as i64)).collect();
        let stuck = table::change_sk(&envelopes[3]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let batch = batch_rule(log.clone(), move |_, key| key.1 == stuck);
        let query = nothing_stored();
        let (c, bucket, queue, marks) = consumer(&[&batch, &query]);
        // Poison at positions 0 and 4 shift the envelopes: envelope 3 is record 5 (seq …05).
        let event = kinesis_event(
            &envelopes,
            &[(0, b"not json"), (4, br#"{"schema":1,"id":"x"}"#)],
        );
        let response = handle(&c, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(
            failed,
            vec![format!("{:056}", 6)],
            "only the record whose item stayed unprocessed"
        );
        let objects = bucket.objects();
        assert_eq!(objects.len(), 1);
        assert!(objects[0].key.starts_with("quarantine/source=stream/"));
        let lines = String::from_utf8(archive::gunzip(&objects[0].body).unwrap()).unwrap();
        assert_eq!(lines.lines().count(), 2);
        assert!(
            lines.contains(&format!("\"sequence_number\":\"{:056}\"", 1))
                && lines.contains("not a valid envelope"),
            "{lines}"
        );
        // Each poison record is in the dead-letter queue with its reason and its quarantine object.
        let notices: Vec<serde_json::Value> = queue
            .sent()
            .iter()
            .map(|n| serde_json::from_str(n).unwrap())
            .collect();
        assert_eq!(notices.len(), 2);
        for (n, seq) in notices.iter().zip([1, 5]) {
            assert_eq!(n["kind"], "poison");
            assert_eq!(n["sequence_number"], format!("{seq:056}"));
            assert_eq!(n["quarantine_key"], objects[0].key.as_str());
            assert!(!n["reason"].as_str().unwrap().is_empty(), "{n}");
        }
        // Checkpointed just before the first failure (record 6).
        assert_eq!(
            marks.written(),
            vec![(
                "consumer".to_string(),
                "shardId-000000000000".to_string(),
                format!("{:056}", 5)
            )]
        );
    }

    #[tokio::test]
    async fn poison_that_cannot_be_reported_is_retried_not_dropped() {
        let batch = batch_rule(Arc::new(Mutex::new(Vec::new())), |_, _| false);
        let query = nothing_stored();
        let (c, bucket, ..) = consumer_with(&[&batch, &query], MemoryDeadLetters::refusing());
        let event = kinesis_event(&[envelope(1, 3000)], &[(1, b"\xff\xfe")]);
        let (response, summary) = c.process(event).await;
        assert_eq!(summary.poison, 1);
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(failed, vec![format!("{:056}", 2)]);
        assert_eq!(bucket.objects().len(), 1, "quarantined all the same");
    }

    fn in_memory() -> (Consumer, Arc<MemoryPrices>, Arc<MemoryArchive>) {
        let prices = Arc::new(MemoryPrices::default());
        let bucket = Arc::new(MemoryArchive::default());
        (
            Consumer {
                reader: prices.clone(),
                writer: prices.clone(),
                rules: history_rules(),
                quarantine: bucket.clone(),
                dead_letters: None,
                checkpoints: None,
            },
            prices,
            bucket,
        )
    }

    /// Entity `entity` at `price`, fetched `minutes` after a fixed time.
    fn fare(entity: usize, price: i64, minutes: i64) -> Envelope {
        let t = chrono::DateTime::from_timestamp(1_790_000_000 + minutes * 60, 0).unwrap();
        let e = envelope(entity, 1);
        let mut payload = e.payload;
        if let Payload::FlightPrice(f) = &mut payload {
            f.price.amount = price.into();
        }
        Envelope::new(&e.source, &e.job, e.key, None, t, payload)
    }

    #[tokio::test]
    async fn a_day_of_repeats_costs_one_write_per_change_and_a_replay_costs_none() {
        let (c, prices, bucket) = in_memory();
        // Three entities every 5 minutes for 2 hours; entity 0 drops twice, 1 once, 2 never.
        let price = |entity: usize, step: i64| match entity {
            0 => [5000, 4800, 4500][(step / 8) as usize],
            1 => {
                if step < 12 {
                    7000
                } else {
                    6900
                }
            }
            _ => 3000,
        };
        let mut day = Vec::new();
        for step in 0..24 {
            for entity in 0..3 {
                day.push(fare(entity, price(entity, step), step * 5));
            }
        }
        let mut changes = 0;
        for batch in day.chunks(10) {
            let (response, s) = c.process(kinesis_event(batch, &[])).await;
            assert!(response.batch_item_failures.is_empty());
            changes += s.changes;
        }
        assert_eq!(
            changes,
            3 + 2 + 1,
            "first sight of each entity, then each drop"
        );
        assert_eq!(
            prices.writes(),
            6 + 3,
            "one item per change, one per entity"
        );
        let stored: Vec<i64> = prices
            .changes()
            .iter()
            .map(|c| c.price.try_into().unwrap())
            .collect();
        assert_eq!(stored, vec![5000, 4800, 4500, 7000, 6900, 3000]);
        // Replay everything, in one batch and out of order: nothing written.
        let mut shuffled = day.clone();
        fastrand::Rng::with_seed(3).shuffle(&mut shuffled);
        let (_, s) = c.process(kinesis_event(&shuffled, &[])).await;
        assert_eq!((s.changes, s.writes), (0, 0), "{s:?}");
        assert_eq!(prices.writes(), 9);
        assert!(bucket.objects().is_empty());
    }

    #[tokio::test]
    async fn an_implausible_fare_is_quarantined_with_its_reason_and_stored_nowhere() {
        let (c, prices, bucket) = in_memory();
        let records = [
            fare(0, 5000, 0),
            fare(0, 1_000_000_000_000_000, 5),
            fare(0, 5000, 10),
        ];
        let (response, s) = c.process(kinesis_event(&records, &[])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((s.changes, s.repeats, s.implausible), (1, 1, 1));
        assert_eq!(prices.changes().len(), 1);
        let objects = bucket.objects();
        assert_eq!(objects.len(), 1);
        let lines = String::from_utf8(archive::gunzip(&objects[0].body).unwrap()).unwrap();
        assert!(
            lines.contains("1000000000000000 is above the bound 10000000"),
            "{lines}"
        );
    }

    #[tokio::test]
    async fn an_entity_whose_history_cannot_be_read_is_retried_alone() {
        let prices = Arc::new(MemoryPrices::failing(
            "ProvisionedThroughputExceededException",
        ));
        let (mut c, ..) = in_memory();
        c.reader = prices;
        let (response, s) = c.process(kinesis_event(&[fare(0, 5000, 0)], &[])).await;
        assert_eq!(s.failed, 1);
        assert_eq!(response.batch_item_failures.len(), 1);
    }
}
