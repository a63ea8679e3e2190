//! In-memory adapters of the consumer's ports: the dead-letter queue and the prices table,
//! real implementations of the ports (the tests store into them and read them back).

use crate::history::{Planned, Write};
use crate::ports::{
    DeadLetterError, DeadLetters, HistoryReader, HistoryWriter, StoreError, WriteOutcome,
};
use async_trait::async_trait;
use pricewire_pipeline::table::{self, Change, Item};
use std::sync::Mutex;

/// A dead-letter queue that keeps what it is sent, or (`refusing`) refuses everything.
#[derive(Default)]
pub struct MemoryDeadLetters {
    sent: Mutex<Vec<String>>,
    pub refusing: bool,
}

impl MemoryDeadLetters {
    pub fn refusing() -> MemoryDeadLetters {
        MemoryDeadLetters {
            refusing: true,
            ..MemoryDeadLetters::default()
        }
    }

    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, body: String) -> Result<(), DeadLetterError> {
        if self.refusing {
            return Err(DeadLetterError("AccessDenied: not allowed".into()));
        }
        self.sent
            .lock()
            .map_err(|_| DeadLetterError("lock poisoned".into()))?
            .push(body);
        Ok(())
    }
}

/// The prices table in memory, keyed like DynamoDB (pk, then sk in byte order): what the
/// consumer's tests store into and read back, and a count of the writes it was sent.
#[derive(Default)]
pub struct MemoryPrices {
    items: Mutex<std::collections::BTreeMap<(String, String), Item>>,
    writes: std::sync::atomic::AtomicUsize,
    /// Reads fail with this error, when set.
    pub failing_reads: Option<String>,
}

impl MemoryPrices {
    /// A table whose reads all fail with `error` (throttled, say).
    pub fn failing(error: &str) -> MemoryPrices {
        MemoryPrices {
            failing_reads: Some(error.to_string()),
            ..MemoryPrices::default()
        }
    }

    pub fn items(&self) -> Vec<Item> {
        self.items
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every change item, in table order.
    pub fn changes(&self) -> Vec<Change> {
        self.items().iter().filter_map(Change::from_item).collect()
    }

    /// Puts and deletes applied so far.
    pub fn writes(&self) -> usize {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn range(&self, pk: &str, from: &str, to: &str) -> Result<Vec<Change>, StoreError> {
        if let Some(e) = &self.failing_reads {
            return Err(StoreError(e.clone()));
        }
        let items = self
            .items
            .lock()
            .map_err(|_| StoreError("lock poisoned".into()))?;
        Ok(items
            .range((pk.to_string(), from.to_string())..=(pk.to_string(), to.to_string()))
            .filter_map(|(_, item)| Change::from_item(item))
            .collect())
    }
}

fn key(item: &Item) -> (String, String) {
    let get = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    (get("pk"), get("sk"))
}

#[async_trait]
impl HistoryReader for MemoryPrices {
    async fn newest(&self, pk: &str) -> Result<Option<Change>, StoreError> {
        Ok(self
            .range(pk, table::CHANGE_SK_PREFIX, table::CHANGE_SK_END)?
            .pop())
    }

    async fn before(&self, pk: &str, sk: &str) -> Result<Option<Change>, StoreError> {
        Ok(self
            .range(pk, table::CHANGE_SK_PREFIX, sk)?
            .into_iter()
            .rfind(|c| c.sk.as_str() < sk))
    }

    async fn since(&self, pk: &str, sk: &str) -> Result<Vec<Change>, StoreError> {
        self.range(pk, sk, table::CHANGE_SK_END)
    }
}

#[async_trait]
impl HistoryWriter for MemoryPrices {
    async fn write(&self, writes: Vec<Planned>) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        let Ok(mut items) = self.items.lock() else {
            out.failed = writes.into_iter().flat_map(|w| w.origins).collect();
            return out;
        };
        for w in writes {
            match w.write {
                Write::Put(item) => {
                    items.insert(key(&item), item);
                }
                Write::Delete { pk, sk } => {
                    items.remove(&(pk, sk));
                }
            }
            out.written += 1;
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        out.requests = out.written.div_ceil(25);
        out
    }
}
