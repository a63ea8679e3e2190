//! DynamoDB: the alerter's items in the state table — alert claims (de-duplication), each
//! rule's last alert per entity (re-alerting), bookmakers' moves per group (quorum), and SMS
//! counts per subscriber and day. One adapter, four ports (`DedupStore`, `ArmStore`,
//! `MoveStore`, `SmsQuota`): the same table and client.

use crate::ports::{ArmStore, Claim, DedupStore, MoveStore, SmsQuota, StoreError};
use crate::realert::Armed;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use pricewire_pipeline::adapters::dynamodb::Item;
use pricewire_pipeline::adapters::{conditional, describe, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::table::bounded_key;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The alerter's items: `pk = ALERT#…`, told apart by `sk`, each with a TTL.
pub struct AlertState {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: RetryPolicy,
}

/// An alert claim: `pk = ALERT#<rule>#<entity>#<change>`.
pub const CLAIM_SK: &str = "CLAIM";
/// A rule's last alert about an entity: `pk = ALERT#<rule>#<entity>`.
pub const ARM_SK: &str = "ARM";
/// Bookmakers' moves: `pk = ALERT#<rule>#<group>`, one attribute `bm_<bookmaker>` each.
pub const MOVES_SK: &str = "MOVES";
/// An SMS count: `pk = ALERT#SMS#<subscriber>#<local day>`.
pub const QUOTA_SK: &str = "QUOTA";
/// Keys longer than this are replaced by their digest (DynamoDB: partition key ≤ 2048 bytes).
pub const KEY_MAX_BYTES: usize = 1024;
/// How long a day's SMS count is kept: the day has ended everywhere by then.
const QUOTA_LIFETIME: chrono::Duration = chrono::Duration::days(2);
/// A claim is free when absent, expired (TTL deletion lags by up to days, so expiry is
/// checked here), released after a failed publish, or left `pending` longer than any
/// invocation can run (the claimant died between claiming and marking sent).
const CLAIM_CONDITION: &str =
    "attribute_not_exists(pk) OR expires_at < :now OR #status = :released OR (#status = :pending AND claimed_epoch < :stale)";
/// Marking sent needs the claim still there, still pending, and still this record's.
const MARK_CONDITION: &str = "attribute_exists(pk) AND #status = :pending AND record_id = :r";
/// How long a pending claim is held: Lambda's maximum timeout (15 minutes), so a claim is
/// never taken over from an invocation that may still publish.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn arm_key(rule: &str, entity: &str) -> String {
    bounded_key(format!("ALERT#{rule}#{entity}"), KEY_MAX_BYTES)
}

pub fn quota_key(subscriber: &str, day: &str) -> String {
    format!("ALERT#SMS#{subscriber}#{day}")
}

impl AlertState {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        AlertState {
            client,
            table: table.into(),
            policy,
        }
    }

    /// An UpdateItem of one of the alerter's items, retried; `Ok(false)`: the condition
    /// did not hold.
    async fn update(
        &self,
        pk: &str,
        sk: &str,
        expression: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let attempt = || async {
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression(expression)
                .condition_expression(condition);
            for (k, v) in names {
                req = req.expression_attribute_names(*k, *v);
            }
            for (k, v) in values {
                req = req.expression_attribute_values(*k, v.clone());
            }
            req.send().await
        };
        conditional(attempt.retried(self.policy).await)
    }
}

#[async_trait]
impl DedupStore for AlertState {
    async fn claim(
        &self,
        key: &str,
        record_id: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<Claim, StoreError> {
        let expires = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
        let item: Item = HashMap::from([
            ("pk".to_string(), s(key)),
            ("sk".to_string(), s(CLAIM_SK)),
            ("status".to_string(), s("pending")),
            ("record_id".to_string(), s(record_id)),
            ("claimed_at".to_string(), s(now.to_rfc3339())),
            ("claimed_epoch".to_string(), n(now.timestamp())),
            ("expires_at".to_string(), n(expires.timestamp())),
        ]);
        let attempt = || async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(CLAIM_CONDITION)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":now", n(now.timestamp()))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":released", s("released"))
                .expression_attribute_values(
                    ":stale",
                    n(now.timestamp() - CLAIM_LEASE.as_secs() as i64),
                )
                .send()
                .await
        };
        Ok(match conditional(attempt.retried(self.policy).await)? {
            true => Claim::Acquired,
            false => Claim::AlreadySent,
        })
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        // Not pending (sent, or taken over): nothing to give back.
        self.update(
            key,
            CLAIM_SK,
            "SET #status = :released",
            "#status = :pending",
            &[("#status", "status")],
            &[(":released", s("released")), (":pending", s("pending"))],
        )
        .await
        .map(|_| ())
    }

    async fn mark_sent(
        &self,
        key: &str,
        record_id: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        // Only our live claim: an update creates a missing item, and a claim whose lease
        // ran out may be gone (TTL) or taken; recreating it would hold a deal nobody sent,
        // or mark another claimant's publish as ours.
        let marked = self
            .update(
                key,
                CLAIM_SK,
                "SET #status = :sent, message_id = :m",
                MARK_CONDITION,
                &[("#status", "status")],
                &[
                    (":sent", s("sent")),
                    (":pending", s("pending")),
                    (":r", s(record_id)),
                    (":m", s(message_id)),
                ],
            )
            .await?;
        if marked {
            Ok(())
        } else {
            Err(StoreError(format!(
                "claim {key} is no longer this record's pending claim (expired, released or taken): not marked sent"
            )))
        }
    }
}

#[async_trait]
impl ArmStore for AlertState {
    async fn last(&self, rule: &str, entity: &str) -> Result<Option<Armed>, StoreError> {
        let key = arm_key(rule, entity);
        let attempt = || async {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(key.clone()))
                .key("sk", s(ARM_SK))
                .consistent_read(true)
                .send()
                .await
        };
        let out = attempt
            .retried(self.policy)
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let number = |k: &str| item.get(k).and_then(|v| v.as_n().ok());
        let value = number("value").and_then(|n| n.parse().ok());
        let at_ms = number("at_ms").and_then(|n| n.parse().ok());
        let change = item.get("change").and_then(|v| v.as_s().ok()).cloned();
        Ok(match (value, at_ms, change) {
            (Some(value), Some(at_ms), Some(change)) => Some(Armed {
                value,
                at_ms,
                change,
            }),
            // Not an item this code wrote: as if there were none.
            _ => None,
        })
    }

    async fn record(
        &self,
        rule: &str,
        entity: &str,
        armed: &Armed,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Per-entity order makes the condition hold anyway; a late retry must not go back.
        self.update(
            &arm_key(rule, entity),
            ARM_SK,
            "SET #v = :v, at_ms = :at, #c = :c, expires_at = :e",
            "attribute_not_exists(at_ms) OR at_ms <= :at",
            &[("#v", "value"), ("#c", "change")],
            &[
                (":v", n(armed.value)),
                (":at", n(armed.at_ms)),
                (":c", s(armed.change.clone())),
                (":e", n(expires.timestamp())),
            ],
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl SmsQuota for AlertState {
    async fn take(&self, subscriber: &str, day: &str, cap: u32) -> Result<bool, StoreError> {
        let expires = (Utc::now() + QUOTA_LIFETIME).timestamp();
        self.update(
            &quota_key(subscriber, day),
            QUOTA_SK,
            "ADD sent :one SET expires_at = :e",
            "attribute_not_exists(sent) OR sent < :cap",
            &[],
            &[(":one", n(1)), (":cap", n(cap)), (":e", n(expires))],
        )
        .await
    }

    async fn give_back(&self, subscriber: &str, day: &str) -> Result<(), StoreError> {
        self.update(
            &quota_key(subscriber, day),
            QUOTA_SK,
            "ADD sent :minus",
            "sent > :zero",
            &[],
            &[(":minus", n(-1)), (":zero", n(0))],
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl MoveStore for AlertState {
    async fn record_move(
        &self,
        rule: &str,
        group: &str,
        bookmaker: &str,
        at_ms: i64,
        expires: DateTime<Utc>,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let key = arm_key(rule, group);
        let attribute = format!("bm_{bookmaker}");
        let attempt = || async {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(key.clone()))
                .key("sk", s(MOVES_SK))
                .update_expression("SET #b = :at, expires_at = :e")
                .condition_expression("attribute_not_exists(#b) OR #b < :at")
                .expression_attribute_names("#b", attribute.clone())
                .expression_attribute_values(":at", n(at_ms))
                .expression_attribute_values(":e", n(expires.timestamp()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
        };
        let written = attempt.retried(self.policy).await;
        let item = match written {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            Err(e) => {
                // A newer move of this bookmaker is stored (a retry): read the group as it is.
                conditional(Err::<(), _>(e))?;
                let get = || async {
                    self.client
                        .get_item()
                        .table_name(&self.table)
                        .key("pk", s(key.clone()))
                        .key("sk", s(MOVES_SK))
                        .consistent_read(true)
                        .send()
                        .await
                };
                let out = get
                    .retried(self.policy)
                    .await
                    .map_err(|e| StoreError(describe(&e)))?;
                out.item().cloned().unwrap_or_default()
            }
        };
        Ok(item
            .iter()
            .filter_map(|(k, v)| {
                let bookmaker = k.strip_prefix("bm_")?;
                Some((bookmaker.to_string(), v.as_n().ok()?.parse().ok()?))
            })
            .collect())
    }
}
