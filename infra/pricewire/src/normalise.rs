//! `pricewire normalise`: what would the collector make of this response? The same
//! source modules and the same judgement (`collector::fetch::judge`) the walk uses, on an
//! answer from a file or from the raw archive, printed as one JSON document:
//!
//! ```json
//! {"source": "odds", "module": "odds", "status": 200,
//!  "verdict": {"action": "use", "error": null, "hold": null},
//!  "records": [...], "quarantined": [{"reason": "...", ...}], "dropped_values": [...],
//!  "next": {"at": "token", "token": "..."}}
//! ```
//!
//! `action` is `use` (the records go on the stream), `retry` (the walk asks again: a 5xx,
//! a rate limit, a body that is not JSON) or `fail` (never retried: a bad key, an unknown
//! market, an error envelope; or a hold — a spent quota, a ban — which stops the run).

use collector::fetch::{judge, Judged};
use pricewire_pipeline::job::Job;
use pricewire_pipeline::sources::settings::Sources;
use pricewire_pipeline::sources::{self, HoldScope, Page, Plan, Response, Step, Walk};
use serde_json::{json, Value};

/// An answer to judge, and the job it answers (or the archived request it came from).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub fetched_at: chrono::DateTime<chrono::Utc>,
    /// The request's URL as archived, if known.
    pub url: Option<String>,
}

/// `name: value` → (lower-case name, value).
pub fn header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not 'name: value'"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{s:?} has no header name"));
    }
    Ok((name.to_ascii_lowercase(), value.trim().to_string()))
}

/// The job from `--job`: its JSON, or `@file`.
pub fn job_arg(arg: &str) -> Result<Job, String> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        None => arg.to_string(),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("--job: not JSON: {e}"))?;
    Job::from_value(&value).map_err(|e| e.to_string())
}

/// The page a page walk's request asked for.
fn page_of(plan: &dyn Plan, url: Option<&str>) -> u32 {
    url.and_then(sources::request_of_url)
        .and_then(|r| {
            r.query
                .iter()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
        })
        .unwrap_or_else(|| {
            match plan
                .request(&Step::Start)
                .query
                .iter()
                .find(|(k, _)| k == "page")
            {
                Some((_, v)) => v.parse().unwrap_or(1),
                None => 1,
            }
        })
}

/// What comes after this answer, as the walk would go on.
fn next(plan: &dyn Plan, page: &Page, url: Option<&str>) -> Option<Step> {
    match plan.walk() {
        Walk::Single => None,
        Walk::Chain { .. } => page.next.clone(),
        Walk::Pages { page_size, .. } => (page.size >= page_size as usize).then(|| Step::Page {
            page: page_of(plan, url) + 1,
        }),
    }
}

/// Whose answer it is: a job's, or the archived request's (its source and job name, the
/// request rebuilt from the answer's URL by the source's module, as `replay` does).
pub enum For<'a> {
    Job(&'a Job),
    Archived { source: &'a str, job: &'a str },
}

/// Judges `answer`. Returns the document and whether the answer is usable.
pub fn normalise(sources: &Sources, who: For<'_>, answer: Answer) -> Result<(Value, bool), String> {
    let (settings, plan) = match who {
        For::Job(job) => {
            let settings = sources.get(&job.source).map_err(|e| e.to_string())?;
            let plan = settings
                .module
                .plan(job, settings.context())
                .map_err(|e| e.to_string())?;
            (settings, plan)
        }
        For::Archived { source, job } => {
            let settings = sources.get(source).map_err(|e| e.to_string())?;
            let url = answer
                .url
                .as_deref()
                .ok_or("the archived answer has no url")?;
            let request =
                sources::request_of_url(url).ok_or_else(|| format!("url {url}: no path"))?;
            let plan = settings
                .module
                .plan_of_request(job, settings.context(), &request)
                .map_err(|e| e.to_string())?;
            (settings, plan)
        }
    };
    let source_name = settings.name.clone();
    let url = answer.url.clone().unwrap_or_else(|| {
        let r = plan.request(&Step::Start);
        let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}{}?{}", settings.base_url, r.path, q.join("&"))
    });
    let response = Response {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        url: url.clone(),
        fetched_at: answer.fetched_at,
    };
    let inspection = plan.inspect(&response);
    let mut out = json!({
        "source": source_name,
        "module": settings.module.module(),
        "status": response.status,
        "url": url,
        "records": [],
        "quarantined": [],
        "dropped_values": [],
        "next": null,
    });
    let hold = |h: &sources::Hold| {
        let wait = match (h.scope, settings.quota_hold) {
            (HoldScope::Source, Some(configured)) => configured,
            _ => h.wait,
        };
        json!({"scope": h.scope, "seconds": wait.as_secs(), "reason": h.reason})
    };
    let (action, error, held, usable) = match judge(plan.as_ref(), &response, inspection) {
        Judged::Use { page, hold_after } => {
            out["next"] =
                serde_json::to_value(next(plan.as_ref(), &page, Some(&url))).unwrap_or(Value::Null);
            out["records"] = serde_json::to_value(&page.normalised.records).unwrap_or_default();
            out["quarantined"] =
                serde_json::to_value(&page.normalised.quarantined).unwrap_or_default();
            out["dropped_values"] = json!(page.normalised.dropped_values);
            ("use", None, hold_after.as_ref().map(hold), true)
        }
        Judged::Retry { reason, .. } => ("retry", Some(reason), None, false),
        Judged::Hold(h) => (
            "fail",
            Some(format!("held: {}", h.reason)),
            Some(hold(&h)),
            false,
        ),
        Judged::Fail(reason) => ("fail", Some(reason), None, false),
        Judged::Unusable(e) => ("fail", Some(e.to_string()), None, false),
    };
    out["verdict"] = json!({"action": action, "error": error, "hold": held});
    Ok((out, usable))
}

/// An archived answer, read back: what it was (status, URL, fetch time, body), its source
/// (from the key) and its job's name (from the metadata).
pub async fn archived(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<(Answer, String, String), String> {
    use pricewire_pipeline::archive::{self, meta};
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetObject {key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
    let metadata = object.metadata().cloned().unwrap_or_default();
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| format!("{key}: {e}"))?
        .into_bytes();
    let body = archive::gunzip(&bytes).unwrap_or_else(|_| bytes.to_vec());
    let source = key
        .split("source=")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("{key} is not a raw/source=<source>/… key"))?
        .to_string();
    let answer = Answer {
        status: metadata
            .get(meta::STATUS)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{key}: no status metadata"))?,
        headers: vec![],
        body,
        fetched_at: metadata
            .get(meta::FETCHED_AT)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| format!("{key}: no fetched-at metadata"))?,
        url: metadata.get(meta::URL).cloned(),
    };
    let job = metadata
        .get(meta::JOB)
        .cloned()
        .unwrap_or_else(|| "archived".into());
    Ok((answer, source, job))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn answer(status: u16, headers: &[(&str, &str)], body: Value) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string().into_bytes(),
            fetched_at: Utc::now(),
            url: None,
        }
    }

    fn tp_job(extra: Value) -> Job {
        let mut params =
            json!({"origin": "LED", "destination": "KZN", "departure_at": "2026-12", "limit": "2"});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        Job::from_value(&json!({"job": "led-kzn", "source": "travelpayouts", "params": params}))
            .unwrap()
    }

    #[test]
    fn every_verdict_of_the_walk_is_reported() {
        let sources = Sources::default();
        let full = json!({"success": true, "data": [
            {"price": 4830, "departure_at": "2026-12-05"}, {"price": null, "departure_at": "2026-12-06"}]});
        let (doc, usable) = normalise(
            &sources,
            For::Job(&tp_job(json!({}))),
            answer(200, &[], full),
        )
        .unwrap();
        assert!(usable);
        assert_eq!(doc["verdict"]["action"], "use");
        assert_eq!(doc["records"].as_array().unwrap().len(), 1);
        assert_eq!(doc["quarantined"][0]["reason"], "price: null");
        assert_eq!(
            doc["next"],
            json!({"at": "page", "page": 2}),
            "a full page: the walk goes on"
        );
        let short =
            json!({"success": true, "data": [{"price": 4830, "departure_at": "2026-12-05"}]});
        let (doc, _) = normalise(
            &sources,
            For::Job(&tp_job(json!({}))),
            answer(200, &[], short),
        )
        .unwrap();
        assert_eq!(doc["next"], Value::Null, "a short page ends it");

        let cases = [
            (answer(502, &[], json!(null)), "retry"),
            (answer(429, &[("retry-after", "5")], json!(null)), "retry"),
            (
                Answer {
                    body: b"<html>".to_vec(),
                    ..answer(200, &[], json!(null))
                },
                "retry",
            ),
            (answer(401, &[], json!({"success": false})), "fail"),
            (
                answer(200, &[], json!({"success": false, "error": "Unauthorized"})),
                "fail",
            ),
        ];
        for (a, action) in cases {
            let status = a.status;
            let (doc, usable) = normalise(&sources, For::Job(&tp_job(json!({}))), a).unwrap();
            assert_eq!(doc["verdict"]["action"], action, "{status}: {doc}");
            assert!(!usable && doc["verdict"]["error"].is_string(), "{doc}");
        }
    }

    #[test]
    fn odds_quota_and_cursors_and_archived_jobs() {
        let sources =
            Sources::parse(r#"{"dinger": {"module": "odds", "options": {"api": "dingerodds"}}}"#)
                .unwrap();
        let v4 = Job::from_value(&json!({"job": "nba", "source": "odds", "params": {"sport": "basketball_nba", "regions": "us"}})).unwrap();
        let spent = json!({"message": "Usage quota has been reached.", "error_code": "OUT_OF_USAGE_CREDITS"});
        let (doc, usable) = normalise(&sources, For::Job(&v4), answer(401, &[], spent)).unwrap();
        assert!(!usable);
        assert_eq!(doc["verdict"]["action"], "fail");
        assert_eq!(doc["verdict"]["hold"]["scope"], "source");
        assert!(
            doc["url"]
                .as_str()
                .unwrap()
                .starts_with("https://api.the-odds-api.com/v4/sports/basketball_nba/odds?"),
            "{doc}"
        );
        assert!(!doc["url"].as_str().unwrap().contains("apiKey"));
        let dinger = Job::from_value(
            &json!({"job": "mlb", "source": "dinger", "params": {"sport": "baseball"}}),
        )
        .unwrap();
        let page = json!({"data": [], "next_cursor": "abc"});
        let (doc, usable) = normalise(&sources, For::Job(&dinger), answer(200, &[], page)).unwrap();
        assert!(usable);
        assert_eq!(doc["next"], json!({"at": "token", "token": "abc"}));

        // An archived answer: the plan comes from its URL.
        let archived = Answer {
            url: Some("http://127.0.0.1:1/v4/sports/basketball_nba/odds?regions=us&markets=h2h&oddsFormat=decimal&dateFormat=iso".into()),
            ..answer(200, &[], json!([{"id": "e1", "commence_time": "2026-12-02T00:30:00Z",
                "bookmakers": [{"key": "fanduel", "markets": [{"key": "h2h", "outcomes": [{"name": "A", "price": 2.5}]}]}]}]))
        };
        let (doc, usable) = normalise(
            &sources,
            For::Archived {
                source: "odds",
                job: "nba",
            },
            archived,
        )
        .unwrap();
        assert!(usable, "{doc}");
        assert_eq!(doc["records"][0]["key"], "basketball_nba/e1/fanduel/h2h/A");
        assert_eq!(doc["records"][0]["job"], "nba");
        let page3 = Answer {
            url: Some(
                "http://x/aviasales/v3/prices_for_dates?origin=LED&destination=KZN&limit=1&page=3"
                    .into(),
            ),
            ..answer(
                200,
                &[],
                json!({"success": true, "data": [{"price": 1, "departure_at": "2026-12-05"}]}),
            )
        };
        let (doc, _) = normalise(
            &Sources::default(),
            For::Archived {
                source: "travelpayouts",
                job: "led-kzn",
            },
            page3,
        )
        .unwrap();
        assert_eq!(doc["next"], json!({"at": "page", "page": 4}));
    }

    /// What the simulator served for the exchanges and the declared shop, normalised
    /// from its archived URL as `pricewire normalise --archive-key` would: exactly the
    /// records the simulator's model says a correct collector makes.
    #[test]
    fn every_market_and_generic_answer_normalises_to_what_the_simulator_expects() {
        use crate::simulator::{market, shop, SimConfig};
        let sources = Sources::parse(
            &json!({"shop": {"module": "generic", "base_url": "https://shop.example", "options": {
                "path": "/v1/offers", "records": "/data/items", "key": "store,/item/sku",
                "price": "/item/price", "time": "updated_at", "currency": "currency",
                "name": "/item/title", "pagination": "page", "page_size": "8", "query.region": "eu"}}})
            .to_string(),
        )
        .unwrap();
        let config = SimConfig {
            malformed_rate: 0.1,
            null_rate: 0.2,
            ..SimConfig::default()
        };
        let now = Utc::now().timestamp_millis();
        let q = |pairs: &[(&str, String)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let cases = [
            (
                "binance",
                "/fapi/v1/klines",
                q(&[
                    ("symbol", "BTCUSDT".into()),
                    ("interval", "1m".into()),
                    ("startTime", (now - 90 * 60_000).to_string()),
                    ("limit", "499".into()),
                ]),
            ),
            (
                "binance",
                "/fapi/v1/fundingRate",
                q(&[
                    ("symbol", "ETHUSDT".into()),
                    ("startTime", (now - 5 * 86_400_000).to_string()),
                    ("limit", "1000".into()),
                ]),
            ),
            (
                "binance",
                "/futures/data/openInterestHist",
                q(&[
                    ("symbol", "SOLUSDT".into()),
                    ("period", "5m".into()),
                    ("startTime", (now - 3_600_000).to_string()),
                    ("endTime", now.to_string()),
                    ("limit", "500".into()),
                ]),
            ),
            (
                "bybit",
                "/v5/market/kline",
                q(&[
                    ("category", "linear".into()),
                    ("symbol", "XRPUSDT".into()),
                    ("interval", "60".into()),
                    ("start", (now - 20 * 3_600_000).to_string()),
                    ("end", now.to_string()),
                    ("limit", "1000".into()),
                ]),
            ),
            (
                "bybit",
                "/v5/market/open-interest",
                q(&[
                    ("category", "linear".into()),
                    ("symbol", "ETHUSDT".into()),
                    ("intervalTime", "5min".into()),
                    ("startTime", (now - 3_600_000).to_string()),
                    ("endTime", (now - 60_000).to_string()),
                    ("limit", "200".into()),
                ]),
            ),
            (
                "bybit",
                "/v5/market/funding/history",
                q(&[
                    ("category", "linear".into()),
                    ("symbol", "BTCUSDT".into()),
                    ("startTime", (now - 5 * 86_400_000).to_string()),
                    ("endTime", (now - 60_000).to_string()),
                    ("limit", "200".into()),
                ]),
            ),
            (
                "shop",
                "/v1/offers",
                q(&[
                    ("region", "eu".into()),
                    ("category", "tea".into()),
                    ("page", "2".into()),
                    ("per_page", "8".into()),
                ]),
            ),
        ];
        for (i, (source, path, query)) in cases.into_iter().enumerate() {
            let mut rng = fastrand::Rng::with_seed(i as u64);
            let served = match source {
                "binance" => market::answer(
                    market::Exchange::Binance,
                    &config,
                    path,
                    &query,
                    now,
                    &mut rng,
                ),
                "bybit" => market::answer(
                    market::Exchange::Bybit,
                    &config,
                    path,
                    &query,
                    now,
                    &mut rng,
                ),
                _ => shop::answer(&config, &query, 3, &mut rng),
            };
            let url = format!(
                "http://127.0.0.1:1{path}?{}",
                query
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            );
            let (doc, usable) = normalise(
                &sources,
                For::Archived { source, job: "sim" },
                Answer {
                    url: Some(url.clone()),
                    fetched_at: chrono::DateTime::from_timestamp_millis(now + 50).unwrap(),
                    ..answer(200, &[], serde_json::from_str(&served.body).unwrap())
                },
            )
            .unwrap();
            assert!(usable, "{url}: {doc}");
            let mut got: Vec<String> = doc["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            let mut want: Vec<String> = served
                .expected
                .iter()
                .map(|x| x.envelope(source).id)
                .collect();
            got.sort();
            want.sort();
            assert!(!want.is_empty(), "{url}: the model expects records");
            assert_eq!(got, want, "{url}: {doc}");
            assert_eq!(
                doc["quarantined"].as_array().unwrap().len(),
                served.malformed.len(),
                "{url}: {doc}"
            );
        }
    }
}
