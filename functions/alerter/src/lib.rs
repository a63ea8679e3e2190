//! The alerter: the prices table's change stream → rules → one SNS publish per (rule,
//! change). It sees a record only when the consumer stored it as a *change* (a new change
//! item: DynamoDB Streams INSERT), with the entity's statistics as of that change, so a rule
//! fires once per change, never on a re-observation, and a replay that writes nothing sends
//! nothing. A rule's re-alert policy (`realert`) keeps it quiet about an entity while the
//! deal does not get better, until its cooldown has passed; declared subscribers
//! (`subscribers`) get only what they asked for, outside the rule's quiet hours in their
//! time zone and within their SMS daily cap. Each alert is claimed in DynamoDB before
//! publishing, so a retried batch never sends the same change twice.

pub mod adapters;
pub mod config;
pub mod gsm;
pub mod message;
pub mod ports;
pub mod quorum;
pub mod realert;
pub mod rules;
pub mod subscribers;

/// How far ahead of this function's clock a record's fetched_at may be (the collector's
/// clock, NTP-synced like this one) before its age is taken as unknowable.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

use adapters::dynamodb::AlertState;
use adapters::sns::SnsTopic;
use aws_lambda_events::dynamodb::{Event as TableEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use config::AlerterConfig;
use lambda_runtime::LambdaEvent;
use message::Alert;
use ports::{AlertPublisher, ArmStore, Claim, DedupStore, Delivery, MoveStore, SmsQuota};
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::table::{self, Change};
use realert::{Armed, Decision};
use rules::{History, Rule, RuleSet};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use subscribers::{Recipients, Subscribers};

use adapters::dynamodb::KEY_MAX_BYTES as DEDUP_KEY_MAX_BYTES;
const BASE_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// The name the alerter checkpoints under.
pub const FUNCTION: &str = "alerter";

pub struct Alerter {
    pub rules: RuleSet,
    pub subscribers: Subscribers,
    pub dedup: Arc<dyn DedupStore>,
    pub arms: Arc<dyn ArmStore>,
    pub moves: Arc<dyn MoveStore>,
    pub quota: Arc<dyn SmsQuota>,
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
    /// Matches held by the rule's re-alert policy: within its cooldown and no better deal.
    pub held: usize,
    /// Moves of one bookmaker that did not (yet) make a market move of K bookmakers.
    pub below_quorum: usize,
    /// Subscribers not sent an alert they wanted because of the rule's quiet hours.
    pub quiet: usize,
    /// SMS not sent because the subscriber's daily cap was spent.
    pub over_cap: usize,
    /// Matches no declared subscriber is to receive (none wants them, or all are quiet
    /// or capped): nothing published.
    pub unaddressed: usize,
    pub rule_errors: usize,
    pub skipped_invalid: usize,
    /// Records too old to alert on (replays of old data).
    pub stale: usize,
    pub failed: usize,
}

/// What became of one (rule, change) that the policy let through.
enum Sent {
    Published,
    /// Claimed and sent before (a retried batch).
    Before,
    /// Every recipient's SMS cap was spent and no one else was to get it.
    NoOne,
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
        let state = Arc::new(AlertState::new(
            aws::dynamodb(sdk),
            &config.state_table,
            policy,
        ));
        Alerter {
            dedup: state.clone(),
            arms: state.clone(),
            moves: state.clone(),
            quota: state,
            publisher: Arc::new(SnsTopic::new(aws::sns(sdk), &config.topic_arn, policy)),
            rules: config.rules,
            subscribers: config.subscribers,
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
        // The last alert per (rule, entity) as this batch leaves it: an entity's changes
        // arrive in order, and later ones must see what earlier ones sent.
        let mut arms: HashMap<(String, String), Option<Armed>> = HashMap::new();
        let now = Utc::now();
        let mut changes: Vec<(String, Change)> = Vec::with_capacity(event.records.len());
        for record in &event.records {
            let seq = record.change.sequence_number.clone().unwrap_or_default();
            match new_change(record) {
                Some(change) => changes.push((seq, change)),
                // A rewrite of a change's statistics, a delete, an entity item: not a change.
                None => summary.not_changes += 1,
            }
        }
        // In time order (each entity's changes in their own order, and across entities for
        // rules that count bookmakers): a stream orders writes per item, and the consumer
        // may write several changes of an entity in one batch request.
        changes.sort_by(|(_, a), (_, b)| (a.at_ms, &a.pk).cmp(&(b.at_ms, &b.pk)));
        for (seq, change) in changes {
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
                if let Err(e) = self
                    .consider(
                        rule,
                        &envelope,
                        &change,
                        now,
                        &mut seen,
                        &mut arms,
                        &mut summary,
                    )
                    .await
                {
                    tracing::error!(rule = %rule.spec.name, key = %envelope.key, error = %e, "alert not sent");
                    record_failed = true;
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

    /// One matched (rule, change): the re-alert policy, the recipients, then the alert.
    #[allow(clippy::too_many_arguments)]
    async fn consider(
        &self,
        rule: &Rule,
        e: &Envelope,
        change: &Change,
        now: DateTime<Utc>,
        seen: &mut HashSet<String>,
        arms: &mut HashMap<(String, String), Option<Armed>>,
        summary: &mut BatchSummary,
    ) -> Result<(), String> {
        let name = rule.spec.name.as_str();
        let key = dedup_key(name, &change.pk, &change.sk);
        if !seen.insert(key.clone()) {
            summary.duplicates += 1;
            return Ok(());
        }
        let policy = &rule.realert;
        // What the rule re-alerts about: the entity, or for a market move the group.
        let about = match rule.quorum {
            None => change.pk.clone(),
            Some(q) => {
                let Some((group, bookmaker)) = quorum::group_of(e) else {
                    return Ok(());
                };
                let expires = DateTime::from_timestamp_millis(change.at_ms).unwrap_or(now)
                    + chrono::Duration::minutes(i64::from(q.window_minutes));
                let moves = self
                    .moves
                    .record_move(name, &group, &bookmaker, change.at_ms, expires)
                    .await
                    .map_err(|e| e.to_string())?;
                if !q.reached(&moves, change.at_ms) {
                    summary.below_quorum += 1;
                    return Ok(());
                }
                group
            }
        };
        let slot = (name.to_string(), about.clone());
        let last = if policy.keeps_state() {
            match arms.get(&slot) {
                Some(last) => last.clone(),
                None => {
                    let last = self
                        .arms
                        .last(name, &about)
                        .await
                        .map_err(|e| e.to_string())?;
                    arms.insert(slot.clone(), last.clone());
                    last
                }
            }
        } else {
            None
        };
        if last.as_ref().is_some_and(|a| a.change == change.sk) {
            // This very change alerted before (a retried batch).
            summary.duplicates += 1;
            return Ok(());
        }
        if policy.decide(last.as_ref(), change.price, change.at_ms) == Decision::Hold {
            summary.held += 1;
            return Ok(());
        }
        let alert = {
            let mut a = message::alert(name, e);
            a.entity = change.pk.clone();
            a.change = change.sk.clone();
            a
        };
        let recipients = if self.subscribers.is_declared() {
            let r = self.subscribers.recipients(
                name,
                &alert.source,
                &alert.about,
                policy.quiet_hours.as_ref(),
                now,
            );
            summary.quiet += r.quiet.len();
            if r.is_empty() {
                summary.unaddressed += 1;
                return Ok(());
            }
            Some(r)
        } else {
            // No one declared: the quiet hours are UTC's.
            if policy.quiet_hours.is_some_and(|q| q.contains(now.time())) {
                summary.quiet += 1;
                return Ok(());
            }
            None
        };
        match self
            .alert_once(&key, &alert, recipients, now, summary)
            .await?
        {
            Sent::Published => summary.published += 1,
            Sent::Before => summary.duplicates += 1,
            Sent::NoOne => {
                summary.unaddressed += 1;
                return Ok(());
            }
        }
        if policy.keeps_state() {
            let armed = Armed {
                value: change.price,
                at_ms: change.at_ms,
                change: change.sk.clone(),
            };
            let expires = DateTime::from_timestamp_millis(change.at_ms).unwrap_or(now)
                + policy.state_lifetime();
            if let Err(err) = self.arms.record(name, &about, &armed, expires).await {
                // Sent: the next change of this entity may alert without the policy's hold.
                tracing::warn!(rule = name, key = %e.key, error = %err, "last alert not recorded");
            }
            arms.insert(slot, Some(armed));
        }
        Ok(())
    }

    /// Claims the deal, spends the recipients' SMS quota, publishes, marks it sent. A failed
    /// publish gives back the claim and the quota, so the retried record takes them again.
    async fn alert_once(
        &self,
        key: &str,
        alert: &Alert,
        recipients: Option<Recipients<'_>>,
        now: DateTime<Utc>,
        summary: &mut BatchSummary,
    ) -> Result<Sent, String> {
        if self
            .dedup
            .claim(key, &alert.record_id, now, self.window)
            .await
            .map_err(|e| e.to_string())?
            == Claim::AlreadySent
        {
            return Ok(Sent::Before);
        }
        let mut taken: Vec<(&str, String)> = Vec::new();
        let delivery = match &recipients {
            None => None,
            Some(r) => {
                let mut to = Delivery {
                    sms_to: Vec::new(),
                    email_to: r.email.iter().map(|s| s.name.clone()).collect(),
                };
                for s in &r.sms {
                    let day = s.local_day(now).to_string();
                    match self.quota.take(&s.name, &day, s.sms_daily_cap).await {
                        Ok(true) => {
                            to.sms_to.push(s.name.clone());
                            taken.push((&s.name, day));
                        }
                        Ok(false) => {
                            summary.over_cap += 1;
                            tracing::warn!(subscriber = %s.name, day = %day, cap = s.sms_daily_cap, rule = %alert.rule, key = %alert.key, "SMS daily cap reached; SMS not sent");
                        }
                        Err(err) => {
                            self.give_back(&taken, key).await;
                            return Err(err.to_string());
                        }
                    }
                }
                if to.sms_to.is_empty() && to.email_to.is_empty() {
                    self.give_back(&taken, key).await;
                    return Ok(Sent::NoOne);
                }
                Some(to)
            }
        };
        let message_id = match self.publisher.publish(alert, delivery.as_ref()).await {
            Ok(id) => id,
            Err(err) => {
                self.give_back(&taken, key).await;
                return Err(err.to_string());
            }
        };
        tracing::info!(rule = %alert.rule, key = %alert.key, message_id = %message_id, sms = %alert.sms,
            sms_to = ?delivery.as_ref().map(|d| &d.sms_to), email_to = ?delivery.as_ref().map(|d| &d.email_to),
            "alert published");
        if let Err(err) = self
            .dedup
            .mark_sent(key, &alert.record_id, &message_id)
            .await
        {
            // Published: report success. The claim stays pending for its lease, so a
            // retry within 15 minutes does not send it again; reporting a failure would.
            tracing::warn!(rule = %alert.rule, key = %alert.key, error = %err, "alert sent but not marked sent");
        }
        Ok(Sent::Published)
    }

    /// Returns the SMS quota taken and the claim after an alert that was not sent.
    async fn give_back(&self, taken: &[(&str, String)], key: &str) {
        for (subscriber, day) in taken {
            if let Err(e) = self.quota.give_back(subscriber, day).await {
                tracing::warn!(subscriber, day = %day, error = %e, "SMS quota not given back");
            }
        }
        if let Err(release) = self.dedup.release(key).await {
            // The claim stays pending until its lease runs out; a later retry then sends it.
            tracing::warn!(key, error = %release, "claim not released");
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
        held = s.held,
        below_quorum = s.below_quorum,
        quiet = s.quiet,
        over_cap = s.over_cap,
        unaddressed = s.unaddressed,
        rule_errors = s.rule_errors,
        skipped_invalid = s.skipped_invalid,
        stale = s.stale,
        failed = s.failed,
        "batch evaluated"
    );
    // Metrics (a billed series each): what an alarm or the dashboard reads. Details: in
    // the line only, for Logs Insights.
    Emf::new(&[("function", "alerter")])
        .count("ChangesIn", (s.received - s.not_changes) as u64)
        .count("AlertsPublished", s.published as u64)
        .count("SmsOverCap", s.over_cap as u64)
        .count("RuleErrors", s.rule_errors as u64)
        .count("FailedRecords", s.failed as u64)
        .detail("RecordsIn", s.received as u64)
        .detail("RulesMatched", s.matched as u64)
        .detail("AlertDuplicates", s.duplicates as u64)
        .detail("AlertsHeld", s.held as u64)
        .detail("AlertsQuiet", s.quiet as u64)
        .detail("StaleRecords", s.stale as u64)
        .emit();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryArms, MemoryMoves, MemoryPublisher, MemoryQuota};
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
    fn state_table() -> (Arc<AlertState>, Arc<Mutex<HashMap<String, String>>>) {
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
        (Arc::new(AlertState::new(client, "state", policy)), claims)
    }

    fn alerter(phone: Arc<MemoryPublisher>) -> (Alerter, Arc<Mutex<HashMap<String, String>>>) {
        let (dedup, claims) = state_table();
        (
            Alerter {
                rules: RuleSet::from_json(RULES).unwrap(),
                subscribers: Subscribers::default(),
                dedup,
                arms: Arc::new(MemoryArms::default()),
                moves: Arc::new(MemoryMoves::default()),
                quota: Arc::new(MemoryQuota::default()),
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

    /// The same fare (entity) seen at these prices, one change each, in order.
    fn fares(prices: &[i64]) -> Vec<Envelope> {
        prices.iter().map(|&p| deal(5, p, "Aeroflot")).collect()
    }

    #[tokio::test]
    async fn a_fare_alerts_again_only_when_it_gets_better() {
        let phone = Arc::new(MemoryPublisher::default());
        let (a, _) = alerter(phone.clone());
        // The issue's demo run: 3080, 3430, 3450 sent three SMS; now one.
        let (_, s) = a.process(event(&fares(&[3080, 3430, 3450]))).await;
        assert_eq!((s.published, s.held), (1, 2), "{s:?}");
        // Across batches too: 3240 is not better than 3080, 3000 is.
        let (_, s) = a.process(event(&fares(&[3240, 3000]))).await;
        assert_eq!((s.published, s.held), (1, 1), "{s:?}");
        let prices: Vec<String> = phone
            .sent()
            .iter()
            .map(|a| a.sms[..19].to_string())
            .collect();
        assert_eq!(prices, ["LED-KZN 05 Dec 3080", "LED-KZN 05 Dec 3000"]);
        // A retried batch meets its own alert: a duplicate, not a hold.
        let (_, s) = a.process(event(&fares(&[3000]))).await;
        assert_eq!((s.published, s.duplicates, s.held), (0, 1, 0), "{s:?}");
    }

    fn with_subscribers(a: &mut Alerter, json: &str) {
        a.subscribers = Subscribers::from_json(json, &a.rules).unwrap();
    }

    #[tokio::test]
    async fn subscribers_get_what_they_asked_for_within_their_sms_cap() {
        let phone = Arc::new(MemoryPublisher::default());
        let (mut a, _) = alerter(phone.clone());
        let quota = Arc::new(MemoryQuota::default());
        a.quota = quota.clone();
        with_subscribers(
            &mut a,
            r#"[{"name":"ann","sms":true,"rules":["cheap-aeroflot"],"subjects":["LED-KZN"],"sms_daily_cap":2},
                {"name":"bob","email":true,"sources":["travelpayouts"]},
                {"name":"cat","sms":true,"subjects":["MOW-AER"]}]"#,
        );
        // Three cheap fares on three dates: ann's cap is 2, bob reads them all, cat wants
        // another route.
        let batch: Vec<Envelope> = (1..=3).map(|d| deal(d, 4000, "Aeroflot")).collect();
        let (response, s) = a.process(event(&batch)).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "over the cap is not a failure"
        );
        assert_eq!((s.published, s.over_cap), (3, 1), "{s:?}");
        let to: Vec<(Vec<String>, Vec<String>)> = phone
            .deliveries()
            .into_iter()
            .map(|d| {
                let d = d.expect("declared subscribers: addressed");
                (d.sms_to, d.email_to)
            })
            .collect();
        let (ann, bob) = (vec!["ann".to_string()], vec!["bob".to_string()]);
        assert_eq!(
            to,
            [
                (ann.clone(), bob.clone()),
                (ann, bob.clone()),
                (vec![], bob)
            ]
        );
        let today = Utc::now().date_naive().to_string();
        assert_eq!(quota.used("ann", &today), 2);
    }

    #[tokio::test]
    async fn quiet_hours_hold_an_alert_nobody_may_get_now() {
        let phone = Arc::new(MemoryPublisher::default());
        let (mut a, _) = alerter(phone.clone());
        // Quiet all day but one minute from now: whatever the clock says, it is quiet.
        let now = Utc::now().time();
        let from = (now - chrono::Duration::minutes(1)).format("%H:%M");
        let to = (now + chrono::Duration::minutes(2)).format("%H:%M");
        let rules = format!(
            r#"[{{"name":"cheap-aeroflot","source":"travelpayouts","kind":"flight_price","when":"price < 5000","quiet_hours":"{from}-{to}"}}]"#
        );
        a.rules = RuleSet::from_json(&rules).unwrap();
        with_subscribers(&mut a, r#"[{"name":"ann","sms":true}]"#);
        let (_, s) = a.process(event(&[deal(1, 4000, "Aeroflot")])).await;
        assert_eq!((s.published, s.quiet, s.unaddressed), (0, 1, 1), "{s:?}");
        assert!(phone.sent().is_empty());
    }

    #[tokio::test]
    async fn a_failed_publish_gives_back_the_sms_quota() {
        let phone = Arc::new(MemoryPublisher::default());
        phone.fail_call(0);
        let (mut a, _) = alerter(phone.clone());
        let quota = Arc::new(MemoryQuota::default());
        a.quota = quota.clone();
        with_subscribers(&mut a, r#"[{"name":"ann","sms":true,"sms_daily_cap":1}]"#);
        let batch = [deal(1, 4000, "Aeroflot")];
        let (response, _) = a.process(event(&batch)).await;
        assert_eq!(response.batch_item_failures.len(), 1);
        let today = Utc::now().date_naive().to_string();
        assert_eq!(quota.used("ann", &today), 0, "given back");
        let (response, s) = a.process(event(&batch)).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((s.published, s.over_cap), (1, 0), "{s:?}");
    }

    /// A shortened quote of one bookmaker (2.50 → `price` within 25 minutes), as stored.
    fn shortened(bookmaker: &str, price: &str, minutes_ago: i64) -> table::Item {
        let at = Utc::now() - chrono::Duration::minutes(minutes_ago);
        let e = pricewire_pipeline::fixtures::odds_quote("e1", bookmaker, "h2h", price, None, at);
        let stats = Stats {
            previous: Some(("2.50".parse().unwrap(), at.timestamp_millis() - 25 * 60_000)),
            previous_line: None,
            first_ms: 0,
            windows: vec![],
        };
        Change::of(&e, stats, None, chrono::Duration::days(1)).item()
    }

    #[tokio::test]
    async fn a_market_move_needs_k_bookmakers_and_alerts_once_per_window() {
        let phone = Arc::new(MemoryPublisher::default());
        let (mut a, _) = alerter(phone.clone());
        let steam = r#"[{"name":"steam","source":"odds","kind":"odds_quote","type":"odds_shortening","params":{"points":5,"minutes":30,"bookmakers":2}}]"#;
        a.rules = RuleSet::from_json(steam).unwrap();
        // One bookmaker: not a market move. The second within 30 minutes: one alert; the
        // third, 10 minutes later, is the same move: held.
        let (_, s) = a
            .process(stream(&[("INSERT", shortened("draftkings", "2.00", 30))]))
            .await;
        assert_eq!((s.matched, s.below_quorum, s.published), (1, 1, 0), "{s:?}");
        let (_, s) = a
            .process(stream(&[("INSERT", shortened("fanduel", "2.10", 20))]))
            .await;
        assert_eq!(s.published, 1, "{s:?}");
        let (_, s) = a
            .process(stream(&[("INSERT", shortened("betmgm", "2.05", 10))]))
            .await;
        assert_eq!((s.published, s.held), (0, 1), "{s:?}");
        let sent = phone.sent();
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0].key.contains("/fanduel/"),
            "the bookmaker that completed it"
        );
        // A move 40 minutes after the first bookmaker's is not within its window.
        let (mut b, _) = alerter(phone.clone());
        b.rules = RuleSet::from_json(steam).unwrap();
        b.process(stream(&[("INSERT", shortened("draftkings", "2.00", 60))]))
            .await;
        let (_, s) = b
            .process(stream(&[("INSERT", shortened("fanduel", "2.10", 20))]))
            .await;
        assert_eq!((s.below_quorum, s.published), (1, 0), "{s:?}");
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
                    previous_line: None,
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
