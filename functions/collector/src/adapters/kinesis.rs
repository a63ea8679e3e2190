//! Kinesis PutRecords within the limits, retrying only the entries that failed.
//!
//! PutRecords is not atomic: a 200 response can carry per-entry `ErrorCode`s
//! (`ProvisionedThroughputExceededException`, `InternalFailure`). Only those entries are
//! sent again, with backoff and full jitter, up to the attempt cap; entries still failing
//! then fail the call. Ids are deterministic, so a retry of the whole invocation doubles
//! nothing downstream.

use crate::sink::{PutError, PutReport, RecordSink, StreamRecord};
use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use pricewire_pipeline::adapters::{describe, is_retryable};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::batching::put_records_batches;

pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream_name: String,
    policy: RetryPolicy,
}

impl KinesisSink {
    pub fn new(
        client: aws_sdk_kinesis::Client,
        stream_name: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        KinesisSink {
            client,
            stream_name: stream_name.into(),
            policy,
        }
    }

    async fn put_batch(
        &self,
        batch: Vec<StreamRecord>,
        report: &mut PutReport,
    ) -> Result<(), (usize, u32, String)> {
        let mut pending: Vec<PutRecordsRequestEntry> = Vec::with_capacity(batch.len());
        for r in batch {
            let entry = PutRecordsRequestEntry::builder()
                .partition_key(r.partition_key)
                .data(Blob::new(r.data))
                .build()
                .map_err(|e| (1usize, 0u32, e.to_string()))?;
            pending.push(entry);
        }
        let mut delays = self.policy.delays();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            report.requests += 1;
            let last_error = match self
                .client
                .put_records()
                .stream_name(&self.stream_name)
                .set_records(Some(pending.clone()))
                .send()
                .await
            {
                Ok(out) => {
                    let results = out.records();
                    let mut failed = Vec::new();
                    let mut first_error = None;
                    for (i, entry) in pending.into_iter().enumerate() {
                        match results.get(i) {
                            Some(r) if r.error_code().is_none() => report.put += 1,
                            other => {
                                if first_error.is_none() {
                                    first_error = Some(match other {
                                        Some(r) => format!(
                                            "{}: {}",
                                            r.error_code().unwrap_or(""),
                                            r.error_message().unwrap_or("")
                                        ),
                                        None => "entry missing from the response".to_string(),
                                    });
                                }
                                failed.push(entry);
                            }
                        }
                    }
                    pending = failed;
                    if pending.is_empty() {
                        return Ok(());
                    }
                    first_error.unwrap_or_default()
                }
                Err(e) => {
                    if !is_retryable(&e) {
                        return Err((pending.len(), attempts, describe(&e)));
                    }
                    describe(&e)
                }
            };
            match delays.next() {
                Some(delay) => {
                    tracing::warn!(attempt = attempts, retrying = pending.len(), error = %last_error, "PutRecords entries failed; retrying them");
                    report.retried_entries += pending.len();
                    tokio::time::sleep(delay).await;
                }
                None => return Err((pending.len(), attempts, last_error)),
            }
        }
    }
}

#[async_trait]
impl RecordSink for KinesisSink {
    async fn put_records(&self, records: Vec<StreamRecord>) -> Result<PutReport, PutError> {
        let total = records.len();
        let mut report = PutReport::default();
        let sized = records.into_iter().map(|r| {
            let size = r.size();
            (r, size)
        });
        let mut failure: Option<(usize, u32, String)> = None;
        // Every batch is attempted even after one fails, so as much as possible lands.
        for batch in put_records_batches(sized.collect()) {
            if let Err((failed, attempts, last)) = self.put_batch(batch, &mut report).await {
                let f = failure.get_or_insert((0, 0, String::new()));
                f.0 += failed;
                f.1 = f.1.max(attempts);
                f.2 = last;
            }
        }
        match failure {
            None => Ok(report),
            Some((failed, attempts, last_error)) => Err(PutError {
                failed,
                total,
                attempts,
                last_error,
                report,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::error::ErrorMetadata;
    use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::time::Duration;

    fn no_retry(c: aws_sdk_kinesis::config::Builder) -> aws_sdk_kinesis::config::Builder {
        c.retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
    }

    fn ok_entry(seq: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .sequence_number(seq)
            .shard_id("shardId-000000000000")
            .build()
    }

    fn throttled() -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code("ProvisionedThroughputExceededException")
            .error_message("Rate exceeded for shard")
            .build()
    }

    fn records(n: usize) -> Vec<StreamRecord> {
        (0..n)
            .map(|i| StreamRecord {
                partition_key: format!("k{i}"),
                data: format!("r{i}").into_bytes(),
            })
            .collect()
    }

    fn sink(client: aws_sdk_kinesis::Client, attempts: u32) -> KinesisSink {
        KinesisSink::new(
            client,
            "prices",
            RetryPolicy::new(attempts, Duration::from_millis(1), Duration::from_millis(2)),
        )
    }

    fn data_of(input: &aws_sdk_kinesis::operation::put_records::PutRecordsInput) -> Vec<String> {
        input
            .records()
            .iter()
            .map(|e| String::from_utf8(e.data().as_ref().to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn only_failed_entries_are_retried() {
        // First call: entries 1 and 3 throttled. Second call must carry exactly r1 and r3.
        let first = mock!(aws_sdk_kinesis::Client::put_records)
            .match_requests(|req| data_of(req) == ["r0", "r1", "r2", "r3"])
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(2)
                    .records(ok_entry("1"))
                    .records(throttled())
                    .records(ok_entry("2"))
                    .records(throttled())
                    .build()
                    .unwrap()
            });
        let second = mock!(aws_sdk_kinesis::Client::put_records)
            .match_requests(|req| data_of(req) == ["r1", "r3"])
            .then_output(|| {
                PutRecordsOutput::builder()
                    .records(ok_entry("3"))
                    .records(ok_entry("4"))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(
            aws_sdk_kinesis,
            RuleMode::Sequential,
            [&first, &second],
            no_retry
        );
        let report = sink(client, 3).put_records(records(4)).await.unwrap();
        assert_eq!(
            report,
            PutReport {
                put: 4,
                requests: 2,
                retried_entries: 2
            }
        );
        assert_eq!(first.num_calls(), 1);
        assert_eq!(second.num_calls(), 1);
    }

    #[tokio::test]
    async fn exhausted_attempts_fail_with_the_count_of_lost_entries() {
        let always = mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .failed_record_count(1)
                .records(ok_entry("1"))
                .records(throttled())
                .build()
                .unwrap()
        });
        let retry = mock!(aws_sdk_kinesis::Client::put_records)
            .match_requests(|req| data_of(req) == ["r1"])
            .sequence()
            .output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(1)
                    .records(throttled())
                    .build()
                    .unwrap()
            })
            .times(2)
            .build();
        let client = mock_client!(
            aws_sdk_kinesis,
            RuleMode::Sequential,
            [&always, &retry],
            no_retry
        );
        let err = sink(client, 3).put_records(records(2)).await.unwrap_err();
        assert_eq!(err.failed, 1);
        assert_eq!(err.total, 2);
        assert_eq!(err.attempts, 3);
        assert_eq!(err.report.put, 1);
        assert!(
            err.to_string()
                .contains("ProvisionedThroughputExceededException"),
            "{err}"
        );
        assert_eq!(retry.num_calls(), 2);
    }

    #[tokio::test]
    async fn whole_request_throttling_is_retried_but_validation_is_not() {
        let throttle = mock!(aws_sdk_kinesis::Client::put_records).then_error(|| {
            PutRecordsError::ProvisionedThroughputExceededException(
                aws_sdk_kinesis::types::error::ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .message("slow down")
                            .build(),
                    )
                    .build(),
            )
        });
        let ok = mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .records(ok_entry("1"))
                .build()
                .unwrap()
        });
        let client = mock_client!(
            aws_sdk_kinesis,
            RuleMode::Sequential,
            [&throttle, &ok],
            no_retry
        );
        let report = sink(client, 3).put_records(records(1)).await.unwrap();
        assert_eq!(report.requests, 2);

        let invalid = mock!(aws_sdk_kinesis::Client::put_records).then_error(|| {
            PutRecordsError::ResourceNotFoundException(
                aws_sdk_kinesis::types::error::ResourceNotFoundException::builder()
                    .message("no such stream")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ResourceNotFoundException")
                            .message("no such stream")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&invalid], no_retry);
        let err = sink(client, 5).put_records(records(1)).await.unwrap_err();
        assert_eq!((err.attempts, invalid.num_calls()), (1, 1));
        assert!(
            err.last_error.contains("ResourceNotFoundException"),
            "{}",
            err.last_error
        );
    }

    #[tokio::test]
    async fn more_than_500_records_go_out_in_several_requests() {
        let echo = mock!(aws_sdk_kinesis::Client::put_records)
            .match_requests(|req| {
                req.records().len() <= pricewire_pipeline::limits::KINESIS_PUT_RECORDS_MAX_ENTRIES
            })
            .sequence()
            .output(|| {
                PutRecordsOutput::builder()
                    .set_records(Some((0..500).map(|i| ok_entry(&i.to_string())).collect()))
                    .build()
                    .unwrap()
            })
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&echo], no_retry);
        let report = sink(client, 1).put_records(records(1001)).await.unwrap();
        assert_eq!(report.requests, 3);
        assert_eq!(report.put, 1001);
    }
}
