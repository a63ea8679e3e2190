//! In-memory adapters of the shared ports: real implementations (a map, a list), not test
//! fakes. Unit tests of every crate use them instead of copying their own, and the
//! operator CLI's `normalise` uses [`MemoryArchive`] when it has nowhere else to put things.

use super::dynamodb::StoreError;
use super::s3::{Archive, ArchiveError, Object};
use crate::checkpoint::CheckpointStore;
use async_trait::async_trait;
use std::sync::Mutex;

/// Objects kept in order of writing. `fail_keys_with` makes puts of matching keys fail, as
/// an S3 outage would.
#[derive(Default)]
pub struct MemoryArchive {
    objects: Mutex<Vec<Object>>,
    fail_keys_with: Mutex<Option<String>>,
}

impl MemoryArchive {
    pub fn objects(&self) -> Vec<Object> {
        self.objects.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The objects whose key starts with `prefix`.
    pub fn under(&self, prefix: &str) -> Vec<Object> {
        self.objects()
            .into_iter()
            .filter(|o| o.key.starts_with(prefix))
            .collect()
    }

    /// From now on, puts of keys starting with `prefix` fail.
    pub fn fail_under(&self, prefix: &str) {
        if let Ok(mut f) = self.fail_keys_with.lock() {
            *f = Some(prefix.to_string());
        }
    }
}

#[async_trait]
impl Archive for MemoryArchive {
    async fn put(&self, object: Object) -> Result<(), ArchiveError> {
        let failing = self
            .fail_keys_with
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .is_some_and(|p| object.key.starts_with(&p));
        if failing {
            return Err(ArchiveError {
                key: object.key,
                detail: "InternalError: the archive is unavailable".into(),
            });
        }
        self.objects
            .lock()
            .map_err(|_| ArchiveError {
                key: object.key.clone(),
                detail: "lock poisoned".into(),
            })?
            .push(object);
        Ok(())
    }
}

/// Checkpoints as written: (function, shard, sequence number).
#[derive(Default)]
pub struct MemoryCheckpoints(pub Mutex<Vec<(String, String, String)>>);

impl MemoryCheckpoints {
    pub fn written(&self) -> Vec<(String, String, String)> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn checkpoint(
        &self,
        function: &str,
        shard: &str,
        sequence_number: &str,
        _arrival_ms: i64,
    ) -> Result<(), StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError("lock poisoned".into()))?
            .push((function.into(), shard.into(), sequence_number.into()));
        Ok(())
    }
}
