//! The stream the collector puts records on: the port, and the record as it travels.
//! `adapters::kinesis::KinesisSink` puts on Kinesis (retrying only failed entries);
//! `adapters::memory::MemorySink` keeps them in a list.

use async_trait::async_trait;
use pricewire_pipeline::limits::KINESIS_PARTITION_KEY_MAX_CHARS;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

impl StreamRecord {
    /// An envelope as it goes on the stream: partitioned by its entity, so one entity's
    /// observations stay in order on one shard.
    pub fn of(e: &pricewire_pipeline::envelope::Envelope) -> StreamRecord {
        StreamRecord {
            partition_key: partition_key(&e.key),
            data: e.to_json(),
        }
    }

    /// Size counted against PutRecords limits: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// A partition key Kinesis accepts: the entity key, or its digest when it is too long.
pub fn partition_key(entity_key: &str) -> String {
    if !entity_key.is_empty() && entity_key.chars().count() <= KINESIS_PARTITION_KEY_MAX_CHARS {
        entity_key.to_string()
    } else {
        hex::encode(Sha256::digest(entity_key.as_bytes()))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PutReport {
    pub put: usize,
    pub requests: usize,
    /// Entries sent again after a per-entry or whole-request failure.
    pub retried_entries: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PutRecords: {failed} of {total} records not accepted after {attempts} attempts (last error: {last_error})")]
pub struct PutError {
    pub failed: usize,
    pub total: usize,
    pub attempts: u32,
    pub last_error: String,
    pub report: PutReport,
}

#[async_trait]
pub trait RecordSink: Send + Sync {
    async fn put_records(&self, records: Vec<StreamRecord>) -> Result<PutReport, PutError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_fit_kinesis() {
        assert_eq!(
            partition_key("LED-KZN/2026-12-05/oneway"),
            "LED-KZN/2026-12-05/oneway"
        );
        let long = "x".repeat(300);
        assert_eq!(partition_key(&long).len(), 64);
    }
}
