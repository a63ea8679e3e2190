//! The consumer: Kinesis batch → DynamoDB history (idempotent, BatchWriteItem) and latest
//! (conditional put), poison records to the S3 quarantine, failures reported per record so
//! Lambda checkpoints everything before the first failure.

pub mod adapters;
pub mod config;
pub mod ports;

use adapters::dynamodb::DynamoPriceStore;
use adapters::sqs::SqsDeadLetters;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use chrono::Utc;
use config::ConsumerConfig;
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;
use ports::{DeadLetters, LatestOutcome, PriceStore};
use pricewire_pipeline::adapters::dynamodb::DynamoCheckpoints;
use pricewire_pipeline::adapters::s3::{Archive, Object, S3Archive};
use pricewire_pipeline::archive;
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::checkpoint::{checkpoint_batch, CheckpointStore};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::stream::{self, decode, Poison};
use pricewire_pipeline::table;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

const WRITE_BASE_DELAY: Duration = Duration::from_millis(50);
const WRITE_MAX_DELAY: Duration = Duration::from_secs(2);
/// Conditional `latest` puts in flight at once in one batch (one per entity).
const LATEST_PUTS_IN_FLIGHT: usize = 16;
/// Source label of quarantine files written for stream records that are not envelopes.
pub const POISON_SOURCE: &str = pricewire_pipeline::archive::STREAM_QUARANTINE_SOURCE;
/// The name the consumer checkpoints and reports poison under.
pub const FUNCTION: &str = "consumer";

pub struct Consumer {
    pub store: Arc<dyn PriceStore>,
    pub quarantine: Arc<dyn Archive>,
    /// The consumer's dead-letter queue: one notice per poison record, with its reason.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
    pub checkpoints: Option<Arc<dyn CheckpointStore>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub received: usize,
    pub stored: usize,
    pub latest_written: usize,
    pub latest_stale: usize,
    pub poison: usize,
    pub failed: usize,
    pub write_requests: usize,
    pub retried_items: usize,
}

impl Consumer {
    pub fn from_config(config: &ConsumerConfig, sdk: &aws::SdkConfig) -> Consumer {
        let policy = RetryPolicy::new(config.write_max_attempts, WRITE_BASE_DELAY, WRITE_MAX_DELAY);
        Consumer {
            store: Arc::new(DynamoPriceStore::new(
                aws::dynamodb(sdk),
                &config.prices_table,
                config.history_ttl_days,
                policy,
            )),
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
        let key = match self.quarantine_all(&records).await {
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

    async fn quarantine_all(&self, poison: &[Poison]) -> Result<String, String> {
        // Named by the first sequence number: a retried batch rewrites the same object
        // instead of quarantining its poison again.
        let first = poison
            .first()
            .map(|p| p.sequence_number.as_str())
            .unwrap_or("none");
        let key = archive::quarantine_key(
            POISON_SOURCE,
            "consumer",
            Utc::now(),
            &format!("{first}-{}", poison.len()),
        );
        self.quarantine
            .put(Object {
                key: key.clone(),
                body: archive::gzip(&archive::json_lines(poison)),
                content_type: "application/x-ndjson",
                content_encoding: Some("gzip"),
                metadata: vec![],
            })
            .await
            .map(|()| key)
            .map_err(|e| e.to_string())
    }

    pub async fn process(&self, event: KinesisEvent) -> (KinesisEventResponse, BatchSummary) {
        let mut summary = BatchSummary {
            received: event.records.len(),
            ..Default::default()
        };
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut envelopes: Vec<Envelope> = Vec::with_capacity(event.records.len());
        let mut sequence: Vec<String> = Vec::with_capacity(event.records.len());
        let mut poison: Vec<(Poison, Option<String>)> = Vec::new();
        for record in &event.records {
            match decode(record).and_then(|e| match table::fits(&e, record.kinesis.data.len()) {
                Ok(()) => Ok(e),
                Err(reason) => Err(Box::new(pricewire_pipeline::stream::poison(record, reason))),
            }) {
                Ok(e) => {
                    envelopes.push(e);
                    sequence.push(record.kinesis.sequence_number.clone());
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

        let history = self.store.write_history(&envelopes).await;
        summary.write_requests = history.requests;
        summary.retried_items = history.retried_items;
        if let Some(err) = &history.last_error {
            if !history.failed.is_empty() {
                tracing::error!(failed = history.failed.len(), error = %err, "history items not written");
            }
        }
        for &i in &history.failed {
            failed.insert(sequence[i].clone());
        }
        summary.stored = envelopes.len() - history.failed.len();

        // One conditional put per entity: the newest of this batch.
        let mut newest: HashMap<String, usize> = HashMap::new();
        for (i, e) in envelopes.iter().enumerate() {
            if history.failed.contains(&i) {
                continue;
            }
            let pk = table::entity_pk(e);
            match newest.get(&pk) {
                Some(&j) if std::ptr::eq(table::newest(&envelopes[j], e), &envelopes[j]) => {}
                _ => {
                    newest.insert(pk, i);
                }
            }
        }
        // Conditional puts of different entities are independent: a few in flight at once.
        let store = &self.store;
        let envelopes_ref = &envelopes;
        let outcomes: Vec<(usize, Result<LatestOutcome, _>)> = futures_util::stream::iter(
            newest
                .into_values()
                .map(|i| async move { (i, store.put_latest(&envelopes_ref[i]).await) }),
        )
        .buffer_unordered(LATEST_PUTS_IN_FLIGHT)
        .collect()
        .await;
        for (i, outcome) in outcomes {
            match outcome {
                Ok(LatestOutcome::Written) => summary.latest_written += 1,
                Ok(LatestOutcome::Stale) => summary.latest_stale += 1,
                Err(e) => {
                    tracing::error!(key = %envelopes[i].key, error = %e, "latest item not written");
                    failed.insert(sequence[i].clone());
                }
            }
        }

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
        stored = s.stored,
        latest_written = s.latest_written,
        latest_stale = s.latest_stale,
        poison = s.poison,
        failed = s.failed,
        write_requests = s.write_requests,
        retried_items = s.retried_items,
        "batch stored"
    );
    Emf::new(&[("function", "consumer")])
        .count("RecordsIn", s.received as u64)
        .count("RecordsStored", s.stored as u64)
        .count("LatestWritten", s.latest_written as u64)
        .count("Poison", s.poison as u64)
        .count("FailedRecords", s.failed as u64)
        .count("WriteRequests", s.write_requests as u64)
        .count("RetriedItems", s.retried_items as u64)
        .emit();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryDeadLetters;
    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemInput, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use lambda_runtime::Context;
    use pricewire_pipeline::adapters::memory::{MemoryArchive, MemoryCheckpoints};
    use pricewire_pipeline::envelope::{FlightPrice, Money, Payload};
    use pricewire_pipeline::stream::event_record;
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
        (
            Consumer {
                store: Arc::new(DynamoPriceStore::new(client, "prices", 90, policy)),
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
        // 60 records: 50 distinct observations, 10 delivered twice.
        let distinct: Vec<Envelope> = (0..50).map(|i| envelope(i, 1000 + i as i64)).collect();
        let mut all = distinct.clone();
        all.extend(distinct[..10].iter().cloned());
        let log = Arc::new(Mutex::new(Vec::new()));
        // First two requests leave a third of their items unprocessed.
        let batch = batch_rule(log.clone(), |call, key| {
            call < 2 && key.1.as_bytes()[2] % 3 == 0
        });
        let latest = mock!(aws_sdk_dynamodb::Client::put_item)
            .then_output(|| PutItemOutput::builder().build());
        let (c, ..) = consumer(&[&batch, &latest]);
        let (response, summary) = c.process(kinesis_event(&all, &[])).await;
        assert!(response.batch_item_failures.is_empty(), "{:?}", response);
        assert_eq!(summary.stored, 60);

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
                if !(call < 2 && key.1.as_bytes()[2] % 3 == 0) {
                    *accepted.entry(key.clone()).or_default() += 1;
                }
            }
        }
        assert_eq!(accepted.len(), 50, "every observation written");
        assert!(accepted.values().all(|&n| n == 1), "each written once");
        assert!(log.len() > 2, "unprocessed items were retried");
        assert_eq!(
            latest.num_calls(),
            28,
            "one conditional latest put per entity"
        );
    }

    #[tokio::test]
    async fn failures_and_poison_are_reported_by_sequence_number() {
        let envelopes: Vec<Envelope> = (0..5).map(|i| envelope(i, 2000 + i as i64)).collect();
        let stuck = table::history_sk(&envelopes[3]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let batch = batch_rule(log.clone(), move |_, key| key.1 == stuck);
        // One entity's latest item is newer already: a conditional failure, not an error.
        let stale_pk = table::entity_pk(&envelopes[1]);
        let latest = mock!(aws_sdk_dynamodb::Client::put_item).then_compute_response(move |input| {
            if input.item().unwrap()["pk"] == AttributeValue::S(stale_pk.clone()) {
                aws_smithy_mocks::MockResponse::Error(PutItemError::ConditionalCheckFailedException(
                    aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder().message("newer").build()))
            } else {
                aws_smithy_mocks::MockResponse::Output(PutItemOutput::builder().build())
            }
        });
        let (c, bucket, queue, marks) = consumer(&[&batch, &latest]);
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
        let latest = mock!(aws_sdk_dynamodb::Client::put_item)
            .then_output(|| PutItemOutput::builder().build());
        let (c, bucket, ..) = consumer_with(&[&batch, &latest], MemoryDeadLetters::refusing());
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
}
