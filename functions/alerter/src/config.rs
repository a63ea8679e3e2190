//! The alerter's configuration, from its environment (set by Terraform). A bad value — a
//! rule that does not compile, say — stops the function at start, naming the variable and
//! the rule.

use crate::rules::{RuleError, RuleSet};
use crate::subscribers::Subscribers;
use pricewire_pipeline::config::{ConfigError, Vars, STATE_TABLE, WRITE_MAX_ATTEMPTS};
use std::time::Duration;

pub const TOPIC_ARN: &str = "PRICEWIRE_TOPIC_ARN";
pub const ALERT_RULES: &str = "PRICEWIRE_ALERT_RULES";
pub const SUBSCRIBERS: &str = "PRICEWIRE_SUBSCRIBERS";
pub const DEDUP_WINDOW_SECONDS: &str = "PRICEWIRE_DEDUP_WINDOW_SECONDS";
pub const ALERT_MAX_AGE_SECONDS: &str = "PRICEWIRE_ALERT_MAX_AGE_SECONDS";

#[derive(Debug)]
pub struct AlerterConfig {
    pub topic_arn: String,
    pub state_table: String,
    pub rules: RuleSet,
    pub subscribers: Subscribers,
    pub dedup_window: Duration,
    /// Records fetched longer ago than this raise no alert (a replay of old data must not
    /// page anyone); at most the de-duplication window, so nothing can alert twice.
    pub max_age: Duration,
    pub write_max_attempts: u32,
}

impl AlerterConfig {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        let rules_json = v.optional(ALERT_RULES).unwrap_or_else(|| "[]".into());
        let windows = pricewire_pipeline::config::stat_windows(v)?;
        let rules =
            RuleSet::from_json_with(&rules_json, &windows).map_err(|e: RuleError| ConfigError {
                var: ALERT_RULES.into(),
                problem: e.to_string(),
            })?;
        let subscribers = Subscribers::from_json(
            &v.optional(SUBSCRIBERS).unwrap_or_else(|| "[]".into()),
            &rules,
        )
        .map_err(|e| ConfigError {
            var: SUBSCRIBERS.into(),
            problem: e.to_string(),
        })?;
        let dedup_window: u64 = v.parsed(
            DEDUP_WINDOW_SECONDS,
            86_400u64,
            |n| (60..=31_536_000).contains(n),
            "seconds from 60 to 31536000",
        )?;
        let max_age: u64 = v.parsed(
            ALERT_MAX_AGE_SECONDS,
            dedup_window,
            |n| *n >= 60,
            "at least 60 seconds",
        )?;
        if max_age > dedup_window {
            return Err(ConfigError {
                var: ALERT_MAX_AGE_SECONDS.into(),
                problem: format!(
                    "{max_age} s is longer than {DEDUP_WINDOW_SECONDS} ({dedup_window} s): an old record could alert twice"
                ),
            });
        }
        Ok(AlerterConfig {
            topic_arn: v.required(TOPIC_ARN)?,
            state_table: v.required(STATE_TABLE)?,
            rules,
            subscribers,
            dedup_window: Duration::from_secs(dedup_window),
            max_age: Duration::from_secs(max_age),
            write_max_attempts: v.parsed(
                WRITE_MAX_ATTEMPTS,
                5u32,
                |n| (1..=20).contains(n),
                "a number from 1 to 20",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricewire_pipeline::config::vars_from as vars;

    #[test]
    fn alerter_config_fails_on_a_bad_rule_naming_it() {
        let err = AlerterConfig::from_vars(&vars(&[(TOPIC_ARN, "t"), (STATE_TABLE, "s"),
            (ALERT_RULES, r#"[{"name":"broken","source":"travelpayouts","kind":"flight_price","when":"price <"}]"#)])).unwrap_err();
        assert_eq!(err.var, ALERT_RULES);
        assert!(err.problem.contains("alert rule \"broken\""), "{err}");
    }

    #[test]
    fn a_subscriber_naming_an_unknown_rule_fails_at_start() {
        let err = AlerterConfig::from_vars(&vars(&[
            (TOPIC_ARN, "t"),
            (STATE_TABLE, "s"),
            (
                SUBSCRIBERS,
                r#"[{"name":"ann","sms":true,"rules":["cheap"]}]"#,
            ),
        ]))
        .unwrap_err();
        assert_eq!(err.var, SUBSCRIBERS);
        assert!(err.problem.contains("\"ann\": rules: \"cheap\""), "{err}");
    }

    #[test]
    fn alert_max_age_defaults_to_the_window_and_may_not_exceed_it() {
        let base = [
            (TOPIC_ARN, "t"),
            (STATE_TABLE, "s"),
            (DEDUP_WINDOW_SECONDS, "3600"),
        ];
        let c = AlerterConfig::from_vars(&vars(&base)).unwrap();
        assert_eq!(c.max_age, Duration::from_secs(3600));
        let mut longer = base.to_vec();
        longer.push((ALERT_MAX_AGE_SECONDS, "7200"));
        let err = AlerterConfig::from_vars(&vars(&longer)).unwrap_err();
        assert_eq!(err.var, ALERT_MAX_AGE_SECONDS, "{err}");
        let mut shorter = base.to_vec();
        shorter.push((ALERT_MAX_AGE_SECONDS, "900"));
        assert_eq!(
            AlerterConfig::from_vars(&vars(&shorter)).unwrap().max_age,
            Duration::from_secs(900)
        );
    }
}
