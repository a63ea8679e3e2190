//! The end of a twin run: a summary read back from the emulator with the runner's own
//! clients (not the functions' counters), and an exact check against what the simulator
//! served: every valid served record delivered, exactly the changes its values imply stored
//! (one item per change, none per repeat), each entity's newest change right, every alert
//! the rules imply in the inbox exactly once.

use crate::simulator::Served;
use crate::twin::Twin;
use alerter::realert::{Armed, Decision};
use alerter::rules::RuleSet;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::table;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Default)]
pub struct Report {
    /// Change items in the prices table.
    pub history_items: usize,
    pub entity_items: usize,
    pub raw_objects: usize,
    pub quarantine_objects: usize,
    /// (rule, SMS text) as a phone would show them.
    pub alerts: Vec<(String, String)>,
    /// The inbox's alerts by (rule, entity, change) key, as received (sorted).
    pub alert_keys: Vec<String>,
    pub dlq_depth: BTreeMap<String, usize>,
    /// queue → the dead-letter messages in it (read, left in place).
    pub dlq_messages: BTreeMap<String, Vec<Value>>,
    pub store_latency_ms: Vec<i64>,
    pub alert_latency_ms: Vec<i64>,
    pub check: Option<Check>,
}

/// One source's share of the check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SourceCheck {
    pub answers: usize,
    pub expected_records: usize,
    /// Of the expected records, those that reached the stream (and so the consumer).
    pub delivered_records: usize,
    /// Changes the served values imply, in the order they were fetched.
    pub expected_changes: usize,
    pub stored_changes: usize,
    pub expected_alerts: usize,
    pub alerts: usize,
}

#[derive(Debug, Default)]
pub struct Check {
    pub served_responses: usize,
    pub expected_records: usize,
    /// Fetches of the expected records that reached the stream (a record fetched twice
    /// counts twice): what the consumer judged change or repeat.
    pub delivered_fetches: usize,
    /// Per source: what its simulator served and what of it arrived.
    pub by_source: BTreeMap<String, SourceCheck>,
    pub lost: Vec<String>,
    pub unexpected: Vec<String>,
    pub latest_wrong: Vec<String>,
    pub expected_alerts: usize,
    pub missing_alerts: Vec<String>,
    pub doubled_alerts: Vec<String>,
    pub unexpected_alerts: Vec<String>,
}

impl Check {
    pub fn failures(&self) -> usize {
        self.lost.len()
            + self.unexpected.len()
            + self.latest_wrong.len()
            + self.missing_alerts.len()
            + self.doubled_alerts.len()
            + self.unexpected_alerts.len()
    }
}

pub fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v.get(rank.min(v.len() - 1)).copied()
}

/// Every item of a table, page by page.
pub async fn scan_all(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, String> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = db
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Scan {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            })?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(items),
        }
    }
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// What the simulator counted as valid in its 200 answers, as records of the source each
/// simulator stood in for: id → record. Built from the simulator's model of each answer,
/// not from the collector's parser. Records without an upstream observation time carry
/// `observed_at` = the Unix epoch (their fetch time is known only to the twin, which saw
/// them on the stream).
pub fn expected_from(served: &[Served]) -> BTreeMap<String, Envelope> {
    let mut records = BTreeMap::new();
    for s in served.iter().filter(|s| s.status == 200) {
        for x in &s.expected {
            let e = x.envelope(&s.source);
            records.insert(e.id.clone(), e);
        }
    }
    records
}

/// The change items (pk → sort keys) the consumer's documented rule implies for what was
/// delivered: per entity, values in fetch order, one item each time the value differs
/// from the one fetched before (the simulator's value: same id, same content); series
/// points in their own time order, one item per point.
pub fn expected_changes(
    expected: &BTreeMap<String, Envelope>,
    fetches: &BTreeSet<(String, i64)>,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut by_entity: BTreeMap<String, BTreeMap<String, (i64, &Envelope)>> = BTreeMap::new();
    for (id, fetched_ms) in fetches {
        let Some(e) = expected.get(id) else { continue };
        let Some(fetched_at) = DateTime::from_timestamp_millis(*fetched_ms) else {
            continue;
        };
        let mut at = e.clone();
        at.fetched_at = fetched_at;
        if at.observed_at == DateTime::UNIX_EPOCH {
            at.observed_at = fetched_at;
        }
        let sk = table::change_sk(&at);
        let slot = by_entity.entry(table::entity_pk(e)).or_default();
        // A series point fetched twice (or revised): the latest fetch stands.
        if slot
            .get(&sk)
            .is_none_or(|(f, prev)| (*fetched_ms, &e.id) > (*f, &prev.id))
        {
            slot.insert(sk, (*fetched_ms, e));
        }
    }
    by_entity
        .into_iter()
        .map(|(pk, points)| {
            let mut kept: Vec<(String, String)> = Vec::new();
            let mut last: Option<Option<String>> = None;
            for (sk, (_, e)) in points {
                let signature = table::signature(&e.payload);
                if signature.is_some() && last.as_ref() == Some(&signature) {
                    continue;
                }
                last = Some(signature);
                kept.push((sk, e.id.clone()));
            }
            (pk, kept)
        })
        .collect()
}

/// Everything in a queue, read and deleted: each body as JSON (`Null` when it is not).
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {e}"))?;
        if got.messages().is_empty() {
            return Ok(out);
        }
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null));
            if let Some(h) = m.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await;
            }
        }
    }
}

pub async fn report(twin: &Twin, served: Option<&[Served]>) -> Result<Report, String> {
    let sdk = &twin.sdk;
    let db = pricewire_pipeline::aws::dynamodb(sdk);
    let sqs = pricewire_pipeline::aws::sqs(sdk);
    let s3 = pricewire_pipeline::aws::s3(sdk);
    let mut r = Report::default();

    let prices = twin
        .function_env("consumer", "PRICEWIRE_PRICES_TABLE")
        .ok_or("consumer has no PRICEWIRE_PRICES_TABLE")?;
    let items = scan_all(&db, &prices).await?;
    let history: Vec<table::Change> = items.iter().filter_map(table::Change::from_item).collect();
    r.history_items = history.len();
    r.entity_items = items
        .iter()
        .filter(|i| s(i, "sk") == table::ENTITY_SK)
        .count();

    if let Some(bucket) = twin.function_env("collector", "PRICEWIRE_ARCHIVE_BUCKET") {
        let mut token = None;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(&bucket)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ListObjectsV2: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )
                })?;
            for o in out.contents() {
                let key = o.key().unwrap_or_default();
                if key.starts_with("raw/") {
                    r.raw_objects += 1;
                } else if key.starts_with("quarantine/") {
                    r.quarantine_objects += 1;
                }
            }
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
    }

    // Queues: the inbox (alerts as subscribers get them) and the dead-letter queues.
    let queues = sqs
        .list_queues()
        .queue_name_prefix(&twin.opts.name)
        .send()
        .await
        .map_err(|e| {
            format!(
                "ListQueues: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
    let mut inbox = Vec::new();
    for url in queues.queue_urls() {
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        if name.ends_with("-dlq") {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .map_err(|e| format!("GetQueueAttributes: {e}"))?;
            let depth = attrs
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            r.dlq_depth.insert(name.clone(), depth);
            // Read without deleting: they become visible again for `pricewire redrive`.
            let mut seen = BTreeSet::new();
            let mut messages = Vec::new();
            while seen.len() < depth {
                let out = sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .visibility_timeout(5)
                    .send()
                    .await
                    .map_err(|e| format!("ReceiveMessage: {e}"))?;
                if out.messages().is_empty() {
                    break;
                }
                for m in out.messages() {
                    if seen.insert(m.message_id().unwrap_or_default().to_string()) {
                        messages.push(
                            serde_json::from_str(m.body().unwrap_or_default())
                                .unwrap_or(Value::Null),
                        );
                    }
                }
            }
            r.dlq_messages.insert(name, messages);
        } else if name.ends_with("-inbox") {
            // Read like a phone reads: what the report saw is gone, so a later look at the
            // inbox shows only what arrived since.
            inbox.extend(receive_all(&sqs, url).await?);
        }
    }
    let observed = twin
        .observed
        .lock()
        .map(|o| {
            (
                o.fetched_at.clone(),
                o.store_latency_ms.clone(),
                o.fetches.clone(),
            )
        })
        .unwrap_or_default();
    r.store_latency_ms = observed.1.clone();
    // (rule, record id, entity, change) of every alert in the inbox.
    let mut alert_records: Vec<(String, String, String, String)> = Vec::new();
    for n in &inbox {
        let Some(alert) = n
            .get("Message")
            .and_then(Value::as_str)
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
        else {
            continue;
        };
        let rule = alert["rule"].as_str().unwrap_or_default().to_string();
        let record_id = alert["record_id"].as_str().unwrap_or_default().to_string();
        r.alerts.push((
            rule.clone(),
            alert["sms"].as_str().unwrap_or_default().to_string(),
        ));
        let sent = n
            .get("Timestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if let (Some(sent), Some(fetched)) = (sent, observed.0.get(&record_id)) {
            r.alert_latency_ms
                .push((sent.with_timezone(&Utc) - *fetched).num_milliseconds());
        }
        let field = |k: &str| alert[k].as_str().unwrap_or_default().to_string();
        r.alert_keys.push(alerter::dedup_key(
            &rule,
            &field("entity"),
            &field("change"),
        ));
        alert_records.push((rule, record_id, field("entity"), field("change")));
    }
    r.alerts.sort();
    r.alert_keys.sort();

    if let Some(served) = served {
        let mut expected = expected_from(served);
        // Valid records put on the stream beside the collector's (a scripted history) are
        // expected like served ones; poison is not.
        let put = twin.put_log.lock().map(|l| l.clone()).unwrap_or_default();
        for data in &put {
            if let Ok(e) = serde_json::from_slice::<Envelope>(data) {
                if e.verify_id().is_ok() {
                    expected.insert(e.id.clone(), e);
                }
            }
        }
        let implied = expected_changes(&expected, &observed.2);
        let mut c = Check {
            served_responses: served.iter().filter(|s| s.status == 200).count(),
            expected_records: expected.len(),
            ..Default::default()
        };
        let delivered: BTreeSet<&String> = observed.2.iter().map(|(id, _)| id).collect();
        c.delivered_fetches = observed
            .2
            .iter()
            .filter(|(id, _)| expected.contains_key(id))
            .count();
        for sv in served.iter().filter(|s| s.status == 200) {
            c.by_source.entry(sv.source.clone()).or_default().answers += 1;
        }
        for e in expected.values() {
            let b = c.by_source.entry(e.source.clone()).or_default();
            b.expected_records += 1;
            if delivered.contains(&e.id) {
                b.delivered_records += 1;
            } else {
                c.lost
                    .push(format!("{} {}: never reached the stream", e.id, e.key));
            }
        }
        c.unexpected = delivered
            .iter()
            .filter(|id| !expected.contains_key(**id))
            .map(|id| format!("{id}: on the stream, never served"))
            .collect();
        let stored: BTreeMap<(String, String), String> = history
            .iter()
            .map(|h| ((h.pk.clone(), h.sk.clone()), h.id.clone()))
            .collect();
        let mut wanted: BTreeMap<(String, String), String> = BTreeMap::new();
        for (pk, changes) in &implied {
            let source = table::split_pk(pk)
                .map(|p| p.0)
                .unwrap_or_default()
                .to_string();
            let b = c.by_source.entry(source).or_default();
            b.expected_changes += changes.len();
            for (sk, id) in changes {
                if stored.get(&(pk.clone(), sk.clone())) == Some(id) {
                    b.stored_changes += 1;
                }
                wanted.insert((pk.clone(), sk.clone()), id.clone());
            }
            // The newest change is the entity's latest value.
            let newest = history.iter().filter(|h| &h.pk == pk).map(|h| &h.sk).max();
            if newest != changes.last().map(|(sk, _)| sk) {
                c.latest_wrong.push(format!(
                    "{pk}: newest change expected {:?}, found {newest:?}",
                    changes.last()
                ));
            }
        }
        for (key, id) in &wanted {
            if stored.get(key) != Some(id) {
                c.lost
                    .push(format!("change {} {} ({id}) not stored", key.0, key.1));
            }
        }
        for (key, id) in &stored {
            if !wanted.contains_key(key) {
                c.unexpected.push(format!(
                    "change {} {} ({id}) stored, not implied",
                    key.0, key.1
                ));
            }
        }
        let rules_json = twin
            .function_env("alerter", "PRICEWIRE_ALERT_RULES")
            .unwrap_or_else(|| "[]".into());
        let windows: Vec<u32> = twin
            .function_env("alerter", "PRICEWIRE_STAT_WINDOWS_DAYS")
            .map(|v| v.split(',').filter_map(|d| d.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![7, 30]);
        let rules = RuleSet::from_json_with(&rules_json, &windows).map_err(|e| e.to_string())?;
        // An alert per (rule, implied change) the rule matches and its re-alert policy lets
        // through, walking each entity's changes in time order: the rules of the twin's
        // stacks read the record, not its history, so the simulator's record decides.
        // Rules on history read the statistics stored with the change (the consumer's, unit
        // tested against hand-computed figures); records older than the alerter's maximum
        // age alert nobody.
        let max_age_s: i64 = twin
            .function_env("alerter", "PRICEWIRE_ALERT_MAX_AGE_SECONDS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(86_400);
        let now = Utc::now();
        let stored_changes: HashMap<(&str, &str), &table::Change> = history
            .iter()
            .map(|h| ((h.pk.as_str(), h.sk.as_str()), h))
            .collect();
        let mut expected_alerts = BTreeSet::new();
        let mut last_alert: HashMap<(String, String), Armed> = HashMap::new();
        // Bookmakers' latest qualifying moves per (rule, group), for rules that count them.
        let mut moves: HashMap<(String, String), BTreeMap<String, i64>> = HashMap::new();
        // In time order across entities, as the alerter takes a batch (ties by entity).
        let sk_ms = |sk: &str| -> i64 { sk.get(2..15).and_then(|d| d.parse().ok()).unwrap_or(0) };
        let mut walk: Vec<(i64, &String, &String, &String)> = implied
            .iter()
            .flat_map(|(pk, changes)| changes.iter().map(move |(sk, id)| (sk_ms(sk), pk, sk, id)))
            .collect();
        walk.sort();
        {
            for (at_ms, pk, sk, id) in walk {
                let Some(e) = expected.get(id) else { continue };
                let stored = stored_changes.get(&(pk.as_str(), sk.as_str()));
                if stored.is_some_and(|c| c.flag.is_some()) {
                    continue;
                }
                // Its age as the alerter saw it: the stored record's fetch (one id can be
                // fetched on many days; the expected envelope holds one of them).
                let fetched_ms = stored
                    .map(|c| c.fetched_ms)
                    .unwrap_or(now.timestamp_millis());
                if now.timestamp_millis() - fetched_ms > max_age_s * 1000 {
                    continue;
                }
                let value =
                    table::Change::of(e, Default::default(), None, chrono::Duration::days(1)).price;
                let history = stored.map(|c| alerter::rules::History {
                    stats: &c.stats,
                    at_ms: c.at_ms,
                });
                for rule in rules.evaluate_with(e, history).matched {
                    let about = match rule.quorum {
                        None => pk.clone(),
                        Some(q) => {
                            let Some((group, bookmaker)) = alerter::quorum::group_of(e) else {
                                continue;
                            };
                            let m = moves
                                .entry((rule.spec.name.clone(), group.clone()))
                                .or_default();
                            let t = m.entry(bookmaker).or_insert(at_ms);
                            *t = (*t).max(at_ms);
                            if !q.reached(m, at_ms) {
                                continue;
                            }
                            group
                        }
                    };
                    let slot = (rule.spec.name.clone(), about);
                    if rule.realert.decide(last_alert.get(&slot), value, at_ms) != Decision::Fire {
                        continue;
                    }
                    if rule.realert.keeps_state() {
                        let change = sk.clone();
                        last_alert.insert(
                            slot,
                            Armed {
                                value,
                                at_ms,
                                change,
                            },
                        );
                    }
                    if expected_alerts.insert(alerter::dedup_key(&rule.spec.name, pk, sk)) {
                        c.by_source
                            .entry(e.source.clone())
                            .or_default()
                            .expected_alerts += 1;
                    }
                }
            }
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (rule, id, entity, change) in &alert_records {
            match expected.get(id) {
                Some(e) => {
                    c.by_source.entry(e.source.clone()).or_default().alerts += 1;
                    *seen
                        .entry(alerter::dedup_key(rule, entity, change))
                        .or_default() += 1
                }
                None => c
                    .unexpected_alerts
                    .push(format!("{rule} for unknown record {id}")),
            }
        }
        c.expected_alerts = expected_alerts.len();
        c.missing_alerts = expected_alerts
            .iter()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        c.doubled_alerts = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        c.unexpected_alerts.extend(
            seen.keys()
                .filter(|k| !expected_alerts.contains(*k))
                .cloned(),
        );
        r.check = Some(c);
    }
    Ok(r)
}

fn ms(v: Option<i64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into())
}

pub fn print(r: &Report) {
    println!("\nSummary (read back from the emulator)");
    println!(
        "  DynamoDB     {} change items, {} entity items",
        r.history_items, r.entity_items
    );
    println!(
        "  S3           {} raw responses, {} quarantine files",
        r.raw_objects, r.quarantine_objects
    );
    let dlq: Vec<String> = r
        .dlq_depth
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  DLQ depth    {}",
        if dlq.is_empty() {
            "-".into()
        } else {
            dlq.join(", ")
        }
    );
    println!(
        "  latency      fetch → DynamoDB p50 {} p99 {};  fetch → alert p50 {} p99 {}",
        ms(percentile(&r.store_latency_ms, 50.0)),
        ms(percentile(&r.store_latency_ms, 99.0)),
        ms(percentile(&r.alert_latency_ms, 50.0)),
        ms(percentile(&r.alert_latency_ms, 99.0))
    );
    println!(
        "  alerts       {} in the inbox, as a phone shows them:",
        r.alerts.len()
    );
    for (rule, sms) in r.alerts.iter().take(20) {
        println!("    [{rule}] {sms}");
    }
    if r.alerts.len() > 20 {
        println!("    … and {} more", r.alerts.len() - 20);
    }
    if let Some(c) = &r.check {
        println!(
            "\nCheck against what the simulator served ({} answers, {} distinct valid records)",
            c.served_responses, c.expected_records
        );
        let line =
            |ok: bool, what: String| println!("  {} {what}", if ok { "ok  " } else { "FAIL" });
        let (changes, stored): (usize, usize) = c
            .by_source
            .values()
            .map(|b| (b.expected_changes, b.stored_changes))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        line(
            c.lost.is_empty() && c.unexpected.is_empty(),
            format!(
                "history: {stored} of {changes} implied changes stored, {} lost, {} unexpected",
                c.lost.len(),
                c.unexpected.len()
            ),
        );
        for (source, b) in &c.by_source {
            line(
                b.delivered_records == b.expected_records
                    && b.stored_changes == b.expected_changes
                    && b.alerts == b.expected_alerts,
                format!(
                    "source {source}: {} answers, {} of {} records delivered, {} of {} changes stored, {} of {} alerts",
                    b.answers,
                    b.delivered_records,
                    b.expected_records,
                    b.stored_changes,
                    b.expected_changes,
                    b.alerts,
                    b.expected_alerts
                ),
            );
        }
        line(
            c.latest_wrong.is_empty(),
            format!("latest: {} wrong", c.latest_wrong.len()),
        );
        line(
            c.missing_alerts.is_empty()
                && c.doubled_alerts.is_empty()
                && c.unexpected_alerts.is_empty(),
            format!(
                "alerts: {} expected, {} missing, {} doubled, {} unexpected",
                c.expected_alerts,
                c.missing_alerts.len(),
                c.doubled_alerts.len(),
                c.unexpected_alerts.len()
            ),
        );
        for x in c
            .lost
            .iter()
            .chain(&c.unexpected)
            .chain(&c.latest_wrong)
            .chain(&c.missing_alerts)
            .chain(&c.doubled_alerts)
            .chain(&c.unexpected_alerts)
            .take(10)
        {
            println!("      {x}");
        }
    }
}
