//! In-memory adapters of the consumer's ports, shared by its tests.

use crate::ports::{DeadLetterError, DeadLetters};
use async_trait::async_trait;
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
