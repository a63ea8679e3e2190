//! SNS: publish an alert to the topic, one text per protocol.
//!
//! `MessageStructure=json` lets one Publish carry the one-segment SMS text for phones, the
//! full text for e-mail, and the alert as JSON for queues. Message attributes (source, kind,
//! rule, subject) let subscriptions filter; `sms_to` / `email_to` (String.Array) name the
//! declared subscribers this alert is for, which their subscriptions' filter policies ask for.

use crate::message::Alert;
use crate::ports::{AlertPublisher, Delivery, PublishError};
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

fn list_attribute(values: &[String]) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String.Array")
        .string_value(serde_json::to_string(values).ok()?)
        .build()
        .ok()
}

/// The message attributes of an alert: what it is about, and whom it is for.
pub fn attributes(
    alert: &Alert,
    to: Option<&Delivery>,
) -> Vec<(&'static str, MessageAttributeValue)> {
    let mut out: Vec<(&'static str, MessageAttributeValue)> = [
        ("source", &alert.source),
        ("kind", &alert.kind),
        ("rule", &alert.rule),
        ("subject", &alert.about),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .filter_map(|(k, v)| attribute(v).map(|a| (k, a)))
    .collect();
    if let Some(to) = to {
        out.extend(list_attribute(&to.sms_to).map(|a| ("sms_to", a)));
        out.extend(list_attribute(&to.email_to).map(|a| ("email_to", a)));
    }
    out.truncate(SNS_MAX_MESSAGE_ATTRIBUTES);
    out
}

#[async_trait]
impl AlertPublisher for SnsTopic {
    async fn publish(&self, alert: &Alert, to: Option<&Delivery>) -> Result<String, PublishError> {
        let document = message_document(alert);
        let attributes = attributes(alert, to);
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
