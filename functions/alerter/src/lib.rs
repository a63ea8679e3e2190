//! The alerter: the prices table's change stream → rules → one SNS publish per (rule,
//! change). It sees a record only when the consumer stored it as a *change* (a new change
//! item: DynamoDB Streams INSERT), with the entity's statistics as of that change, so a rule
//! fires once per change, never on a re-observation, and a replay that writes nothing sends
//! nothing. Each alert is claimed in DynamoDB before publishing, so a retried batch never
//! sends the same change twice.

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
use aws_lambda_events::dynamodb::{Event as TableEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use config::AlerterConfig;
use lambda_runtime::LambdaEvent;
use ports::{AlertPublisher, Claim, DedupStore};
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::table::{self, Change};
use rules::{History, RuleSet};
use serde::Serialize;
use std::collections::HashSet;
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
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub received: usize,
    /// Stream records that are not a new change (updates, deletes, entity items).
    pub not_changes: usize,
    /// Changes stored flagged implausible: never alerted on.
    pub flagged: usize,
    pub matched: usize,
    pub published: usize,
    pub duplicates: usize,
    pub rule_errors: usize,
    pub skipped_invalid: usize,
    /// Records too old to alert on (replays of old data).
    pub stale: usize,
    pub failed: usize,
}

/// The de-duplication key of an alert: the rule and the change (entity and change item).
pub fn dedup_key(rule: &str, entity: &str, change: &str) -> String {
    table::bounded_key(
        format!("ALERT#{rule}#{entity}#{change}"),
        DEDUP_KEY_MAX_BYTES,
    )
}

/// A stream image as the SDK's item (pricewire's items hold strings and numbers; other
/// types are carried as they come, for completeness).
pub fn image_item(image: &serde_dynamo::Item) -> table::Item {
    fn value(v: &serde_dynamo::AttributeValue) -> AttributeValue {
        use serde_dynamo::AttributeValue as D;
        match v {
            D::S(s) => AttributeValue::S(s.clone()),
            D::N(n) => AttributeValue::N(n.clone()),
            D::Bool(b) => AttributeValue::Bool(*b),
            D::Null(b) => AttributeValue::Null(*b),
            D::B(b) => AttributeValue::B(b.clone().into()),
            D::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), value(v))).collect()),
            D::L(l) => AttributeValue::L(l.iter().map(value).collect()),
            D::Ss(v) => AttributeValue::Ss(v.clone()),
            D::Ns(v) => AttributeValue::Ns(v.clone()),
            D::Bs(v) => AttributeValue::Bs(v.iter().map(|b| b.clone().into()).collect()),
        }
    }
    image.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

/// The change a stream record announces: a new change item (INSERT), else `None`.
pub fn new_change(record: &EventRecord) -> Option<Change> {
    if record.event_name != "INSERT" {
        return None;
    }
    Change::from_item(&image_item(&record.change.new_image))
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
            rules: config.rules,
            window: config.dedup_window,
            max_age: config.max_age,
        }
    }

    pub async fn process(&self, event: TableEvent) -> (DynamoDbEventResponse, BatchSummary) {
        let mut summary = BatchSummary {
            received: event.records.len(),
            ..Default::default()
        };
        let mut failed: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let now = Utc::now();
        for record in &event.records {
            let seq = record.change.sequence_number.clone().unwrap_or_default();
            let Some(change) = new_change(record) else {
                // A rewrite of a change's statistics, a delete, an entity item: not a change.
                summary.not_changes += 1;
                continue;
            };
            if change.flag.is_some() {
                summary.flagged += 1;
                continue;
            }
            let Some(envelope) = change.envelope() else {
                tracing::warn!(sequence_number = %seq, pk = %change.pk, "change item does not hold a record; no alert");
                summary.skipped_invalid += 1;
                continue;
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
            let history = History {
                stats: &change.stats,
                at_ms: change.at_ms,
            };
            let evaluation = self.rules.evaluate_with(&envelope, Some(history));
            for (rule, error) in &evaluation.errors {
                tracing::warn!(rule = %rule, key = %envelope.key, error = %error, "rule could not be evaluated");
            }
            summary.rule_errors += evaluation.errors.len();
            let mut record_failed = false;
            for rule in evaluation.matched {
                summary.matched += 1;
                let key = dedup_key(&rule.spec.name, &change.pk, &change.sk);
                if !seen.insert(key.clone()) {
                    summary.duplicates += 1;
                    continue;
                }
                match self
                    .alert_once(&key, &rule.spec.name, &envelope, &change)
                    .await
                {
                    Ok(true) => summary.published += 1,
                    Ok(false) => summary.duplicates += 1,
                    Err(e) => {
                        tracing::error!(rule = %rule.spec.name, key = %envelope.key, error = %e, "alert not sent");
                        record_failed = true;
                    }
                }
            }
            if record_failed {
                failed.push(seq);
            }
        }
        summary.failed = failed.len();
        let mut response = DynamoDbEventResponse::default();
        for seq in failed {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(seq);
            response.batch_item_failures.push(failure);
        }
        (response, summary)
    }

    /// Claims the deal, publishes, marks it sent. `Ok(false)`: sent before, within the window.
    /// A failed publish releases the claim, so the retried record takes it again.
    async fn alert_once(
        &self,
        key: &str,
        rule: &str,
        e: &Envelope,
        change: &Change,
    ) -> Result<bool, String> {
        match self
            .dedup
            .claim(key, &e.id, Utc::now(), self.window)
            .await
            .map_err(|e| e.to_string())?
        {
            Claim::AlreadySent => Ok(false),
            Claim::Acquired => {
                let mut alert = message::alert(rule, e);
                alert.entity = change.pk.clone();
                alert.change = change.sk.clone();
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
    event: LambdaEvent<TableEvent>,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    let (response, s) = alerter.process(event.payload).await;
    tracing::info!(
        received = s.received,
        not_changes = s.not_changes,
        flagged = s.flagged,
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
        .count("ChangesIn", (s.received - s.not_changes) as u64)
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
    use pricewire_pipeline::envelope::{FlightPrice, Money, Payload};
    use pricewire_pipeline::table::Stats;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::sync::Mutex;

    const RULES: &str = r#"[{"name":"cheap-aeroflot","source":"travelpayouts","kind":"flight_price","when":"price < 5000 && gate == \"Aeroflot\""}]"#;

    /// One fetch time for every deal of a test: the same offer twice is the same change.
    fn fetched() -> chrono::DateTime<Utc> {
        static AT: std::sync::OnceLock<chrono::DateTime<Utc>> = std::sync::OnceLock::new();
        *AT.get_or_init(Utc::now)
    }

    fn deal(entity: u32, price: i64, gate: &str) -> Envelope {
        Envelope::new(
            "travelpayouts",
            "j",
            format!("LED-KZN/2026-12-{entity:02}/oneway"),
            None,
            fetched(),
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

    /// A stream batch: (event name, item) per record, sequence numbers 001, 002, ….
    fn stream(records: &[(&str, table::Item)]) -> TableEvent {
        let records: Vec<Value> = records
            .iter()
            .enumerate()
            .map(|(i, (name, item))| {
                let mut r = table::insert_record(
                    item,
                    &format!("{:03}", i + 1),
                    "arn:aws:dynamodb:us-east-1:1:table/p/stream/x",
                    "us-east-1",
                );
                r["eventName"] = json!(name);
                r
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    /// The change item the consumer stores for a record (no history).
    fn stored(e: &Envelope) -> table::Item {
        Change::of(e, Stats::default(), None, chrono::Duration::days(90)).item()
    }

    /// New change items of these records, as the stream announces them.
    fn event(envelopes: &[Envelope]) -> TableEvent {
        let records: Vec<(&str, table::Item)> =
            envelopes.iter().map(|e| ("INSERT", stored(e))).collect();
        stream(&records)
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
            },
            claims,
        )
    }

    #[tokio::test]
    async fn the_same_change_twice_gives_one_publish_even_across_batches() {
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
        assert_eq!(sent[0].change, table::change_sk(&batch[0]));
        // A new change of the same entity is a new alert.
        let (_, s) = a.process(event(&[deal(5, 4700, "Aeroflot")])).await;
        assert_eq!(s.published, 1);
    }

    #[tokio::test]
    async fn only_new_plausible_changes_alert() {
        let phone = Arc::new(MemoryPublisher::default());
        let (a, _) = alerter(phone.clone());
        let cheap = deal(5, 4000, "Aeroflot");
        // A rewrite of the same change (its `seen` moved on), an entity item, a flagged
        // outlier: none of them is a new change.
        let entity = table::entity_item(&cheap);
        let outlier = Change::of(
            &deal(6, 10, "Aeroflot"),
            Stats::default(),
            Some("outlier: 0.002× the 30-day typical value 5000".into()),
            chrono::Duration::days(1),
        )
        .item();
        let (response, s) = a
            .process(stream(&[
                ("MODIFY", stored(&cheap)),
                ("INSERT", entity),
                ("REMOVE", stored(&cheap)),
                ("INSERT", outlier),
            ]))
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((s.not_changes, s.flagged, s.published), (3, 1, 0), "{s:?}");
        assert!(phone.sent().is_empty());
    }

    #[tokio::test]
    async fn a_rule_on_history_sees_the_statistics_stored_with_the_change() {
        let phone = Arc::new(MemoryPublisher::default());
        let rules = r#"[{"name":"drop-15","source":"travelpayouts","kind":"flight_price","when":"previous_change_percent <= -15 && price <= min_30d"}]"#;
        let (mut a, _) = alerter(phone.clone());
        a.rules = RuleSet::from_json(rules).unwrap();
        let now = deal(5, 4200, "Pobeda");
        let with = |previous: i64, min: i64| {
            Change::of(
                &now,
                Stats {
                    previous: Some((
                        previous.into(),
                        now.fetched_at.timestamp_millis() - 3_600_000,
                    )),
                    first_ms: 0,
                    windows: vec![table::Window {
                        days: 30,
                        min: min.into(),
                        max: 6000.into(),
                        typical: 5200.into(),
                        values: 4,
                    }],
                },
                None,
                chrono::Duration::days(1),
            )
            .item()
        };
        // 5000 → 4200 is -16 %, and below the 30-day minimum 4300: fires.
        let (_, s) = a.process(stream(&[("INSERT", with(5000, 4300))])).await;
        assert_eq!(s.published, 1);
        // -6.7 % only: quiet. No history at all (the first sighting): quiet.
        let (_, s) = a.process(stream(&[("INSERT", with(4500, 4300))])).await;
        assert_eq!(s.matched, 0);
        let (_, s) = a.process(event(&[deal(7, 100, "Pobeda")])).await;
        assert_eq!(
            (s.matched, s.rule_errors),
            (0, 0),
            "NaN compares false, no error"
        );
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
    fn dedup_keys_separate_rules_and_changes() {
        let a = dedup_key("r", "travelpayouts#flight_price#K", "T#0000000000001#ab");
        assert_eq!(a, "ALERT#r#travelpayouts#flight_price#K#T#0000000000001#ab");
        assert_ne!(
            a,
            dedup_key("r2", "travelpayouts#flight_price#K", "T#0000000000001#ab")
        );
        assert_ne!(
            a,
            dedup_key("r", "travelpayouts#flight_price#K", "T#0000000000002#ab")
        );
        assert!(dedup_key("r", &"K".repeat(3000), "T#1").len() <= DEDUP_KEY_MAX_BYTES);
    }
}
