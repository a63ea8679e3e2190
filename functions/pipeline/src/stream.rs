//! Records as they arrive from the stream (Kinesis event source mapping).

use crate::envelope::{Envelope, EnvelopeError};
use aws_lambda_events::kinesis::KinesisEventRecord;
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
