//! Who gets an alert. Subscribers are declared in Terraform (`subscribers`) with what they
//! want — rules, sources, subjects (a route `LED-KZN`, a symbol `BTCUSDT`, a sport key, a
//! generic record's key) — their time zone and an SMS daily cap. Terraform turns each
//! endpoint into an SNS subscription whose filter policy asks for the subscriber's name in
//! `sms_to` / `email_to` and for what they want; the alerter (from `PRICEWIRE_SUBSCRIBERS`:
//! names and wishes, no phone numbers or addresses) decides per alert who is in quiet hours
//! and whose SMS cap is spent, and names the rest in those attributes. Pure.

use crate::realert::QuietHours;
use crate::rules::RuleSet;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::HashSet;

/// The SMS daily cap when a subscriber sets none.
pub const DEFAULT_SMS_DAILY_CAP: u32 = 20;
/// The highest cap a subscriber may set (a cost guard, not a throughput limit).
pub const MAX_SMS_DAILY_CAP: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriberSpec {
    name: String,
    #[serde(default)]
    sms: bool,
    #[serde(default)]
    email: bool,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    sms_daily_cap: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub name: String,
    pub sms: bool,
    pub email: bool,
    /// Empty: every rule (likewise sources and subjects).
    pub rules: Vec<String>,
    pub sources: Vec<String>,
    pub subjects: Vec<String>,
    pub time_zone: Tz,
    pub sms_daily_cap: u32,
}

impl Subscriber {
    /// Whether the subscriber asked for alerts of this rule, source and subject.
    pub fn wants(&self, rule: &str, source: &str, subject: &str) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        any(&self.rules, rule) && any(&self.sources, source) && any(&self.subjects, subject)
    }

    /// The subscriber's calendar day at `now` (the SMS cap's day).
    pub fn local_day(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.time_zone).date_naive()
    }

    pub fn is_quiet(&self, quiet: Option<&QuietHours>, now: DateTime<Utc>) -> bool {
        quiet.is_some_and(|q| q.contains(now.with_timezone(&self.time_zone).time()))
    }
}

/// Who an alert goes to, before the SMS caps are applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recipients<'a> {
    pub sms: Vec<&'a Subscriber>,
    pub email: Vec<&'a Subscriber>,
    /// Subscribers who want it but are in the rule's quiet hours.
    pub quiet: Vec<&'a str>,
}

impl Recipients<'_> {
    pub fn is_empty(&self) -> bool {
        self.sms.is_empty() && self.email.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscriber {subscriber:?}: {problem}")]
pub struct SubscriberError {
    pub subscriber: String,
    pub problem: String,
}

/// The declared subscribers. Empty: no one is declared, and every alert goes to the whole
/// topic (subscriptions without a filter policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscribers {
    pub list: Vec<Subscriber>,
}

impl Subscribers {
    /// Parses `PRICEWIRE_SUBSCRIBERS`; every rule a subscriber names must exist.
    pub fn from_json(text: &str, rules: &RuleSet) -> Result<Subscribers, SubscriberError> {
        let specs: Vec<SubscriberSpec> =
            serde_json::from_str(text).map_err(|e| SubscriberError {
                subscriber: String::new(),
                problem: format!("not a JSON list of subscribers: {e}"),
            })?;
        let known: HashSet<&str> = rules.rules.iter().map(|r| r.spec.name.as_str()).collect();
        let mut names = HashSet::new();
        let mut list = Vec::with_capacity(specs.len());
        for s in specs {
            let err = |problem: String| SubscriberError {
                subscriber: s.name.clone(),
                problem,
            };
            if s.name.is_empty() || !names.insert(s.name.clone()) {
                return Err(err("name is empty or declared twice".into()));
            }
            if !s.sms && !s.email {
                return Err(err("has neither an sms nor an email endpoint".into()));
            }
            if let Some(r) = s.rules.iter().find(|r| !known.contains(r.as_str())) {
                return Err(err(format!("rules: {r:?} is not an alert rule")));
            }
            let time_zone = match &s.time_zone {
                None => Tz::UTC,
                Some(tz) => tz.parse::<Tz>().map_err(|_| {
                    err(format!(
                        "time_zone {tz:?} is not an IANA time zone (e.g. Europe/Moscow)"
                    ))
                })?,
            };
            let cap = s.sms_daily_cap.unwrap_or(DEFAULT_SMS_DAILY_CAP);
            if !(1..=MAX_SMS_DAILY_CAP).contains(&cap) {
                return Err(err(format!(
                    "sms_daily_cap {cap} is not from 1 to {MAX_SMS_DAILY_CAP}"
                )));
            }
            list.push(Subscriber {
                name: s.name.clone(),
                sms: s.sms,
                email: s.email,
                rules: s.rules,
                sources: s.sources,
                subjects: s.subjects,
                time_zone,
                sms_daily_cap: cap,
            });
        }
        Ok(Subscribers { list })
    }

    pub fn is_declared(&self) -> bool {
        !self.list.is_empty()
    }

    /// Who should get an alert of `rule` about `source`/`subject` now.
    pub fn recipients(
        &self,
        rule: &str,
        source: &str,
        subject: &str,
        quiet: Option<&QuietHours>,
        now: DateTime<Utc>,
    ) -> Recipients<'_> {
        let mut out = Recipients::default();
        for s in self.list.iter().filter(|s| s.wants(rule, source, subject)) {
            if s.is_quiet(quiet, now) {
                out.quiet.push(&s.name);
                continue;
            }
            if s.sms {
                out.sms.push(s);
            }
            if s.email {
                out.email.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rules() -> RuleSet {
        RuleSet::from_json(
            r#"[{"name":"cheap","source":"travelpayouts","kind":"flight_price","when":"price < 5000"},
                {"name":"flip","source":"binance","kind":"funding_rate","type":"funding_flip"}]"#,
        )
        .unwrap()
    }

    const TWO: &str = r#"[
        {"name":"ann","sms":true,"rules":["cheap"],"subjects":["LED-KZN"],"time_zone":"Europe/Moscow","sms_daily_cap":2},
        {"name":"bob","email":true}
    ]"#;

    #[test]
    fn each_subscriber_gets_what_they_asked_for() {
        let subs = Subscribers::from_json(TWO, &rules()).unwrap();
        let noon = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
        let r = subs.recipients("cheap", "travelpayouts", "LED-KZN", None, noon);
        let names = |v: &[&Subscriber]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            (names(&r.sms), names(&r.email)),
            (vec!["ann".into()], vec!["bob".into()])
        );
        let other_route = subs.recipients("cheap", "travelpayouts", "LED-AER", None, noon);
        assert!(other_route.sms.is_empty() && other_route.email.len() == 1);
        let flip = subs.recipients("flip", "binance", "BTCUSDT", None, noon);
        assert!(flip.sms.is_empty() && flip.email.len() == 1);
    }

    #[test]
    fn quiet_hours_are_the_subscribers_own() {
        let subs = Subscribers::from_json(TWO, &rules()).unwrap();
        let quiet = QuietHours::parse("22:00-07:00").unwrap();
        // 20:00 UTC is 23:00 in Moscow: ann sleeps, bob (UTC) does not.
        let evening = Utc.with_ymd_and_hms(2026, 12, 2, 20, 0, 0).unwrap();
        let r = subs.recipients("cheap", "travelpayouts", "LED-KZN", Some(&quiet), evening);
        assert_eq!(r.quiet, vec!["ann"]);
        assert_eq!(r.email.len(), 1);
        // 21:30 UTC on 2 Dec is 3 Dec in Moscow: the cap's day is the subscriber's.
        let late = Utc.with_ymd_and_hms(2026, 12, 2, 21, 30, 0).unwrap();
        assert_eq!(
            subs.list[0].local_day(late),
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
        );
    }

    #[test]
    fn a_bad_subscriber_is_named_at_start() {
        let bad = |json: &str| {
            Subscribers::from_json(json, &rules())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(r#"[{"name":"c","sms":true,"rules":["nope"]}]"#).contains("\"c\": rules: \"nope\"")
        );
        assert!(bad(r#"[{"name":"c","sms":true,"time_zone":"Mars/Base"}]"#).contains("time_zone"));
        assert!(bad(r#"[{"name":"c"}]"#).contains("neither"));
        assert!(bad(r#"[{"name":"c","sms":true,"sms_daily_cap":0}]"#).contains("sms_daily_cap"));
        assert!(bad(r#"[{"name":"c","sms":true,"phone":"+1"}]"#).contains("unknown field"));
    }
}
