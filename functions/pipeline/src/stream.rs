//! Records as they arrive from the stream (Kinesis event source mapping).

use crate::envelope::{Envelope, EnvelopeError};
use aws_lambda_events::kinesis::KinesisEventRecord;
pub use base64_lite::decode as decode_base64;
use base64_lite::encode as b64;
use serde::Serialize;

/// A stream record that is not a valid envelope: set aside with its reason, never retried
/// (it would fail the same way forever and block its shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Poison {
    pub reason: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub event_source_arn: Option<String>,
    /// The bytes as text when they are UTF-8, else base64 (see `encoding`).
    pub data: String,
    pub encoding: &'static str,
}

pub fn decode(record: &KinesisEventRecord) -> Result<Envelope, Box<Poison>> {
    let data: &[u8] = &record.kinesis.data;
    let checked = Envelope::from_slice(data).and_then(|e| e.verify_id().map(|_| e));
    checked.map_err(|e: EnvelopeError| Box::new(poison(record, e.to_string())))
}

/// A record set aside with its reason.
pub fn poison(record: &KinesisEventRecord, reason: String) -> Poison {
    let data: &[u8] = &record.kinesis.data;
    let (text, encoding) = match std::str::from_utf8(data) {
        Ok(s) => (s.to_string(), "utf-8"),
        Err(_) => (b64(data), "base64"),
    };
    Poison {
        reason,
        sequence_number: record.kinesis.sequence_number.clone(),
        partition_key: record.kinesis.partition_key.clone(),
        event_source_arn: record.event_source_arn.clone(),
        data: text,
        encoding,
    }
}

/// The shard a record came from: its event id is `<shard id>:<sequence number>`.
pub fn shard_of(record: &KinesisEventRecord) -> Option<&str> {
    record
        .event_id
        .as_deref()?
        .split_once(':')
        .map(|(shard, _)| shard)
}

/// Per shard of a batch, the last record handled before the shard's first failure: what a
/// reader checkpoints as `(shard, sequence number, arrival epoch ms)`.
pub fn checkpoints(
    records: &[KinesisEventRecord],
    failed: &std::collections::BTreeSet<String>,
) -> Vec<(String, String, i64)> {
    let mut out: Vec<(String, String, i64)> = Vec::new();
    let mut stopped: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for r in records {
        let shard = shard_of(r).unwrap_or("unknown").to_string();
        if stopped.contains(&shard) {
            continue;
        }
        if failed.contains(&r.kinesis.sequence_number) {
            stopped.insert(shard);
            continue;
        }
        let at = r.kinesis.approximate_arrival_timestamp.0.timestamp_millis();
        match out.iter_mut().find(|(s, _, _)| *s == shard) {
            Some(c) => {
                c.1 = r.kinesis.sequence_number.clone();
                c.2 = at;
            }
            None => out.push((shard, r.kinesis.sequence_number.clone(), at)),
        }
    }
    out
}

/// `kind` of the messages a stream reader sends to its dead-letter queue for poison records
/// (Lambda's own failure records carry `requestContext` instead).
pub const POISON_NOTICE_KIND: &str = "poison";

/// The dead-letter message for a poison record: its reason, where it was on the stream, the
/// quarantine object holding it, and its bytes when they fit in an SQS message.
pub fn poison_notice(
    function: &str,
    shard: Option<&str>,
    quarantine_key: &str,
    p: &Poison,
) -> String {
    let notice = |data: &str, encoding: &str| {
        serde_json::json!({
            "kind": POISON_NOTICE_KIND,
            "function": function,
            "reason": p.reason,
            "shard_id": shard,
            "sequence_number": p.sequence_number,
            "partition_key": p.partition_key,
            "event_source_arn": p.event_source_arn,
            "quarantine_key": quarantine_key,
            "data": data,
            "encoding": encoding,
        })
        .to_string()
    };
    let full = notice(&p.data, p.encoding);
    if full.len() <= crate::limits::SQS_MESSAGE_MAX_BYTES {
        full
    } else {
        notice("", "omitted: too large for SQS, see quarantine_key")
    }
}

/// Minimal standard base64 for quarantining binary garbage; a dependency for one call site
/// on a path that should never run would be more weight than these lines.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// The inverse, for operators putting a quarantined record back (`None`: not base64).
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = ALPHABET.iter().position(|a| *a == c)? as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }

    #[cfg(test)]
    #[test]
    fn decodes_what_it_encodes() {
        for data in [&b""[..], b"f", b"fo", b"foobar", &[0xff, 0xfe, 0x00, 0x7f]] {
            assert_eq!(decode(&encode(data)).as_deref(), Some(data));
        }
        assert_eq!(decode("not base64!"), None);
    }

    #[cfg(test)]
    #[test]
    fn encodes_like_rfc4648() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(&[0xff, 0xfe]), "//4=");
    }
}

/// Builds a Kinesis event record (tests and the local twin use it).
pub fn event_record(
    sequence_number: &str,
    partition_key: &str,
    data: Vec<u8>,
) -> KinesisEventRecord {
    let mut record = KinesisEventRecord::default();
    record.event_source = Some("aws:kinesis".into());
    record.event_name = Some("aws:kinesis:record".into());
    record.event_id = Some(format!("shardId-000000000000:{sequence_number}"));
    record.kinesis.sequence_number = sequence_number.to_string();
    record.kinesis.partition_key = partition_key.to_string();
    *record.kinesis.data = data;
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn on(shard: &str, seq: &str, at_s: i64) -> KinesisEventRecord {
        let mut r = event_record(seq, "pk", b"x".to_vec());
        r.event_id = Some(format!("{shard}:{seq}"));
        r.kinesis.approximate_arrival_timestamp = aws_lambda_events::encodings::SecondTimestamp(
            chrono::DateTime::from_timestamp(at_s, 0).unwrap(),
        );
        r
    }

    #[test]
    fn checkpoints_stop_before_each_shards_first_failure() {
        let records = [
            on("shardId-1", "10", 100),
            on("shardId-2", "20", 200),
            on("shardId-1", "11", 101),
            on("shardId-2", "21", 201),
            on("shardId-1", "12", 102),
            on("shardId-3", "30", 300),
        ];
        let failed: BTreeSet<String> = ["21".to_string(), "30".to_string()].into();
        assert_eq!(
            checkpoints(&records, &failed),
            vec![
                ("shardId-1".to_string(), "12".to_string(), 102_000),
                ("shardId-2".to_string(), "20".to_string(), 200_000),
            ],
            "shard 2 stops before 21; shard 3 failed at its first record"
        );
        assert_eq!(shard_of(&records[1]), Some("shardId-2"));
    }

    #[test]
    fn poison_notices_carry_the_reason_and_drop_data_too_large_for_sqs() {
        let small = poison(&on("shardId-1", "7", 1), "not JSON".into());
        let n: serde_json::Value =
            serde_json::from_str(&poison_notice("consumer", Some("shardId-1"), "q/k", &small))
                .unwrap();
        assert_eq!(n["kind"], POISON_NOTICE_KIND);
        assert_eq!(n["reason"], "not JSON");
        assert_eq!(n["sequence_number"], "7");
        assert_eq!(n["data"], "x");
        let mut big = small.clone();
        big.data = "y".repeat(crate::limits::SQS_MESSAGE_MAX_BYTES);
        let text = poison_notice("consumer", None, "q/k", &big);
        assert!(text.len() <= crate::limits::SQS_MESSAGE_MAX_BYTES);
        let n: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(n["data"], "");
        assert_eq!(n["quarantine_key"], "q/k");
    }
}
