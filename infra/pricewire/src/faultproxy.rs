//! The AWS fault proxy: stands between the functions and the emulator and makes AWS as
//! unreliable as it is documented to be, from one seeded random stream.
//!
//! - Kinesis `PutRecords`: each entry fails with `ProvisionedThroughputExceededException` at
//!   `put_records_failure_rate`. Only the entries that "succeed" are forwarded, so nothing
//!   reported failed is stored; the answer lists every entry in its original position.
//! - DynamoDB `BatchWriteItem`: each request item comes back in `UnprocessedItems` at
//!   `unprocessed_rate`; the rest are forwarded. When every item would be left over, the
//!   call fails with `ProvisionedThroughputExceededException`, as DynamoDB does.
//! - Any call: throttled as a whole (`throttle_rate`, not forwarded), a 500 (`error_rate`;
//!   half before forwarding, half *after* — applied but reported failed, the case that
//!   makes retries write twice — the latter only for calls that are safe to repeat), and an
//!   added latency.
//! - A kill switch: after a function's n-th forwarded `BatchWriteItem`, a hook kills that
//!   function's process in the middle of its batch.
//!
//! Each function gets its own listener (`listen(tag)`), so faults and counts are per function.
//! Written here rather than taken from a crate: the faults are AWS-protocol specific (entry
//! positions in a PutRecords answer, UnprocessedItems per table), which no generic proxy does.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wire::{self, WriteCall};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultPlan {
    pub seed: u64,
    /// Share of PutRecords entries answered ProvisionedThroughputExceededException.
    pub put_records_failure_rate: f64,
    /// Share of BatchWriteItem request items returned as UnprocessedItems.
    pub unprocessed_rate: f64,
    /// Share of calls throttled as a whole.
    pub throttle_rate: f64,
    /// Share of calls answered 500.
    pub error_rate: f64,
    /// Added latency per call, milliseconds.
    pub latency_ms: (u64, u64),
    /// Kill this function's process right after its n-th forwarded BatchWriteItem.
    pub kill: Option<KillAt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillAt {
    pub function: String,
    pub after_batch_writes: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            seed: 1,
            put_records_failure_rate: 0.0,
            unprocessed_rate: 0.0,
            throttle_rate: 0.0,
            error_rate: 0.0,
            latency_ms: (0, 0),
            kill: None,
        }
    }
}

/// What the proxy did, per function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultStats {
    pub calls: u64,
    pub forwarded: u64,
    pub throttled: u64,
    pub errors_before: u64,
    /// 500s returned after the call was applied.
    pub errors_after: u64,
    pub put_records_calls: u64,
    pub entries: u64,
    pub entries_failed: u64,
    pub batch_writes: u64,
    pub items: u64,
    pub items_unprocessed: u64,
    pub kills: u64,
    /// Calls per operation (`kinesis.PutRecords`, `s3.PUT`, …).
    pub operations: BTreeMap<String, u64>,
    /// Every write call as the function sent it (entries, write units, invocation).
    pub writes: Vec<WriteCall>,
}

type KillHook = Arc<dyn Fn(&str) + Send + Sync>;

pub struct FaultProxy {
    upstream: String,
    plan: FaultPlan,
    rng: Mutex<fastrand::Rng>,
    stats: Mutex<BTreeMap<String, FaultStats>>,
    client: reqwest::Client,
    kill_hook: Mutex<Option<KillHook>>,
    servers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What one call is, as far as faults go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// Signing name from the credential scope: kinesis, dynamodb, s3, sns, sqs, ssm, …
    pub service: String,
    /// `X-Amz-Target` operation (JSON protocols), the query `Action`, or the HTTP method (S3).
    pub operation: String,
    pub json: bool,
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn classify(method: &str, headers: &HeaderMap, body: &[u8]) -> Call {
    let service = header(headers, "authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    if let Some(target) = header(headers, "x-amz-target") {
        let operation = target.rsplit('.').next().unwrap_or(target).to_string();
        return Call {
            service,
            operation,
            json: true,
        };
    }
    let action = std::str::from_utf8(body).ok().and_then(|b| {
        b.split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .map(str::to_string)
    });
    Call {
        service,
        operation: action.unwrap_or_else(|| method.to_string()),
        json: false,
    }
}

impl Call {
    /// Whether a call that was applied may be reported failed: the client will repeat it,
    /// which is harmless only where the pipeline made repeats harmless (idempotent writes,
    /// de-duplicated downstream). SNS Publish and conditional claims are not (see README).
    fn safe_to_repeat(&self) -> bool {
        matches!(
            (self.service.as_str(), self.operation.as_str()),
            ("kinesis", "PutRecords") | ("dynamodb", "BatchWriteItem") | ("s3", "PUT")
        )
    }

    fn error(&self, status: StatusCode, code: &str, message: &str, content_type: &str) -> Response {
        let mut response = if self.json {
            let mut r = json!({"__type": code, "message": message})
                .to_string()
                .into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_str(content_type)
                    .unwrap_or(HeaderValue::from_static("application/x-amz-json-1.1")),
            );
            r
        } else if self.service == "s3" {
            let mut r = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
            )
            .into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/xml"));
            r
        } else {
            let mut r = format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>",
                if status.is_server_error() { "Receiver" } else { "Sender" }
            )
            .into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/xml"));
            r
        };
        // The JSON error type also travels in this header; some SDK parsers prefer it.
        if let Ok(v) = HeaderValue::from_str(code) {
            response.headers_mut().insert("x-amzn-errortype", v);
        }
        *response.status_mut() = status;
        response
    }

    fn throttled(&self, content_type: &str) -> Response {
        match self.service.as_str() {
            "s3" => self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
                content_type,
            ),
            "kinesis" => self.error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
                "Rate exceeded (fault proxy)",
                content_type,
            ),
            "sns" => self.error(
                StatusCode::BAD_REQUEST,
                "Throttling",
                "Rate exceeded (fault proxy)",
                content_type,
            ),
            _ => self.error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded (fault proxy)",
                content_type,
            ),
        }
    }

    fn internal(&self, content_type: &str) -> Response {
        let code = match self.service.as_str() {
            "kinesis" => "InternalFailure",
            "dynamodb" => "InternalServerError",
            _ => "InternalError",
        };
        self.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            "We encountered an internal error (fault proxy)",
            content_type,
        )
    }
}

/// Headers that belong to one hop, not to the request.
const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "expect",
    "keep-alive",
];

/// One incoming call: what is forwarded, and what shapes its faults.
struct Incoming {
    method: axum::http::Method,
    /// Path and query.
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    call: Call,
    content_type: String,
}

struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Upstream {
    fn into_response(self, rewritten: Option<Vec<u8>>) -> Response {
        let changed = rewritten.is_some();
        let mut r = Response::new(Body::from(rewritten.unwrap_or(self.body)));
        *r.status_mut() = self.status;
        for (k, v) in &self.headers {
            let name = k.as_str();
            if HOP_HEADERS.contains(&name) || (changed && name.contains("crc32")) {
                continue;
            }
            r.headers_mut().append(k.clone(), v.clone());
        }
        r
    }
}

impl FaultProxy {
    pub fn new(upstream: impl Into<String>, plan: FaultPlan) -> Arc<FaultProxy> {
        Arc::new(FaultProxy {
            upstream: upstream.into().trim_end_matches('/').to_string(),
            rng: Mutex::new(fastrand::Rng::with_seed(plan.seed)),
            plan,
            stats: Mutex::default(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            kill_hook: Mutex::default(),
            servers: Mutex::default(),
        })
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Called with the function's tag when the kill switch fires.
    pub fn on_kill(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        if let Ok(mut h) = self.kill_hook.lock() {
            *h = Some(Arc::new(hook));
        }
    }

    /// A listener for one function: its `AWS_ENDPOINT_URL` is `http://<addr>`.
    pub async fn listen(self: &Arc<Self>, tag: &str) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(handle)
            .with_state((self.clone(), tag.to_string()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if let Ok(mut s) = self.servers.lock() {
            s.push(server);
        }
        Ok(addr)
    }

    pub fn stats(&self) -> BTreeMap<String, FaultStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> FaultStats {
        let mut t = FaultStats::default();
        for s in self.stats().values() {
            t.calls += s.calls;
            t.forwarded += s.forwarded;
            t.throttled += s.throttled;
            t.errors_before += s.errors_before;
            t.errors_after += s.errors_after;
            t.put_records_calls += s.put_records_calls;
            t.entries += s.entries;
            t.entries_failed += s.entries_failed;
            t.batch_writes += s.batch_writes;
            t.items += s.items;
            t.items_unprocessed += s.items_unprocessed;
            t.kills += s.kills;
            for (op, n) in &s.operations {
                *t.operations.entry(op.clone()).or_default() += n;
            }
            t.writes.extend(s.writes.iter().cloned());
        }
        t
    }

    pub fn shutdown(&self) {
        if let Ok(mut s) = self.servers.lock() {
            for server in s.drain(..) {
                server.abort();
            }
        }
    }

    fn count(&self, tag: &str, f: impl FnOnce(&mut FaultStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(stats.entry(tag.to_string()).or_default());
        }
    }

    fn draw(&self) -> f64 {
        self.rng.lock().map(|mut r| r.f64()).unwrap_or(1.0)
    }

    fn draws(&self, n: usize) -> Vec<f64> {
        self.rng
            .lock()
            .map(|mut r| (0..n).map(|_| r.f64()).collect())
            .unwrap_or_else(|_| vec![1.0; n])
    }

    /// Sends the call on to the emulator with `body` (the original or a rewritten one).
    async fn forward(&self, incoming: &Incoming, body: Vec<u8>) -> Result<Upstream, String> {
        let method = reqwest::Method::from_bytes(incoming.method.as_str().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut req = self
            .client
            .request(method, format!("{}{}", self.upstream, incoming.path));
        for (k, v) in &incoming.headers {
            if !HOP_HEADERS.contains(&k.as_str()) {
                req = req.header(k.as_str(), v.as_bytes());
            }
        }
        let response = req.body(body).send().await.map_err(|e| e.to_string())?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HeaderMap::new();
        for (k, v) in response.headers() {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_str().as_bytes()),
                HeaderValue::from_bytes(v.as_bytes()),
            ) {
                out.append(name, value);
            }
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok(Upstream {
            status,
            headers: out,
            body,
        })
    }

    /// PutRecords with per-entry failures: only the surviving entries are forwarded.
    async fn put_records(&self, tag: &str, incoming: &Incoming) -> Result<Response, String> {
        let mut request: Value =
            serde_json::from_slice(&incoming.body).map_err(|e| e.to_string())?;
        let entries = request
            .get("Records")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let fail: Vec<bool> = self
            .draws(entries.len())
            .into_iter()
            .map(|d| d < self.plan.put_records_failure_rate)
            .collect();
        let kept: Vec<Value> = entries
            .iter()
            .zip(&fail)
            .filter(|(_, f)| !**f)
            .map(|(e, _)| e.clone())
            .collect();
        let stream = request
            .get("StreamName")
            .or_else(|| request.get("StreamARN"))
            .and_then(Value::as_str)
            .unwrap_or("stream")
            .to_string();
        let failure = json!({
            "ErrorCode": "ProvisionedThroughputExceededException",
            "ErrorMessage": format!("Rate exceeded for shard shardId-000000000000 in stream {stream} under account 123456789012 (fault proxy)."),
        });
        let mut results: Vec<Value> = vec![failure; entries.len()];
        let mut failed = fail.iter().filter(|f| **f).count();
        let mut upstream_headers = None;
        if !kept.is_empty() {
            request["Records"] = Value::Array(kept);
            let up = self
                .forward(incoming, serde_json::to_vec(&request).unwrap_or_default())
                .await?;
            if up.status != StatusCode::OK {
                return Ok(up.into_response(None));
            }
            let answer: Value = serde_json::from_slice(&up.body).map_err(|e| e.to_string())?;
            let mut stored = answer
                .get("Records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter();
            for (i, f) in fail.iter().enumerate() {
                if !*f {
                    let r = stored.next().unwrap_or_else(|| results[i].clone());
                    if r.get("ErrorCode").is_some() {
                        failed += 1;
                    }
                    results[i] = r;
                }
            }
            upstream_headers = Some(up);
        }
        self.count(tag, |s| {
            s.put_records_calls += 1;
            s.entries += entries.len() as u64;
            s.entries_failed += fail.iter().filter(|f| **f).count() as u64;
        });
        let body = json!({"FailedRecordCount": failed, "Records": results}).to_string();
        Ok(match upstream_headers {
            Some(up) => up.into_response(Some(body.into_bytes())),
            None => {
                let mut r = body.into_response();
                r.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("application/x-amz-json-1.1"),
                );
                r
            }
        })
    }

    /// BatchWriteItem with UnprocessedItems: a subset is forwarded, the rest handed back.
    async fn batch_write(&self, tag: &str, incoming: &Incoming) -> Result<Response, String> {
        let mut request: Value =
            serde_json::from_slice(&incoming.body).map_err(|e| e.to_string())?;
        let tables = request
            .get("RequestItems")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut kept = Map::new();
        let mut left = Map::new();
        let (mut total, mut unprocessed) = (0u64, 0u64);
        for (table, items) in &tables {
            let items = items.as_array().cloned().unwrap_or_default();
            let draws = self.draws(items.len());
            let (mut k, mut l) = (Vec::new(), Vec::new());
            for (item, d) in items.into_iter().zip(draws) {
                total += 1;
                if d < self.plan.unprocessed_rate {
                    unprocessed += 1;
                    l.push(item);
                } else {
                    k.push(item);
                }
            }
            if !k.is_empty() {
                kept.insert(table.clone(), Value::Array(k));
            }
            if !l.is_empty() {
                left.insert(table.clone(), Value::Array(l));
            }
        }
        self.count(tag, |s| {
            s.batch_writes += 1;
            s.items += total;
            s.items_unprocessed += unprocessed;
        });
        if kept.is_empty() {
            // DynamoDB: when no item can be processed the whole call is throttled.
            return Ok(incoming.call.error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded (fault proxy)",
                &incoming.content_type,
            ));
        }
        request["RequestItems"] = Value::Object(kept);
        let up = self
            .forward(incoming, serde_json::to_vec(&request).unwrap_or_default())
            .await?;
        self.after_batch_write(tag);
        if up.status != StatusCode::OK || left.is_empty() {
            return Ok(up.into_response(None));
        }
        let mut answer: Value = serde_json::from_slice(&up.body).map_err(|e| e.to_string())?;
        let merged = answer
            .as_object_mut()
            .map(|a| a.entry("UnprocessedItems").or_insert_with(|| json!({})));
        if let Some(Value::Object(merged)) = merged {
            for (table, items) in left {
                let slot = merged.entry(table).or_insert_with(|| json!([]));
                if let (Some(slot), Some(items)) = (slot.as_array_mut(), items.as_array()) {
                    slot.extend(items.iter().cloned());
                }
            }
        }
        Ok(up.into_response(Some(answer.to_string().into_bytes())))
    }

    /// The kill switch: counts forwarded BatchWriteItem calls of the function it watches.
    fn after_batch_write(&self, tag: &str) {
        let Some(kill) = &self.plan.kill else { return };
        if kill.function != tag {
            return;
        }
        let mut fire = false;
        self.count(tag, |s| {
            // `batch_writes` was counted before forwarding, so with calls in flight at once
            // the count may have passed n by the time this one is answered: the first call
            // answered at or after the n-th fires (once), not only the one numbered n.
            if s.batch_writes >= kill.after_batch_writes && s.kills == 0 {
                s.kills += 1;
                fire = true;
            }
        });
        if fire {
            let hook = self.kill_hook.lock().ok().and_then(|h| h.clone());
            if let Some(hook) = hook {
                hook(tag);
            }
        }
    }
}

async fn handle(State((proxy, tag)): State<(Arc<FaultProxy>, String)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b.to_vec(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let incoming = Incoming {
        call: classify(parts.method.as_str(), &parts.headers, &body),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        content_type: header(&parts.headers, "content-type")
            .unwrap_or("application/x-amz-json-1.1")
            .to_string(),
        method: parts.method,
        headers: parts.headers,
        body,
    };
    let call = &incoming.call;
    let content_type = incoming.content_type.as_str();
    let trace = header(&incoming.headers, "x-amzn-trace-id").unwrap_or("");
    let write = wire::measure(&call.service, &call.operation, &incoming.body, trace);
    proxy.count(&tag, |s| {
        s.calls += 1;
        *s.operations
            .entry(format!("{}.{}", call.service, call.operation))
            .or_default() += 1;
        s.writes.extend(write);
    });
    let (lo, hi) = proxy.plan.latency_ms;
    if hi > 0 {
        let d = proxy.draw();
        tokio::time::sleep(Duration::from_millis(
            lo + ((hi - lo.min(hi)) as f64 * d) as u64,
        ))
        .await;
    }
    if proxy.draw() < proxy.plan.throttle_rate {
        proxy.count(&tag, |s| s.throttled += 1);
        return call.throttled(content_type);
    }
    let error = proxy.draw() < proxy.plan.error_rate;
    let after = error && call.safe_to_repeat() && proxy.draw() < 0.5;
    if error && !after {
        proxy.count(&tag, |s| s.errors_before += 1);
        return call.internal(content_type);
    }
    proxy.count(&tag, |s| s.forwarded += 1);
    let result = match (call.service.as_str(), call.operation.as_str()) {
        ("kinesis", "PutRecords") if proxy.plan.put_records_failure_rate > 0.0 => {
            proxy.put_records(&tag, &incoming).await
        }
        ("dynamodb", "BatchWriteItem") => proxy.batch_write(&tag, &incoming).await,
        _ => proxy
            .forward(&incoming, incoming.body.clone())
            .await
            .map(|up| up.into_response(None)),
    };
    match result {
        Ok(_) if after => {
            proxy.count(&tag, |s| s.errors_after += 1);
            call.internal(content_type)
        }
        Ok(response) => response,
        Err(e) => (StatusCode::BAD_GATEWAY, format!("fault proxy: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn calls_are_told_apart_by_signing_name_and_operation() {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261121/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=x";
        let h = headers(&[
            ("authorization", auth),
            ("x-amz-target", "Kinesis_20131202.PutRecords"),
        ]);
        let c = classify("POST", &h, b"{}");
        assert_eq!(
            (c.service.as_str(), c.operation.as_str(), c.json),
            ("kinesis", "PutRecords", true)
        );
        assert!(c.safe_to_repeat());
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261121/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=x",
        )]);
        let c = classify("POST", &h, b"Action=Publish&Version=2010-03-31");
        assert_eq!(
            (c.service.as_str(), c.operation.as_str(), c.json),
            ("sns", "Publish", false)
        );
        assert!(!c.safe_to_repeat(), "a repeated publish is a second SMS");
    }
}
