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
        // An attribute's value must not be empty: a list nobody is on is left out, and
        // a filter policy asking for it then does not match.
        for (name, list) in [("sms_to", &to.sms_to), ("email_to", &to.email_to)] {
            if !list.is_empty() {
                out.extend(list_attribute(list).map(|a| (name, a)));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message;
    use pricewire_pipeline::fixtures::odds_quote;

    #[test]
    fn attributes_say_what_an_alert_is_about_and_whom_it_is_for() {
        let e = odds_quote("e1", "fanduel", "h2h", "2.1", None, chrono::Utc::now());
        let alert = message::alert("steam", &e);
        let names = |to: Option<&Delivery>| -> Vec<(&str, String)> {
            attributes(&alert, to)
                .into_iter()
                .map(|(k, v)| (k, v.string_value().unwrap_or_default().to_string()))
                .collect()
        };
        let all = names(None);
        assert_eq!(
            all,
            [
                ("source", "odds".to_string()),
                ("kind", "odds_quote".into()),
                ("rule", "steam".into()),
                ("subject", "basketball_nba".into()),
            ]
        );
        let to = Delivery {
            sms_to: vec![],
            email_to: vec!["ops".into(), "ann".into()],
        };
        let addressed = names(Some(&to));
        assert_eq!(addressed.len(), 5, "no empty sms_to: {addressed:?}");
        assert_eq!(addressed[4], ("email_to", r#"["ops","ann"]"#.to_string()));
    }
}
