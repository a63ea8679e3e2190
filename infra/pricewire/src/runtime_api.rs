//! The Lambda Runtime API, served to a function's real `bootstrap` child process.
//!
//! `GET /2018-06-01/runtime/invocation/next` blocks until the twin has an event and answers
//! it with the headers Lambda sends (request id, deadline from the function's timeout,
//! function ARN, trace id); `POST …/invocation/{id}/response` and `…/error` complete it;
//! `POST …/runtime/init/error` reports a failed start. An invocation that outlives its
//! deadline, or whose process dies, fails and the execution environment is discarded, as
//! Lambda does.
//!
//! Each process gets its own Runtime API server, torn down with it: a request a dead
//! process left waiting on `next` can never take the next process's event.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(serde_json::Value),
    /// The function reported an error (`errorType`, `errorMessage`).
    FunctionError(serde_json::Value),
    /// The process did not answer before the deadline; it was stopped.
    Timeout,
    /// The process exited (crash, kill, init error) while the invocation was open.
    Crashed(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Response(_))
    }
}

struct Pending {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u64,
}

#[derive(Clone)]
struct Api {
    queue: Arc<AsyncMutex<mpsc::Receiver<Pending>>>,
    open: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    function_arn: String,
    init_error: Arc<Mutex<Option<String>>>,
    /// When the process was spawned, and when it first asked for an event: its init
    /// (Lambda's Init phase, what a cold start costs before the first invocation).
    spawned: std::time::Instant,
    first_next: Arc<Mutex<Option<std::time::Instant>>>,
}

/// The executable and environment of one function, as Terraform configured it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub bootstrap: PathBuf,
    /// Arguments of the executable (none for a `bootstrap`; the script for an interpreter).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub memory_mb: i32,
    pub timeout: Duration,
    pub log_file: PathBuf,
}

/// One execution environment: a process and the Runtime API it talks to.
struct Instance {
    child: Child,
    server: tokio::task::JoinHandle<()>,
    tx: mpsc::Sender<Pending>,
    api: Api,
}

impl Instance {
    async fn discard(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

/// One function: starts execution environments on demand and invokes them one at a time.
pub struct FunctionHost {
    pub spec: FunctionSpec,
    function_arn: String,
    instance: AsyncMutex<Option<Instance>>,
    next_id: AtomicU64,
    pub starts: AtomicU64,
    /// Invocations completed, and the time they took from event to outcome (Lambda's
    /// billed duration, before rounding up to the millisecond).
    pub invocations: AtomicU64,
    pub busy_micros: AtomicU64,
    stopped: AtomicBool,
    /// Process id of the current execution environment (0: none).
    pid: std::sync::atomic::AtomicU32,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn next(State(api): State<Api>) -> Response {
    if let Ok(mut first) = api.first_next.lock() {
        first.get_or_insert_with(std::time::Instant::now);
    }
    let pending = {
        let mut queue = api.queue.lock().await;
        queue.recv().await
    };
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    // The last 24 hex digits of the request id (they end in its counter): one trace id per
    // invocation, which the SDK sends back as `x-amzn-trace-id` on every AWS call it makes.
    let hex: Vec<char> = p.id.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let trace: String = hex[hex.len().saturating_sub(24)..].iter().collect();
    let headers = [
        ("lambda-runtime-aws-request-id", p.id.clone()),
        ("lambda-runtime-deadline-ms", p.deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            api.function_arn.clone(),
        ),
        (
            "lambda-runtime-trace-id",
            format!("Root=1-{:08x}-{trace}", now_ms() / 1000),
        ),
        ("content-type", "application/json".to_string()),
    ];
    let mut response = (StatusCode::OK, p.payload).into_response();
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

fn complete(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    match api.open.lock().ok().and_then(|mut open| open.remove(id)) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    complete(&api, &id, Outcome::Response(value))
}

async fn error(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::json!({"errorMessage": String::from_utf8_lossy(&body)}));
    complete(&api, &id, Outcome::FunctionError(value))
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    if let Ok(mut e) = api.init_error.lock() {
        *e = Some(String::from_utf8_lossy(&body).to_string());
    }
    StatusCode::ACCEPTED
}

impl FunctionHost {
    /// Prepares the function and starts its first execution environment (a cold start).
    pub async fn start(spec: FunctionSpec, region: &str) -> std::io::Result<Arc<FunctionHost>> {
        // A fresh log per run; later environments of the run append to it.
        std::fs::File::create(&spec.log_file)?;
        let host = Arc::new(FunctionHost {
            function_arn: format!(
                "arn:aws:lambda:{region}:123456789012:function:{}",
                spec.name
            ),
            spec,
            instance: AsyncMutex::new(None),
            next_id: AtomicU64::new(1),
            starts: AtomicU64::new(0),
            invocations: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            pid: std::sync::atomic::AtomicU32::new(0),
        });
        let first = host.new_instance().await?;
        *host.instance.lock().await = Some(first);
        Ok(host)
    }

    async fn new_instance(&self) -> std::io::Result<Instance> {
        let (tx, rx) = mpsc::channel(1);
        let api = Api {
            queue: Arc::new(AsyncMutex::new(rx)),
            open: Arc::default(),
            function_arn: self.function_arn.clone(),
            init_error: Arc::default(),
            spawned: std::time::Instant::now(),
            first_next: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log_file)?;
        let mut cmd = Command::new(&self.spec.bootstrap);
        cmd.args(&self.spec.args)
            .env_clear()
            // Lambda's handler setting; an interpreter's runtime (the benchmark's Python
            // baseline) takes its own from the spec's environment.
            .env("_HANDLER", "bootstrap")
            .envs(self.spec.env.iter().cloned())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.spec.name),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };
        self.starts.fetch_add(1, Ordering::Relaxed);
        self.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        Ok(Instance {
            child,
            server,
            tx,
            api,
        })
    }

    /// The current execution environment's init: spawn → its first `GET …/next`, once it
    /// asked.
    pub async fn init_time(&self) -> Option<Duration> {
        let instance = self.instance.lock().await;
        let api = &instance.as_ref()?.api;
        let first = (*api.first_next.lock().ok()?)?;
        Some(first.duration_since(api.spawned))
    }

    /// The current execution environment's process id, if one is running.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    /// Kills the current process at once with SIGKILL, even in the middle of an
    /// invocation (which then ends as `Crashed`, as a Lambda whose environment died).
    pub fn kill_now(&self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }

    /// Discards the execution environment; the next invocation starts a new one.
    pub async fn kill(&self) {
        if let Some(instance) = self.instance.lock().await.take() {
            instance.discard().await;
        }
    }

    /// Invokes the function once and waits for its outcome (one at a time, like one
    /// execution environment).
    pub async fn invoke(&self, payload: &serde_json::Value) -> Outcome {
        let mut slot = self.instance.lock().await;
        if self.stopped.load(Ordering::Relaxed) {
            return Outcome::Crashed("the twin is shutting down".into());
        }
        // A process that died (crash, kill, init error) is replaced before the next event.
        if let Some(instance) = slot.as_mut() {
            if matches!(instance.child.try_wait(), Ok(Some(_))) {
                if let Some(dead) = slot.take() {
                    dead.discard().await;
                }
            }
        }
        if slot.is_none() {
            match self.new_instance().await {
                Ok(i) => *slot = Some(i),
                Err(e) => {
                    return Outcome::Crashed(format!(
                        "cannot start {}: {e}",
                        self.spec.bootstrap.display()
                    ))
                }
            }
        }
        let Some(instance) = slot.as_mut() else {
            return Outcome::Crashed("no execution environment".into());
        };
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            now_ms() as u32,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (reply_tx, mut reply_rx) = oneshot::channel();
        if let Ok(mut open) = instance.api.open.lock() {
            open.insert(id.clone(), reply_tx);
        }
        let deadline = now_ms() + self.spec.timeout.as_millis() as u64;
        let body = serde_json::to_vec(payload).unwrap_or_default();
        // A fresh environment's queue is empty, and an environment serves one event at a
        // time (an unfinished one is discarded below), so this never waits.
        if instance
            .tx
            .try_send(Pending {
                id: id.clone(),
                payload: body,
                deadline_ms: deadline,
            })
            .is_err()
        {
            if let Some(i) = slot.take() {
                i.discard().await;
            }
            return Outcome::Crashed("runtime API queue unavailable".into());
        }
        let began = std::time::Instant::now();
        let timeout = tokio::time::sleep(self.spec.timeout);
        tokio::pin!(timeout);
        let outcome = loop {
            tokio::select! {
                biased;
                outcome = &mut reply_rx => {
                    break outcome.unwrap_or_else(|_| Outcome::Crashed("invocation dropped".into()));
                }
                _ = &mut timeout => break Outcome::Timeout,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Ok(Some(status)) = instance.child.try_wait() {
                        let init = instance.api.init_error.lock().ok().and_then(|mut e| e.take());
                        break Outcome::Crashed(match init {
                            Some(e) => format!("init error: {e}"),
                            None => format!("process exited: {status}"),
                        });
                    }
                }
            }
        };
        self.invocations.fetch_add(1, Ordering::Relaxed);
        self.busy_micros
            .fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
        if !outcome.is_success() && !matches!(outcome, Outcome::FunctionError(_)) {
            // Timed out or crashed: Lambda discards the environment.
            if let Some(i) = slot.take() {
                i.discard().await;
            }
        }
        outcome
    }

    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.kill().await;
    }
}
