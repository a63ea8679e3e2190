//! In-memory adapters of the alerter's ports, shared by its tests.

use crate::message::Alert;
use crate::ports::{AlertPublisher, PublishError};
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// A topic that keeps what is published; the calls whose index is in `failing` fail.
#[derive(Default)]
pub struct MemoryPublisher {
    sent: Mutex<Vec<Alert>>,
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
}

#[async_trait]
impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Alert) -> Result<String, PublishError> {
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
        Ok(format!("msg-{}", n + 1))
    }
}
