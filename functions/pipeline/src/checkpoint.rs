//! Where a stream reader got to: the last record of its last batch on one shard. The
//! consumer and the alerter write it after each batch (`CHECKPOINT#<function>#<shard>` in
//! the state table); `pricewire status` measures reader lag from it.

use crate::adapters::dynamodb::StoreError;
use async_trait::async_trait;
use std::collections::BTreeSet;

/// The one capability a stream reader needs to checkpoint.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn checkpoint(
        &self,
        function: &str,
        shard: &str,
        sequence_number: &str,
        arrival_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Checkpoints a handled batch: per shard, the last record before its first failure. Only
/// `pricewire status` reads checkpoints, so a failed write is logged, never fatal.
pub async fn checkpoint_batch(
    store: &dyn CheckpointStore,
    function: &str,
    records: &[aws_lambda_events::kinesis::KinesisEventRecord],
    failed: &BTreeSet<String>,
) {
    for (shard, seq, arrival) in crate::stream::checkpoints(records, failed) {
        if let Err(e) = store.checkpoint(function, &shard, &seq, arrival).await {
            tracing::warn!(function, shard = %shard, error = %e, "checkpoint not written");
        }
    }
}
