//! SQS: a function's dead-letter queue, for the poison records it sets aside itself (the
//! event source mapping's own failure records land in the same queue).

use super::{describe, RetriedCall};
use crate::backoff::RetryPolicy;
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS send: {0}")]
pub struct DeadLetterError(pub String);

#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Sends one message body (JSON, within [`crate::limits::SQS_MESSAGE_MAX_BYTES`]).
    async fn send(&self, body: String) -> Result<(), DeadLetterError>;
}

pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    policy: RetryPolicy,
}

impl SqsDeadLetters {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
            policy,
        }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn send(&self, body: String) -> Result<(), DeadLetterError> {
        let attempt = || async {
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&body)
                .send()
                .await
        };
        attempt
            .retried(self.policy)
            .await
            .map(|_| ())
            .map_err(|e| DeadLetterError(describe(&e)))
    }
}
