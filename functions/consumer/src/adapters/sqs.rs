//! SQS: a function's dead-letter queue, for the poison records it sets aside itself (the
//! event source mapping's own failure records land in the same queue).

use crate::ports::{DeadLetterError, DeadLetters};
use async_trait::async_trait;
use pricewire_pipeline::adapters::{describe, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;

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
