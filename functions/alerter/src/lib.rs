//! The alerter: Kinesis batch → rules → one SNS publish per (rule, entity, price) within the
//! de-duplication window, claimed in DynamoDB before publishing so a retried batch, a
//! replay or a duplicate record never sends the same deal twice.

pub mod adapters;
pub mod config;
pub mod gsm;
pub mod message;
pub mod ports;
pub mod rules;

/// How far ahead of this function's clock a record's fetched_at may be (the collector's
/// clock, NTP-synced like this one) before its age is taken as unknowable.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

use adapters::dynamodb::DynamoDedup;
use adapters::sns::SnsTopic;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use chrono::Utc;
use config::AlerterConfig;
use lambda_runtime::LambdaEvent;
use ports::{AlertPublisher, Claim, DedupStore};
use pricewire_pipeline::adapters::dynamodb::DynamoCheckpoints;
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::checkpoint::{checkpoint_batch, CheckpointStore};
use pricewire_pipeline::envelope::{Envelope, Payload};
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::stream::decode;
use pricewire_pipeline::table;
use rules::RuleSet;
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Dedup keys longer than this are replaced by their digest (DynamoDB: partition key ≤ 2048 bytes).
const DEDUP_KEY_MAX_BYTES: usize = 1024;
const BASE_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// The name the alerter checkpoints under.
pub const FUNCTION: &str = "alerter";

pub struct Alerter {
    pub rules: RuleSet,
    pub dedup: Arc<dyn DedupStore>,
    pub publisher: Arc<dyn AlertPublisher>,
    pub window: Duration,
    /// Records fetched longer ago raise no alert (see `AlerterConfig::max_age`).
    pub max_age: Duration,
    pub checkpoints: Option<Arc<dyn CheckpointStore>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub received: usize,
    pub matched: usize,
    pub published: usize,
    pub duplicates: usize,
    pub rule_errors: usize,
    pub skipped_invalid: usize,
    /// Records too old to alert on (replays of old data).
    pub stale: usize,
    pub failed: usize,
}

/// The de-duplication key of a deal: rule, entity and exact price (and line, for odds; and
/// time, for market data).
pub fn dedup_key(rule: &str, e: &Envelope) -> String {
    let price = match &e.payload {
        Payload::FlightPrice(f) => format!("{}{}", f.price.amount.normalize(), f.price.currency),
        Payload::OddsQuote(q) => match q.point {
            Some(p) => format!("{}@{}", q.price.normalize(), p.normalize()),
            None => q.price.normalize().to_string(),
        },
        Payload::Price(p) => format!(
            "{}{}",
            p.price.normalize(),
            p.currency.as_deref().unwrap_or_default()
        ),
        // Every candle, funding time and open-interest reading is its own observation:
        // the same value at another time is another deal.
        other => format!(
            "{}@{}",
            other.amount().normalize(),
            e.observed_at.timestamp_millis()
        ),
    };
    let key = format!("ALERT#{rule}#{}#{}#{}#{price}", e.source, e.kind(), e.key);
    table::bounded_key(key, DEDUP_KEY_MAX_BYTES)
}

impl Alerter {
    pub fn from_config(config: AlerterConfig, sdk: &aws::SdkConfig) -> Alerter {
        let policy = RetryPolicy::new(config.write_max_attempts, BASE_DELAY, MAX_DELAY);
        Alerter {
            dedup: Arc::new(DynamoDedup::new(
                aws::dynamodb(sdk),
                &config.state_table,
                policy,
            )),
            publisher: Arc::new(SnsTopic::new(aws::sns(sdk), &config.topic_arn, policy)),
            checkpoints: Some(Arc::new(DynamoCheckpoints::new(
                aws::dynamodb(sdk),
                &config.state_table,
                policy,
            ))),
            rules: config.rules,
            window: config.dedup_window,
            max_age: config.max_age,
        }
    }

    pub async fn process(&self, event: KinesisEvent) -> (KinesisEventResponse, BatchSummary) {
        let mut summary = BatchSummary {
            received: event.records.len(),
            ..Default::default()
        };
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let now = Utc::now();
        for record in &event.records {
            let seq = &record.kinesis.sequence_number;
            let envelope = match decode(record) {
                Ok(e) => e,
                Err(p) => {
                    // The consumer quarantines poison records; here they just carry no alert.
                    tracing::warn!(sequence_number = %seq, reason = %p.reason, "not an envelope; no alert");
                    summary.skipped_invalid += 1;
                    continue;
                }
            };
            // A record from the future (beyond clock skew) is as untrustworthy as an old
            // one: its age cannot be known, so it does not alert.
            let age = now - envelope.fetched_at;
            let future = age < -chrono::Duration::from_std(MAX_CLOCK_SKEW).unwrap_or_default();
            if future || age.to_std().is_ok_and(|age| age > self.max_age) {
                if future {
                    tracing::warn!(key = %envelope.key, fetched_at = %envelope.fetched_at, "fetched_at is in the future; no alert");
                }
                summary.stale += 1;
                continue;
            }
            let evaluation = self.rules.evaluate(&envelope);
            for (rule, error) in &evaluation.errors {
                tracing::warn!(rule = %rule, key = %envelope.key, error = %error, "rule could not be evaluated");
            }
            summary.rule_errors += evaluation.errors.len();
            for rule in evaluation.matched {
                summary.matched += 1;
                let key = dedup_key(&rule.spec.name, &envelope);
                if !seen.insert(key.clone()) {
                    summary.duplicates += 1;
                    continue;
                }
                match self.alert_once(&key, &rule.spec.name, &envelope).await {
                    Ok(true) => summary.published += 1,
                    Ok(false) => summary.duplicates += 1,
                    Err(e) => {
                        tracing::error!(rule = %rule.spec.name, key = %envelope.key, error = %e, "alert not sent");
                        failed.insert(seq.clone());
                    }
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

    /// Claims the deal, publishes, marks it sent. `Ok(false)`: sent before, within the window.
    /// A failed publish releases the claim, so the retried record takes it again.
    async fn alert_once(&self, key: &str, rule: &str, e: &Envelope) -> Result<bool, String> {
        match self
            .dedup
            .claim(key, &e.id, Utc::now(), self.window)
            .await
            .map_err(|e| e.to_string())?
        {
            Claim::AlreadySent => Ok(false),
            Claim::Acquired => {
                let alert = message::alert(rule, e);
                let message_id = match self.publisher.publish(&alert).await {
                    Ok(id) => id,
                    Err(err) => {
                        if let Err(release) = self.dedup.release(key).await {
                            // The claim stays pending until its lease runs out; a later retry
                            // or observation then sends the deal.
                            tracing::warn!(key, error = %release, "claim not released");
                        }
                        return Err(err.to_string());
                    }
                };
                tracing::info!(rule, key = %e.key, message_id = %message_id, sms = %alert.sms, "alert published");
                if let Err(err) = self.dedup.mark_sent(key, &e.id, &message_id).await {
                    // Published: report success. The claim stays pending for its lease, so a
                    // retry within 15 minutes does not send it again; reporting a failure would.
                    tracing::warn!(rule, key = %e.key, error = %err, "alert sent but not marked sent");
                }
                Ok(true)
            }
        }
    }
}

pub async fn handle(
    alerter: &Alerter,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let (response, s) = alerter.process(event.payload).await;
    tracing::info!(
        received = s.received,
        matched = s.matched,
        published = s.published,
        duplicates = s.duplicates,
        rule_errors = s.rule_errors,
        skipped_invalid = s.skipped_invalid,
        stale = s.stale,
        failed = s.failed,
        "batch evaluated"
    );
    Emf::new(&[("function", "alerter")])
        .count("RecordsIn", s.received as u64)
        .count("RulesMatched", s.matched as u64)
        .count("AlertsPublished", s.published as u64)
        .count("AlertDuplicates", s.duplicates as u64)
        .count("RuleErrors", s.rule_errors as u64)
        .count("StaleRecords", s.stale as u64)
        .count("FailedRecords", s.failed as u64)
        .emit();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryPublisher;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
    use lambda_runtime::Context;
    use pricewire_pipeline::envelope::{FlightPrice, Money};
    use pricewire_pipeline::stream::event_record;
    use std::collections::HashMap;
    use std::sync::Mutex;

    const RULES: &str = r#"[{"name":"cheap-aeroflot","source":"travelpayouts","kind":"flight_price","when":"price < 5000 && gate == \"Aeroflot\""}]"#;

    fn deal(entity: u32, price: i64, gate: &str) -> Envelope {
        Envelope::new(
            "travelpayouts",
            "j",
            format!("LED-KZN/2026-12-{entity:02}/oneway"),
            None,
            Utc::now(),
            Payload::FlightPrice(FlightPrice {
                origin: "LED".into(),
                destination: "KZN".into(),
                departure_at: format!("2026-12-{entity:02}"),
                return_at: None,
                price: Money {
                    amount: price.into(),
                    currency: "RUB".into(),
                },
                carrier: None,
                flight_number: None,
                gate: Some(gate.into()),
                transfers: Some(0),
                duration_minutes: None,
                trip_class: None,
                distance_km: None,
                actual: None,
                link: Some("https://www.aviasales.com/search/LED0512KZN1".into()),
            }),
        )
    }

    fn event(envelopes: &[Envelope]) -> KinesisEvent {
        let mut e = KinesisEvent::default();
        e.records = envelopes
            .iter()
            .enumerate()
            .map(|(i, env)| event_record(&format!("{:03}", i + 1), &env.key, env.to_json()))
            .collect();
        e
    }

    /// A state table in memory behind the real DynamoDB adapter: conditional puts honoured.
    fn state_table() -> (Arc<DynamoDedup>, Arc<Mutex<HashMap<String, String>>>) {
        let claims: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let c = claims.clone();
        let put = mock!(aws_sdk_dynamodb::Client::put_item).then_compute_response(move |input| {
            let pk = input.item().unwrap()["pk"].as_s().unwrap().clone();
            let mut claims = c.lock().unwrap();
            // The real condition: free when absent or released (a fresh pending claim is leased).
            match claims.get(&pk).map(String::as_str) {
                Some("sent") | Some("pending") => {
                    MockResponse::Error(PutItemError::ConditionalCheckFailedException(
                        aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder()
                            .message("exists")
                            .build(),
                    ))
                }
                _ => {
                    claims.insert(pk, "pending".into());
                    MockResponse::Output(PutItemOutput::builder().build())
                }
            }
        });
        let c = claims.clone();
        let update =
            mock!(aws_sdk_dynamodb::Client::update_item).then_compute_output(move |input| {
                let pk = input.key().unwrap()["pk"].as_s().unwrap().clone();
                // mark_sent sets :sent; release sets :released.
                let values = input.expression_attribute_values().unwrap();
                let status = if values.contains_key(":sent") {
                    "sent"
                } else {
                    "released"
                };
                c.lock().unwrap().insert(pk, status.into());
                UpdateItemOutput::builder().build()
            });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&put, &update],
            |c: aws_sdk_dynamodb::config::Builder| c
                .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        );
        let policy = RetryPolicy::new(2, Duration::from_millis(1), Duration::from_millis(2));
        (Arc::new(DynamoDedup::new(client, "state", policy)), claims)
    }

    fn alerter(phone: Arc<MemoryPublisher>) -> (Alerter, Arc<Mutex<HashMap<String, String>>>) {
        let (dedup, claims) = state_table();
        (
            Alerter {
                rules: RuleSet::from_json(RULES).unwrap(),
                dedup,
                publisher: phone,
                window: Duration::from_secs(3600),
                max_age: Duration::from_secs(3600),
                checkpoints: None,
            },
            claims,
        )
    }

    #[tokio::test]
    async fn the_same_deal_twice_gives_one_publish_even_across_batches() {
        let phone = Arc::new(MemoryPublisher::default());
        let (a, _) = alerter(phone.clone());
        let batch = [
            deal(5, 4830, "Aeroflot"),
            deal(5, 4830, "Aeroflot"),
            deal(6, 6000, "Aeroflot"),
            deal(7, 4000, "Pobeda"),
        ];
        let response = handle(&a, LambdaEvent::new(event(&batch), Context::default()))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
        let (_, summary) = a.process(event(&batch)).await;
        assert_eq!(
            summary.published, 0,
            "a retried or replayed batch sends nothing"
        );
        assert_eq!(summary.duplicates, 2);
        let sent = phone.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].rule, "cheap-aeroflot");
        assert_eq!(sent[0].sms, "LED-KZN 05 Dec 4830 RUB, Aeroflot, direct https://www.aviasales.com/search/LED0512KZN1");
        // A new price of the same entity is a new deal.
        let (_, s) = a.process(event(&[deal(5, 4700, "Aeroflot")])).await;
        assert_eq!(s.published, 1);
    }

    #[tokio::test]
    async fn a_failed_publish_is_reported_by_sequence_number_and_sent_on_retry() {
        let phone = Arc::new(MemoryPublisher::default());
        phone.fail_call(1); // the second publish fails
        let (a, claims) = alerter(phone.clone());
        let batch = [
            deal(1, 100, "Aeroflot"),
            deal(2, 200, "Aeroflot"),
            deal(3, 300, "Aeroflot"),
        ];
        let (response, _) = a.process(event(&batch)).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(failed, vec!["002".to_string()]);
        assert_eq!(
            claims
                .lock()
                .unwrap()
                .values()
                .filter(|s| *s == "released")
                .count(),
            1,
            "the failed deal's claim was given back"
        );
        // Lambda retries from the failed record: records 2 and 3.
        let (response, summary) = a.process(event(&batch[1..])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((summary.published, summary.duplicates), (1, 1));
        let keys: Vec<String> = phone.sent().iter().map(|a| a.key.clone()).collect();
        assert_eq!(keys.len(), 3, "each deal exactly once: {keys:?}");
    }

    #[tokio::test]
    async fn records_older_than_the_max_age_raise_no_alert() {
        let phone = Arc::new(MemoryPublisher::default());
        let (a, _) = alerter(phone.clone());
        let mut old = deal(8, 1000, "Aeroflot");
        old.fetched_at = Utc::now() - chrono::Duration::hours(2);
        let (response, summary) = a.process(event(&[old, deal(9, 1000, "Aeroflot")])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((summary.stale, summary.published), (1, 1));
        assert_eq!(phone.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_record_from_the_future_does_not_bypass_the_age_check() {
        let phone = Arc::new(MemoryPublisher::default());
        let (a, _) = alerter(phone.clone());
        let mut future = deal(8, 1000, "Aeroflot");
        future.fetched_at = Utc::now() + chrono::Duration::days(30);
        let mut skewed = deal(9, 1000, "Aeroflot");
        skewed.fetched_at = Utc::now() + chrono::Duration::seconds(20);
        let (_, summary) = a.process(event(&[future, skewed])).await;
        assert_eq!((summary.stale, summary.published), (1, 1), "{summary:?}");
        assert_eq!(phone.sent().len(), 1);
    }

    #[test]
    fn dedup_keys_separate_rules_entities_and_prices() {
        let a = dedup_key("r", &deal(1, 100, "G"));
        assert_eq!(
            a,
            "ALERT#r#travelpayouts#flight_price#LED-KZN/2026-12-01/oneway#100RUB"
        );
        assert_ne!(a, dedup_key("r2", &deal(1, 100, "G")));
        assert_ne!(a, dedup_key("r", &deal(1, 101, "G")));
        assert_eq!(a, dedup_key("r", &deal(1, 100, "Other gate, same deal")));
    }
}
