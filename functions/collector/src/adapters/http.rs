//! HTTP to an upstream (reqwest, rustls): one attempt per call. Retries, backoff, rate
//! limiting and circuit breaking wrap the [`Upstream`] port, not the HTTP client.
//!
//! What a hostile or broken upstream cannot do here:
//!
//! - **take the secret elsewhere**: the secret is added here and only here, as the
//!   source's [`Auth`] says (a header marked sensitive, `Authorization: Bearer`, or a query
//!   parameter). reqwest follows no redirect; this adapter follows at most
//!   [`MAX_REDIRECTS`], only to the same origin (scheme, host, port) over https (or to
//!   loopback, where the local twin's simulators listen), and attaches the secret itself
//!   again. A redirect anywhere else is refused, and the secret is not sent there.
//! - **show the secret**: the URL the answer carries (archived, logged, put in errors) is
//!   built without it, and reqwest's own errors are stripped of their URL.
//! - **exhaust memory**: a `Content-Length` over the source's body cap is refused before
//!   the body is read, and a body is read chunk by chunk only up to the cap; either is a
//!   [`TransportError::TooLarge`], which the breaker counts as a failure.
//! - **stall the run**: the timeout covers the whole request, its redirects and the body
//!   included, so a body dripped slowly or a chain of slow redirects ends as one timeout
//!   (the walk reserves one timeout per request before the deadline).

use crate::adapters::ssm::Secret;
use crate::fetch::{TransportError, Upstream};
use async_trait::async_trait;
use chrono::Utc;
use pricewire_pipeline::sources::{Auth, RequestSpec, Response};
use std::time::Duration;

/// Connecting may take at most this long (or the request timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Same-origin redirects followed per request.
pub const MAX_REDIRECTS: usize = 3;

pub struct HttpUpstream {
    client: reqwest::Client,
    base: reqwest::Url,
    auth: Auth,
    secret: Option<Secret>,
    max_body: usize,
    timeout: Duration,
}

/// Upstream text (a `Location`) is kept to this many characters in errors.
const LOCATION_MAX_CHARS: usize = 200;

/// Whether plain http may be used to reach `url`: only on loopback.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// https, or http to loopback.
fn secure_enough(url: &reqwest::Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url))
}

/// The process's HTTP client, shared by every upstream: one TLS configuration trusting the
/// compiled-in roots (`aws::root_certificates`: no certificate store read at start) and
/// one connection pool. Redirects are this adapter's.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let roots = pricewire_pipeline::aws::root_certificates()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok());
    reqwest::Client::builder()
        .tls_certs_only(roots)
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pricewire/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

impl HttpUpstream {
    /// `client` from [`client`]; `secret` is required when `auth` needs one. `max_body`:
    /// the largest body read; `timeout`: the whole request's, redirects and body included.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        auth: Auth,
        secret: Option<Secret>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<HttpUpstream, String> {
        if auth.needs_secret() && secret.is_none() {
            return Err(format!(
                "{base_url}: auth style {} needs a secret, and none was given",
                auth.style()
            ));
        }
        let base = reqwest::Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| format!("{base_url}: not a URL: {e}"))?;
        if !secure_enough(&base) {
            return Err(format!(
                "{base_url}: upstreams are reached over https (plain http only on loopback)"
            ));
        }
        Ok(HttpUpstream {
            client,
            base,
            auth,
            secret,
            max_body,
            timeout,
        })
    }

    /// The request to `url`, with the secret attached as the source's auth says.
    fn request(&self, url: &reqwest::Url, shown: &str) -> Result<reqwest::Request, TransportError> {
        let other = |detail: String| TransportError::Other {
            url: shown.to_string(),
            detail,
        };
        let mut url = url.clone();
        let secret = self.secret.as_ref().map(Secret::expose).unwrap_or_default();
        let mut request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.auth {
            Auth::None => {}
            Auth::Header { name } => {
                let mut value = reqwest::header::HeaderValue::from_str(secret)
                    .map_err(|_| other("the secret is not a valid header value".into()))?;
                value.set_sensitive(true);
                request = request.header(name.as_str(), value);
            }
            Auth::Bearer => {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {secret}"))
                    .map_err(|_| other("the secret is not a valid header value".into()))?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            Auth::Query { name } => {
                // Whatever the URL says of this parameter, the source's own secret goes.
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != name)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut()
                    .clear()
                    .extend_pairs(&kept)
                    .append_pair(name, secret);
                request = self
                    .client
                    .get(url)
                    .header(reqwest::header::ACCEPT, "application/json");
            }
        }
        request
            .build()
            .map_err(|e| other(e.without_url().to_string()))
    }

    /// `url` as shown: without the secret's query parameter.
    fn shown(&self, url: &reqwest::Url) -> String {
        match &self.auth {
            Auth::Query { name } => {
                let mut u = url.clone();
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != name)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if kept.is_empty() {
                    u.set_query(None);
                } else {
                    u.query_pairs_mut().clear().extend_pairs(&kept);
                }
                u.to_string()
            }
            _ => url.to_string(),
        }
    }

    /// Reads a body up to the cap.
    async fn body(
        &self,
        mut response: reqwest::Response,
        shown: &str,
    ) -> Result<Vec<u8>, TransportError> {
        let too_large = |detail: String| TransportError::TooLarge {
            url: shown.to_string(),
            detail,
        };
        if let Some(declared) = response.content_length() {
            if declared > self.max_body as u64 {
                return Err(too_large(format!(
                    "Content-Length {declared} is over the {}-byte body cap",
                    self.max_body
                )));
            }
        }
        let mut body = Vec::with_capacity(
            response
                .content_length()
                .map_or(0, |n| n as usize)
                .min(self.max_body),
        );
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(shown, e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large(format!(
                    "the body is over the {}-byte cap (stopped reading at {} bytes)",
                    self.max_body,
                    body.len() + chunk.len()
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError> {
        let joined = format!("{}{}", self.base.as_str().trim_end_matches('/'), spec.path);
        let url = reqwest::Url::parse_with_params(&joined, &spec.query).map_err(|e| {
            TransportError::Other {
                url: joined.clone(),
                detail: e.to_string(),
            }
        })?;
        // One timeout for the whole request: each hop's own (the client's) would let a
        // chain of slow redirects run past the deadline the walk reserved one timeout for.
        let shown = self.shown(&url);
        tokio::time::timeout(self.timeout, self.follow(url))
            .await
            .unwrap_or(Err(TransportError::Timeout { url: shown }))
    }
}

impl HttpUpstream {
    /// The request, and the same-origin redirects it meets, up to [`MAX_REDIRECTS`].
    async fn follow(&self, mut url: reqwest::Url) -> Result<Response, TransportError> {
        for hop in 0..=MAX_REDIRECTS {
            let shown = self.shown(&url);
            let request = self.request(&url, &shown)?;
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|e| classify(&shown, e))?;
            let fetched_at = Utc::now();
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                match location {
                    Some(to) if same_origin(&to, &self.base) && secure_enough(&to) => {
                        if hop == MAX_REDIRECTS {
                            return Err(TransportError::Refused {
                                url: shown,
                                detail: format!("more than {MAX_REDIRECTS} redirects"),
                            });
                        }
                        url = to;
                        continue;
                    }
                    Some(to) => {
                        return Err(TransportError::Refused {
                            url: shown,
                            detail: format!(
                                "HTTP {} redirect to {} not followed: only same-origin https redirects are (the secret is not sent elsewhere)",
                                status.as_u16(),
                                pricewire_pipeline::sources::cap_text(
                                    &self.shown(&to),
                                    LOCATION_MAX_CHARS
                                )
                            ),
                        })
                    }
                    None => {
                        return Err(TransportError::Refused {
                            url: shown,
                            detail: format!("HTTP {} without a usable Location", status.as_u16()),
                        })
                    }
                }
            }
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let body = self.body(response, &shown).await?;
            return Ok(Response {
                status: status.as_u16(),
                headers,
                body,
                url: shown,
                fetched_at,
            });
        }
        unreachable!("the loop returns on its last hop")
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

    const MIB: usize = 1 << 20;

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
                client(Duration::from_secs(5)).unwrap(),
                &base,
                auth.clone(),
                Some(Secret::new("s3cret".into())),
                Duration::from_secs(5),
                MIB,
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
        assert!(HttpUpstream::new(
            client(Duration::from_secs(1)).unwrap(),
            "http://x",
            Auth::Bearer,
            None,
            Duration::from_secs(1),
            MIB
        )
        .is_err());
        let plain = HttpUpstream::new(
            client(Duration::from_secs(1)).unwrap(),
            "http://api.example.com",
            Auth::None,
            None,
            Duration::from_secs(1),
            MIB,
        );
        assert!(
            plain.err().unwrap().contains("over https"),
            "plain http only on loopback"
        );
    }

    #[tokio::test]
    async fn transport_errors_carry_the_shown_url_only() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let up = HttpUpstream::new(
            client(Duration::from_secs(2)).unwrap(),
            &base,
            Auth::Query {
                name: "apiKey".into(),
            },
            Some(Secret::new("s3cret".into())),
            Duration::from_secs(2),
            MIB,
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
