//! SNS: publish an alert to the topic, one text per protocol.
//!
//! `MessageStructure=json` lets one Publish carry the one-segment SMS text for phones, the
//! full text for e-mail, and the alert as JSON for queues. Message attributes (source, kind,
//! rule) let subscribers filter.

use crate::message::Alert;
use crate::ports::{AlertPublisher, PublishError};
use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use pricewire_pipeline::adapters::{describe, RetriedCall};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::limits::SNS_MAX_MESSAGE_ATTRIBUTES;

pub struct SnsTopic {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    policy: RetryPolicy,
}

impl SnsTopic {
    pub fn new(
        client: aws_sdk_sns::Client,
        topic_arn: impl Into<String>,
        policy: RetryPolicy,
    ) -> Self {
        SnsTopic {
            client,
            topic_arn: topic_arn.into(),
            policy,
        }
    }
}

/// The per-protocol message document.
pub fn message_document(alert: &Alert) -> String {
    serde_json::json!({
        "default": alert.text,
        "email": alert.text,
        "sms": alert.sms,
        "sqs": serde_json::to_string(alert).unwrap_or_default(),
    })
    .to_string()
}

fn attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

#[async_trait]
impl AlertPublisher for SnsTopic {
    async fn publish(&self, alert: &Alert) -> Result<String, PublishError> {
        let document = message_document(alert);
        let attributes: Vec<(&str, MessageAttributeValue)> = [
            ("source", &alert.source),
            ("kind", &alert.kind),
            ("rule", &alert.rule),
        ]
        .into_iter()
        .filter_map(|(k, v)| attribute(v).map(|a| (k, a)))
        .take(SNS_MAX_MESSAGE_ATTRIBUTES)
        .collect();
        let attempt = || async {
            let mut req = self
                .client
                .publish()
                .topic_arn(&self.topic_arn)
                .message_structure("json")
                .message(&document)
                .subject(&alert.subject);
            for (k, v) in &attributes {
                req = req.message_attributes(*k, v.clone());
            }
            req.send().await
        };
        match attempt.retried(self.policy).await {
            Ok(out) => Ok(out.message_id().unwrap_or_default().to_string()),
            Err(e) => Err(PublishError(describe(&e))),
        }
    }
}
