//! HTTP to an upstream (reqwest, rustls): one attempt per call. Retries, backoff, rate
//! limiting and circuit breaking wrap the [`Upstream`] port, not the HTTP client.
//!
//! The source's secret is added here and only here, as its [`Auth`] says: a header,
//! `Authorization: Bearer`, or a query parameter. The URL the answer carries (archived,
//! logged, put in errors) is the one built before the secret was added, and reqwest's own
//! errors are stripped of their URL, so a secret in a query never leaves this module.

use crate::adapters::ssm::Secret;
use crate::fetch::{TransportError, Upstream};
use async_trait::async_trait;
use chrono::Utc;
use pricewire_pipeline::sources::{Auth, RequestSpec, Response};
use std::time::Duration;

pub struct HttpUpstream {
    client: reqwest::Client,
    base_url: String,
    auth: Auth,
    secret: Option<Secret>,
}

/// Connecting may take at most this long (or the request timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl HttpUpstream {
    /// `secret` is required when `auth` needs one.
    pub fn new(
        base_url: &str,
        auth: Auth,
        secret: Option<Secret>,
        timeout: Duration,
    ) -> Result<HttpUpstream, String> {
        if auth.needs_secret() && secret.is_none() {
            return Err(format!(
                "{base_url}: auth style {} needs a secret, and none was given",
                auth.style()
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            .user_agent(concat!("pricewire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpUpstream {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
            secret,
        })
    }
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError> {
        let url = format!("{}{}", self.base_url, spec.path);
        let other = |detail: String| TransportError::Other {
            url: url.clone(),
            detail,
        };
        // The URL as shown: the query without the secret.
        let shown = reqwest::Url::parse_with_params(&url, &spec.query)
            .map_err(|e| other(e.to_string()))?
            .to_string();
        let mut request = self
            .client
            .get(&url)
            .query(&spec.query)
            .header(reqwest::header::ACCEPT, "application/json");
        let secret = self.secret.as_ref().map(Secret::expose).unwrap_or_default();
        request = match &self.auth {
            Auth::None => request,
            Auth::Header { name } => {
                let mut value = reqwest::header::HeaderValue::from_str(secret)
                    .map_err(|_| other("the secret is not a valid header value".into()))?;
                value.set_sensitive(true);
                request.header(name.as_str(), value)
            }
            Auth::Bearer => {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {secret}"))
                    .map_err(|_| other("the secret is not a valid header value".into()))?;
                value.set_sensitive(true);
                request.header(reqwest::header::AUTHORIZATION, value)
            }
            Auth::Query { name } => request.query(&[(name.as_str(), secret)]),
        };
        let request = request
            .build()
            .map_err(|e| other(e.without_url().to_string()))?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| classify(&shown, e))?;
        let fetched_at = Utc::now();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| classify(&shown, e))?
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
            url: shown,
            fetched_at,
        })
    }
}

/// A reqwest error as a transport error, named by the shown URL; reqwest's own text goes
/// without its URL (which may hold a secret).
fn classify(url: &str, e: reqwest::Error) -> TransportError {
    let url = url.to_string();
    if e.is_timeout() {
        TransportError::Timeout { url }
    } else if e.is_connect() {
        TransportError::Connect {
            url,
            detail: e.without_url().to_string(),
        }
    } else {
        TransportError::Other {
            url,
            detail: e.without_url().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A listener that records the request line and headers it receives and answers 200.
    async fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).to_string());
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-requests-remaining: 7\r\nconnection: close\r\n\r\n[]")
                    .await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn the_secret_goes_where_auth_says_and_never_into_the_shown_url() {
        let spec = RequestSpec::new("/v4/sports/nba/odds", vec![("regions".into(), "us".into())]);
        for (auth, expect) in [
            (
                Auth::Header {
                    name: "X-Access-Token".into(),
                },
                "x-access-token: s3cret",
            ),
            (Auth::Bearer, "authorization: Bearer s3cret"),
            (
                Auth::Query {
                    name: "apiKey".into(),
                },
                "apiKey=s3cret",
            ),
        ] {
            let (base, seen) = recorder().await;
            let up = HttpUpstream::new(
                &base,
                auth.clone(),
                Some(Secret::new("s3cret".into())),
                Duration::from_secs(5),
            )
            .unwrap();
            let r = up.send(&spec).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-requests-remaining"), Some("7"));
            assert!(!r.url.contains("s3cret"), "{auth:?}: {}", r.url);
            assert!(
                r.url.ends_with("/v4/sports/nba/odds?regions=us"),
                "{}",
                r.url
            );
            let request = seen.lock().unwrap().join("\n").to_ascii_lowercase();
            assert!(
                request.contains(&expect.to_ascii_lowercase()),
                "{auth:?}: {request}"
            );
        }
        assert!(HttpUpstream::new("http://x", Auth::Bearer, None, Duration::from_secs(1)).is_err());
    }

    #[tokio::test]
    async fn transport_errors_carry_the_shown_url_only() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let up = HttpUpstream::new(
            &base,
            Auth::Query {
                name: "apiKey".into(),
            },
            Some(Secret::new("s3cret".into())),
            Duration::from_secs(2),
        )
        .unwrap();
        let err = up
            .send(&RequestSpec::new("/x", vec![]))
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains(&base), "{err}");
    }
}
