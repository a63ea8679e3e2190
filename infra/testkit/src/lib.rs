//! Test harness shared by the integration tests: a moto server (the AWS emulator) on a free
//! loopback port, stopped when dropped, and a Travelpayouts upstream stub.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long moto may take to answer after it was spawned.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server`, killed (and reaped) on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free loopback port. `MOTO_SERVER` overrides the command.
    pub fn start() -> Moto {
        let port = free_port();
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} (install it with `make tools`): {e}")
            });
        let moto = Moto { child, port };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < MOTO_START_TIMEOUT,
                "moto did not listen on {addr} within {MOTO_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One DynamoDB Streams API call to the emulator (`DescribeStream`, `GetShardIterator`,
/// `GetRecords`). The wire JSON of GetRecords already is the Lambda event's record shape,
/// so readers pass it on as it came; an SDK client would decode it only to be encoded back.
pub async fn dynamodb_streams(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    op: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let response = http
        .post(endpoint)
        .header("x-amz-target", format!("DynamoDBStreams_20120810.{op}"))
        .header("content-type", "application/x-amz-json-1.0")
        // The emulator routes by the credential scope; it checks no signature.
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=test/20260101/{region}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{op}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{op}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{op}: {status} {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    serde_json::from_str(&text).map_err(|e| format!("{op}: {e}"))
}

/// Every record on a table's stream so far, oldest first, as Lambda would deliver them
/// (`eventSourceARN` set).
pub async fn table_stream_records(
    endpoint: &str,
    region: &str,
    stream_arn: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let http = reqwest::Client::new();
    let call = |op: &'static str, body: serde_json::Value| {
        let http = http.clone();
        async move { dynamodb_streams(&http, endpoint, region, op, body).await }
    };
    let described = call(
        "DescribeStream",
        serde_json::json!({"StreamArn": stream_arn}),
    )
    .await?;
    let mut records = Vec::new();
    for shard in described["StreamDescription"]["Shards"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let it = call(
            "GetShardIterator",
            serde_json::json!({"StreamArn": stream_arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await?;
        let mut iterator = it["ShardIterator"].as_str().map(str::to_string);
        while let Some(i) = iterator {
            let out = call(
                "GetRecords",
                serde_json::json!({"ShardIterator": i, "Limit": 1000}),
            )
            .await?;
            let page = out["Records"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            for mut r in page {
                r["eventSourceARN"] = serde_json::json!(stream_arn);
                records.push(r);
            }
            iterator = out["NextShardIterator"].as_str().map(str::to_string);
        }
    }
    Ok(records)
}

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// One request the stub answered.
#[derive(Debug, Clone)]
pub struct Served {
    pub path: String,
    pub query: HashMap<String, String>,
    pub token: Option<String>,
}

#[derive(Clone)]
struct Stub {
    token: String,
    v3: serde_json::Value,
    month_matrix: serde_json::Value,
    log: Arc<Mutex<Vec<Served>>>,
}

/// A Travelpayouts stand-in that serves fixed bodies for both endpoints and checks the
/// token header. The upstream simulator with seeded data and faults is a separate tool.
pub struct UpstreamStub {
    pub base_url: String,
    log: Arc<Mutex<Vec<Served>>>,
    task: tokio::task::JoinHandle<()>,
}

impl UpstreamStub {
    pub async fn start(
        token: &str,
        v3: serde_json::Value,
        month_matrix: serde_json::Value,
    ) -> UpstreamStub {
        let log: Arc<Mutex<Vec<Served>>> = Arc::default();
        let state = Stub {
            token: token.into(),
            v3,
            month_matrix,
            log: log.clone(),
        };
        let app = Router::new()
            .route("/aviasales/v3/prices_for_dates", get(v3_handler))
            .route("/v2/prices/month-matrix", get(month_matrix_handler))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("stub address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        UpstreamStub {
            base_url: format!("http://{addr}"),
            log,
            task,
        }
    }

    pub fn served(&self) -> Vec<Served> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for UpstreamStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    state: &Stub,
    path: &str,
    headers: &HeaderMap,
    query: HashMap<String, String>,
    body: &serde_json::Value,
) -> (StatusCode, String) {
    let token = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut log) = state.log.lock() {
        log.push(Served {
            path: path.into(),
            query,
            token: token.clone(),
        });
    }
    if token.as_deref() != Some(state.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"success":false,"data":null,"error":"Unauthorized"}"#.into(),
        );
    }
    (StatusCode::OK, body.to_string())
}

async fn v3_handler(
    State(s): State<Stub>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    answer(&s, "/aviasales/v3/prices_for_dates", &headers, q, &s.v3)
}

async fn month_matrix_handler(
    State(s): State<Stub>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    answer(&s, "/v2/prices/month-matrix", &headers, q, &s.month_matrix)
}
