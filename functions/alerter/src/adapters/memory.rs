//! In-memory adapters of the alerter's ports, shared by its tests and the bench.

use crate::message::Alert;
use crate::ports::{
    AlertPublisher, ArmStore, Delivery, MoveStore, PublishError, SmsQuota, StoreError,
};
use crate::realert::Armed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

fn poisoned<T>(_: T) -> StoreError {
    StoreError("lock poisoned".into())
}

/// Last alerts per (rule, entity), as the state table keeps them (expiry ignored: the
/// policy's cooldown decides).
#[derive(Default)]
pub struct MemoryArms {
    last: Mutex<HashMap<(String, String), Armed>>,
}

#[async_trait]
impl ArmStore for MemoryArms {
    async fn last(&self, rule: &str, entity: &str) -> Result<Option<Armed>, StoreError> {
        let last = self.last.lock().map_err(poisoned)?;
        Ok(last.get(&(rule.to_string(), entity.to_string())).cloned())
    }

    async fn record(
        &self,
        rule: &str,
        entity: &str,
        armed: &Armed,
        _expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut last = self.last.lock().map_err(poisoned)?;
        let slot = last.entry((rule.to_string(), entity.to_string()));
        let e = slot.or_insert_with(|| armed.clone());
        if e.at_ms <= armed.at_ms {
            *e = armed.clone();
        }
        Ok(())
    }
}

/// Bookmakers' latest moves per (rule, group).
#[derive(Default)]
pub struct MemoryMoves {
    moves: Mutex<HashMap<(String, String), BTreeMap<String, i64>>>,
}

#[async_trait]
impl MoveStore for MemoryMoves {
    async fn record_move(
        &self,
        rule: &str,
        group: &str,
        bookmaker: &str,
        at_ms: i64,
        _expires: DateTime<Utc>,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut moves = self.moves.lock().map_err(poisoned)?;
        let group = moves
            .entry((rule.to_string(), group.to_string()))
            .or_default();
        let t = group.entry(bookmaker.to_string()).or_insert(at_ms);
        *t = (*t).max(at_ms);
        Ok(group.clone())
    }
}

/// SMS counts per (subscriber, day).
#[derive(Default)]
pub struct MemoryQuota {
    used: Mutex<HashMap<(String, String), u32>>,
}

impl MemoryQuota {
    pub fn used(&self, subscriber: &str, day: &str) -> u32 {
        self.used
            .lock()
            .ok()
            .and_then(|u| u.get(&(subscriber.to_string(), day.to_string())).copied())
            .unwrap_or(0)
    }
}

#[async_trait]
impl SmsQuota for MemoryQuota {
    async fn take(&self, subscriber: &str, day: &str, cap: u32) -> Result<bool, StoreError> {
        let mut used = self.used.lock().map_err(poisoned)?;
        let n = used
            .entry((subscriber.to_string(), day.to_string()))
            .or_default();
        if *n >= cap {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }

    async fn give_back(&self, subscriber: &str, day: &str) -> Result<(), StoreError> {
        let mut used = self.used.lock().map_err(poisoned)?;
        if let Some(n) = used.get_mut(&(subscriber.to_string(), day.to_string())) {
            *n = n.saturating_sub(1);
        }
        Ok(())
    }
}

/// A topic that keeps what is published; the calls whose index is in `failing` fail.
#[derive(Default)]
pub struct MemoryPublisher {
    sent: Mutex<Vec<Alert>>,
    deliveries: Mutex<Vec<Option<Delivery>>>,
    failing: Mutex<BTreeSet<usize>>,
    calls: Mutex<usize>,
}

impl MemoryPublisher {
    /// The `n`-th publish (from 0) fails, as an SNS outage would.
    pub fn fail_call(&self, n: usize) {
        if let Ok(mut f) = self.failing.lock() {
            f.insert(n);
        }
    }

    pub fn sent(&self) -> Vec<Alert> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whom each sent alert was addressed to, in the order of `sent`.
    pub fn deliveries(&self) -> Vec<Option<Delivery>> {
        self.deliveries
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Alert, to: Option<&Delivery>) -> Result<String, PublishError> {
        let n = {
            let mut calls = self
                .calls
                .lock()
                .map_err(|_| PublishError("lock poisoned".into()))?;
            *calls += 1;
            *calls - 1
        };
        if self.failing.lock().is_ok_and(|f| f.contains(&n)) {
            return Err(PublishError("InternalError: try again".into()));
        }
        self.sent
            .lock()
            .map_err(|_| PublishError("lock poisoned".into()))?
            .push(alert.clone());
        self.deliveries
            .lock()
            .map_err(|_| PublishError("lock poisoned".into()))?
            .push(to.cloned());
        Ok(format!("msg-{}", n + 1))
    }
}
