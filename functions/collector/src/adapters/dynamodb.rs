//! DynamoDB: the collector's state between invocations (breakers, learned limits, cursors,
//! holds, last runs) in the state table.

use crate::breaker::{BreakerState, BreakerStore, Phase};
use crate::ratelimit::{LimitState, LimitStore};
use crate::state::{Cursor, CursorStore, HoldState, HoldStore, RunLog, RunRecord, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use pricewire_pipeline::adapters::dynamodb::{get_n, get_s, n, put_state, Item, STATE_SK};
use pricewire_pipeline::adapters::{describe, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::sources::Step;
use std::collections::HashMap;

/// The collector's operational state in the state table, each item with sort key `STATE`
/// and plain attributes so an operator (and `pricewire status`) can read them:
/// `BREAKER#<host>`, `LIMIT#<host><path>`, `CURSOR#<job>`, `HOLD#<scope>#<name>` and
/// `RUN#<job>`.
pub struct DynamoHostState {
    client: aws_sdk_dynamodb::Client,
    table: String,
    policy: RetryPolicy,
}

pub const BREAKER_PREFIX: &str = "BREAKER#";
pub const LIMIT_PREFIX: &str = "LIMIT#";
pub const CURSOR_PREFIX: &str = "CURSOR#";
pub const HOLD_PREFIX: &str = "HOLD#";
pub const RUN_PREFIX: &str = "RUN#";
/// A cursor nobody resumed within a day is stale (the data moved on): TTL removes it.
const CURSOR_TTL: chrono::Duration = chrono::Duration::days(1);
/// A walk's high-water mark outlives a paused job by this much.
const MARK_TTL: chrono::Duration = chrono::Duration::days(31);

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

    async fn put(&self, item: Item, pk: String) -> Result<(), StoreError> {
        put_state(&self.client, &self.table, self.policy, pk, item).await
    }
}

#[async_trait]
impl BreakerStore for DynamoHostState {
    async fn load_breaker(&self, host: &str) -> Result<Option<BreakerState>, StoreError> {
        let Some(item) = self.get(format!("{BREAKER_PREFIX}{host}")).await? else {
            return Ok(None);
        };
        Ok(Some(BreakerState {
            phase: item
                .get("phase")
                .and_then(|v| v.as_s().ok())
                .and_then(|s| Phase::parse(s))
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
        s: &BreakerState,
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
}

#[async_trait]
impl LimitStore for DynamoHostState {
    async fn load_limit(&self, key: &str) -> Result<Option<LimitState>, StoreError> {
        let item = self.get(format!("{LIMIT_PREFIX}{key}")).await?;
        Ok(item.and_then(|item| {
            Some(LimitState {
                rpm: get_n(&item, "rpm")?,
                paused_until_ms: get_n(&item, "paused_until_ms"),
                credit: get_n(&item, "credit").unwrap_or(0),
            })
        }))
    }

    async fn save_limit(&self, key: &str, state: &LimitState) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("rpm".to_string(), n(format!("{:.3}", state.rpm))),
            ("credit".to_string(), n(state.credit)),
        ]);
        if let Some(p) = state.paused_until_ms {
            item.insert("paused_until_ms".into(), n(p));
        }
        self.put(item, format!("{LIMIT_PREFIX}{key}")).await
    }
}

#[async_trait]
impl CursorStore for DynamoHostState {
    async fn load_cursor(&self, job: &str) -> Result<Option<Cursor>, StoreError> {
        let item = self.get(format!("{CURSOR_PREFIX}{job}")).await?;
        // A cursor this build cannot read (an older layout) is no cursor: the walk
        // starts over, which collects nothing twice downstream (ids are content).
        Ok(item.and_then(|item| {
            Some(Cursor {
                plan: get_s(&item, "plan")?.to_string(),
                next: serde_json::from_str(get_s(&item, "next")?).ok()?,
                done: get_s(&item, "done")
                    .map(|s| s.split(',').filter_map(|p| p.parse().ok()).collect())
                    .unwrap_or_default(),
                steps: get_n(&item, "steps").unwrap_or(0),
                started_ms: get_n(&item, "started_ms").unwrap_or(0),
                mark: item
                    .get("mark")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                edge: get_s(&item, "edge")
                    .map(|s| {
                        s.split(',')
                            .filter(|id| !id.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        }))
    }

    async fn save_cursor(&self, job: &str, c: &Cursor) -> Result<(), StoreError> {
        let done: Vec<String> = c.done.iter().map(u32::to_string).collect();
        let mut item: Item = HashMap::from([
            ("plan".to_string(), AttributeValue::S(c.plan.clone())),
            (
                "next".to_string(),
                AttributeValue::S(serde_json::to_string(&c.next).unwrap_or_default()),
            ),
            ("done".to_string(), AttributeValue::S(done.join(","))),
            ("steps".to_string(), n(c.steps)),
            ("started_ms".to_string(), n(c.started_ms)),
            ("mark".to_string(), AttributeValue::Bool(c.mark)),
            // From the walk's start, not this save: a walk stuck on a page still expires.
            // A mark lives as long as a job could pause (a month).
            (
                "expires_at".to_string(),
                n(c.started_ms / 1000
                    + if c.mark {
                        MARK_TTL.num_seconds()
                    } else {
                        CURSOR_TTL.num_seconds()
                    }),
            ),
        ]);
        if !c.edge.is_empty() {
            item.insert("edge".into(), AttributeValue::S(c.edge.join(",")));
        }
        // For an operator reading the table (and `pricewire status`).
        if let Step::Page { page } = &c.next {
            item.insert("next_page".into(), n(page));
        }
        self.put(item, format!("{CURSOR_PREFIX}{job}")).await
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
impl HoldStore for DynamoHostState {
    async fn load_hold(&self, key: &str) -> Result<Option<HoldState>, StoreError> {
        let item = self.get(format!("{HOLD_PREFIX}{key}")).await?;
        Ok(item.and_then(|item| {
            Some(HoldState {
                until_ms: get_n(&item, "until_ms")?,
                reason: get_s(&item, "reason").unwrap_or_default().to_string(),
            })
        }))
    }

    async fn save_hold(&self, key: &str, hold: &HoldState) -> Result<(), StoreError> {
        let item: Item = HashMap::from([
            ("until_ms".to_string(), n(hold.until_ms)),
            ("reason".to_string(), AttributeValue::S(hold.reason.clone())),
            // Gone by itself a day after it ends.
            ("expires_at".to_string(), n(hold.until_ms / 1000 + 86_400)),
        ]);
        self.put(item, format!("{HOLD_PREFIX}{key}")).await
    }
}

#[async_trait]
impl RunLog for DynamoHostState {
    async fn load_run(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        let item = self.get(format!("{RUN_PREFIX}{job}")).await?;
        Ok(item.and_then(|item| {
            Some(RunRecord {
                at_ms: get_n(&item, "at_ms")?,
                records_out: get_n(&item, "records_out").unwrap_or(0),
                pages: get_n(&item, "pages").unwrap_or(0),
                complete: matches!(item.get("complete"), Some(AttributeValue::Bool(true))),
                stalled_since_ms: get_n(&item, "stalled_since_ms"),
                incomplete_since_ms: get_n(&item, "incomplete_since_ms"),
            })
        }))
    }

    async fn save_run(&self, job: &str, run: &RunRecord) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("at_ms".to_string(), n(run.at_ms)),
            ("records_out".to_string(), n(run.records_out)),
            ("pages".to_string(), n(run.pages)),
            ("complete".to_string(), AttributeValue::Bool(run.complete)),
        ]);
        for (name, since) in [
            ("stalled_since_ms", run.stalled_since_ms),
            ("incomplete_since_ms", run.incomplete_since_ms),
        ] {
            if let Some(ms) = since {
                item.insert(name.to_string(), n(ms));
            }
        }
        self.put(item, format!("{RUN_PREFIX}{job}")).await
    }
}
