//! HTTP to the upstreams (reqwest, rustls): one attempt per call. Retries, backoff and
//! (later) rate limiting and circuit breaking wrap this trait, not the HTTP client.

use super::ssm::Secret;
use crate::ratelimit::QuotaHeaders;
use crate::sources::RequestSpec;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The header Travelpayouts reads the token from (kept out of URLs, logs and archives).
pub const TOKEN_HEADER: &str = "X-Access-Token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The URL requested, with its query string and without the token.
    pub url: String,
    /// `Retry-After`, as seconds or an HTTP-date, turned into a wait from now.
    pub retry_after: Option<Duration>,
    /// `X-RateLimit-Limit` / `-Remaining` / `-Reset`, when the upstream sends any.
    pub quota: Option<QuotaHeaders>,
    pub fetched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{url}: timed out")]
    Timeout { url: String },
    #[error("{url}: connection failed: {detail}")]
    Connect { url: String, detail: String },
    #[error("{url}: {detail}")]
    Other { url: String, detail: String },
}

#[async_trait]
pub trait Upstream: Send + Sync {
    async fn send(&self, spec: &RequestSpec) -> Result<HttpResponse, TransportError>;
}

pub struct HttpUpstream {
    client: reqwest::Client,
    base_url: String,
    token: Secret,
}

impl HttpUpstream {
    pub fn new(base_url: &str, token: Secret, timeout: Duration) -> Result<HttpUpstream, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("pricewire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpUpstream {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
        })
    }
}

/// Waits an upstream asks for are capped here (a day), so no header can overflow a clock.
const MAX_HINT_SECONDS: u64 = 86_400;

/// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(MAX_HINT_SECONDS)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some(
        (at - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(MAX_HINT_SECONDS)),
    )
}

/// Seconds beyond which `X-RateLimit-Reset` is an epoch timestamp, not a wait.
const RESET_EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// The `X-RateLimit-*` family (`Limit`, `Remaining`, `Reset` in seconds or epoch seconds).
pub fn parse_quota(
    header: impl Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Option<QuotaHeaders> {
    let num = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let quota = QuotaHeaders {
        limit: num("x-ratelimit-limit").and_then(|v| u32::try_from(v).ok()),
        remaining: num("x-ratelimit-remaining").and_then(|v| u32::try_from(v).ok()),
        reset: num("x-ratelimit-reset").map(|v| {
            let secs = if v >= RESET_EPOCH_THRESHOLD {
                v.saturating_sub(now.timestamp().max(0) as u64)
            } else {
                v
            };
            Duration::from_secs(secs.min(MAX_HINT_SECONDS))
        }),
    };
    (quota != QuotaHeaders::default()).then_some(quota)
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn send(&self, spec: &RequestSpec) -> Result<HttpResponse, TransportError> {
        let url = format!("{}{}", self.base_url, spec.path);
        let request = self
            .client
            .get(&url)
            .query(&spec.query)
            .header(TOKEN_HEADER, self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .build()
            .map_err(|e| TransportError::Other {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let shown = request.url().to_string();
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| classify(&shown, e))?;
        let fetched_at = Utc::now();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, fetched_at));
        let headers = response.headers();
        let quota = parse_quota(
            |name| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            },
            fetched_at,
        );
        let body = response
            .bytes()
            .await
            .map_err(|e| classify(&shown, e))?
            .to_vec();
        Ok(HttpResponse {
            status,
            body,
            url: shown,
            retry_after,
            quota,
            fetched_at,
        })
    }
}

fn classify(url: &str, e: reqwest::Error) -> TransportError {
    let url = url.to_string();
    if e.is_timeout() {
        TransportError::Timeout { url }
    } else if e.is_connect() {
        TransportError::Connect {
            url,
            detail: e.to_string(),
        }
    } else {
        TransportError::Other {
            url,
            detail: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_in_seconds_and_http_date() {
        let now = Utc.with_ymd_and_hms(2026, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn quota_headers_as_wait_or_epoch() {
        let now = Utc.with_ymd_and_hms(2026, 10, 21, 7, 27, 0).unwrap();
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(parse_quota(headers(&[]), now), None);
        assert_eq!(
            parse_quota(
                headers(&[
                    ("x-ratelimit-limit", "60"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "12")
                ]),
                now
            ),
            Some(QuotaHeaders {
                limit: Some(60),
                remaining: Some(0),
                reset: Some(Duration::from_secs(12))
            })
        );
        let epoch = (now.timestamp() + 30).to_string();
        let reset = parse_quota(
            move |name: &str| (name == "x-ratelimit-reset").then(|| epoch.clone()),
            now,
        )
        .unwrap()
        .reset;
        assert_eq!(reset, Some(Duration::from_secs(30)));
    }
}
