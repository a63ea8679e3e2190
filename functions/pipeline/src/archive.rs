//! Layout of the S3 archive, and gzip. Pure.
//!
//! - raw responses: `raw/source=<source>/dt=YYYY-MM-DD/hour=HH/<job>-<unique>.json.gz`
//! - quarantined records: `quarantine/source=<source>/dt=YYYY-MM-DD/hour=HH/<job>-<unique>.jsonl.gz`
//!   (JSON Lines, one record with its reason per line)
//!
//! Hive-style partitions let Athena or a replay select a source and a time range by prefix.

use chrono::{DateTime, Utc};

/// The `source=` partition the consumer quarantines poison stream records under: no source
/// may take the name (each writer's IAM grant is its own prefixes).
pub const STREAM_QUARANTINE_SOURCE: &str = "stream";
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use std::io::{Read, Write};

pub const RAW_PREFIX: &str = "raw";
pub const QUARANTINE_PREFIX: &str = "quarantine";

/// Object metadata keys on raw archive objects (S3 prefixes them with `x-amz-meta-`).
pub mod meta {
    pub const URL: &str = "url";
    pub const STATUS: &str = "status";
    pub const FETCHED_AT: &str = "fetched-at";
    pub const JOB: &str = "job";
    pub const ATTEMPT: &str = "attempt";
}

fn partition(prefix: &str, source: &str, at: DateTime<Utc>) -> String {
    format!(
        "{prefix}/source={source}/dt={}/hour={}",
        at.format("%Y-%m-%d"),
        at.format("%H")
    )
}

/// The key of one raw response. `unique` keeps keys distinct across retries and invocations.
pub fn raw_key(source: &str, job: &str, fetched_at: DateTime<Utc>, unique: &str) -> String {
    format!(
        "{}/{job}-{unique}.json.gz",
        partition(RAW_PREFIX, source, fetched_at)
    )
}

/// The key of one quarantine file.
pub fn quarantine_key(source: &str, job: &str, at: DateTime<Utc>, unique: &str) -> String {
    format!(
        "{}/{job}-{unique}.jsonl.gz",
        partition(QUARANTINE_PREFIX, source, at)
    )
}

/// The prefix that holds a source's raw responses of one day.
pub fn raw_day_prefix(source: &str, day: chrono::NaiveDate) -> String {
    format!(
        "{RAW_PREFIX}/source={source}/dt={}/",
        day.format("%Y-%m-%d")
    )
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::default(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// JSON Lines: one serialised value per line.
pub fn json_lines<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        if let Ok(line) = serde_json::to_vec(item) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_are_partitioned_by_source_day_and_hour() {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 7, 5, 0).unwrap();
        assert_eq!(
            raw_key("travelpayouts", "led-kzn", t, "abc"),
            "raw/source=travelpayouts/dt=2026-11-21/hour=07/led-kzn-abc.json.gz"
        );
        assert_eq!(
            quarantine_key("travelpayouts", "led-kzn", t, "abc"),
            "quarantine/source=travelpayouts/dt=2026-11-21/hour=07/led-kzn-abc.jsonl.gz"
        );
        assert!(raw_key("travelpayouts", "led-kzn", t, "abc")
            .starts_with(&raw_day_prefix("travelpayouts", t.date_naive())));
    }

    #[test]
    fn gzip_round_trips_and_lines_are_lines() {
        let lines = json_lines(&[serde_json::json!({"a":1}), serde_json::json!({"b":2})]);
        assert_eq!(lines, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(gunzip(&gzip(&lines)).unwrap(), lines);
        assert!(gunzip(b"plain").is_err());
    }
}
