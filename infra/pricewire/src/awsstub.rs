//! A fast local AWS for the benchmark: answers every call the functions make (DynamoDB,
//! Kinesis, S3, SNS, SQS, SSM) at once with a success, keeps no state, and counts what it was
//! asked. With AWS answering in microseconds, what a benchmark times is the function itself
//! (decoding, validating, building requests, signing, the SDK), not the emulator; and the
//! counts show that two implementations made the same calls.
//!
//! Not moto: moto spends milliseconds per call in Python and would be most of what is
//! measured. Not a crate: the answers are the few AWS wire shapes the functions read.

use crate::faultproxy::{classify, header};
use crate::wire::{self, WriteCall};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The value every SSM GetParameter answers (the collector's API token).
pub const STUB_TOKEN: &str = "bench-token";

/// What the stub was asked since the last `take`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StubCalls {
    /// Calls per `service.Operation`.
    pub operations: BTreeMap<String, u64>,
    pub writes: Vec<WriteCall>,
}

impl StubCalls {
    pub fn total(&self) -> u64 {
        self.operations.values().sum()
    }
}

#[derive(Default)]
pub struct AwsStub {
    calls: Mutex<StubCalls>,
    sequence: AtomicU64,
}

impl AwsStub {
    /// Serves on an ephemeral loopback port until the task is aborted.
    pub async fn serve(
        self: &Arc<Self>,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let app = Router::new().fallback(answer).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((addr, task))
    }

    /// The calls counted so far; the count starts again from zero.
    pub fn take(&self) -> StubCalls {
        self.calls
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

fn json_response(content_type: &'static str, body: Value) -> Response {
    let mut r = body.to_string().into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

async fn answer(State(stub): State<Arc<AwsStub>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let call = classify(parts.method.as_str(), &parts.headers, &body);
    let trace = header(&parts.headers, "x-amzn-trace-id").unwrap_or("");
    let write = wire::measure(&call.service, &call.operation, &body, trace);
    if let Ok(mut c) = stub.calls.lock() {
        *c.operations
            .entry(format!("{}.{}", call.service, call.operation))
            .or_default() += 1;
        c.writes.extend(write);
    }
    const DDB: &str = "application/x-amz-json-1.0";
    const JSON11: &str = "application/x-amz-json-1.1";
    match (call.service.as_str(), call.operation.as_str()) {
        ("dynamodb", "BatchWriteItem") => json_response(DDB, json!({"UnprocessedItems": {}})),
        ("dynamodb", "PutItem" | "UpdateItem" | "DeleteItem" | "GetItem") => {
            json_response(DDB, json!({}))
        }
        ("dynamodb", "Query" | "Scan") => {
            json_response(DDB, json!({"Count": 0, "ScannedCount": 0, "Items": []}))
        }
        ("kinesis", "PutRecords") => {
            let n = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("Records").and_then(Value::as_array).map(Vec::len))
                .unwrap_or(0);
            let records: Vec<Value> = (0..n)
                .map(|_| {
                    let seq = stub.sequence.fetch_add(1, Ordering::Relaxed);
                    json!({"SequenceNumber": seq.to_string(), "ShardId": "shardId-000000000000"})
                })
                .collect();
            json_response(JSON11, json!({"FailedRecordCount": 0, "Records": records}))
        }
        ("ssm", "GetParameter") => {
            let name = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("Name").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            json_response(
                JSON11,
                json!({"Parameter": {"Name": name, "Type": "SecureString", "Value": STUB_TOKEN,
                    "Version": 1, "DataType": "text"}}),
            )
        }
        ("sqs", "SendMessage") => json_response(
            "application/x-amz-json-1.0",
            json!({"MessageId": format!("stub-{}", stub.sequence.fetch_add(1, Ordering::Relaxed))}),
        ),
        ("sns", "Publish") => {
            let id = stub.sequence.fetch_add(1, Ordering::Relaxed);
            let xml = format!(
                "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult>\
                 <MessageId>00000000-0000-4000-8000-{id:012x}</MessageId></PublishResult>\
                 <ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></PublishResponse>"
            );
            let mut r = xml.into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/xml"));
            r
        }
        ("s3", "PUT") => Response::builder()
            .status(StatusCode::OK)
            .header("etag", "\"d41d8cd98f00b204e9800998ecf8427e\"")
            .body(Body::empty())
            .unwrap_or_default(),
        (service, operation) => {
            let mut r = json_response(
                JSON11,
                json!({"__type": "UnknownOperationException",
                    "message": format!("the benchmark stub does not answer {service}.{operation}")}),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}
