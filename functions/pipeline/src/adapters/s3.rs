//! S3: the raw and quarantine archive.

use super::{describe, RetriedCall};
use crate::backoff::RetryPolicy;
use crate::limits::S3_USER_METADATA_MAX_BYTES;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    pub metadata: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("S3 put {key}: {detail}")]
pub struct ArchiveError {
    pub key: String,
    pub detail: String,
}

#[async_trait]
pub trait Archive: Send + Sync {
    async fn put(&self, object: Object) -> Result<(), ArchiveError>;
}

pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
    policy: RetryPolicy,
}

impl S3Archive {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, policy: RetryPolicy) -> Self {
        S3Archive {
            client,
            bucket: bucket.into(),
            policy,
        }
    }
}

/// Keeps user metadata within S3's 2 KB (ASCII only: it travels as HTTP headers); values are
/// cut, in order, until the whole fits.
pub fn fit_metadata(metadata: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let keys: usize = metadata.iter().map(|(k, _)| k.len()).sum();
    let mut budget = S3_USER_METADATA_MAX_BYTES.saturating_sub(keys);
    metadata
        .iter()
        .map(|(k, v)| {
            let ascii: String = v
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .collect();
            let cut: String = ascii.chars().take(budget).collect();
            budget -= cut.len();
            (*k, cut)
        })
        .collect()
}

#[async_trait]
impl Archive for S3Archive {
    async fn put(&self, object: Object) -> Result<(), ArchiveError> {
        let metadata = fit_metadata(&object.metadata);
        let attempt = || async {
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&object.key)
                .body(ByteStream::from(object.body.clone()))
                .content_type(object.content_type);
            if let Some(enc) = object.content_encoding {
                req = req.content_encoding(enc);
            }
            for (k, v) in &metadata {
                req = req.metadata(*k, v);
            }
            req.send().await
        };
        attempt
            .retried(self.policy)
            .await
            .map(|_| ())
            .map_err(|e| ArchiveError {
                key: object.key.clone(),
                detail: describe(&e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_cut_to_fit_s3() {
        let long = "u".repeat(5000);
        let fitted = fit_metadata(&[("url", long), ("status", "200".into())]);
        let total: usize = fitted.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(total <= S3_USER_METADATA_MAX_BYTES);
        assert_eq!(fit_metadata(&[("job", "léd".into())])[0].1, "ld");
    }
}
