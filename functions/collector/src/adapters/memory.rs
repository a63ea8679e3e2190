//! In-memory adapters of the collector's ports: real implementations with the same
//! semantics as the AWS ones (the breaker's conditional write included), shared by every
//! test instead of fakes copied per test, and used by `pricewire normalise`.

use crate::adapters::ssm::Secret;
use crate::breaker::{BreakerState, BreakerStore};
use crate::fetch::{TransportError, Upstream};
use crate::ratelimit::{LimitState, LimitStore};
use crate::secrets::SecretStore;
use crate::sink::{PutError, PutReport, RecordSink, StreamRecord};
use crate::state::{Cursor, CursorStore, HoldState, HoldStore, RunLog, RunRecord, StoreError};
use async_trait::async_trait;
use chrono::Utc;
use pricewire_pipeline::sources::{RequestSpec, Response};
use std::collections::HashMap;
use std::sync::Mutex;

fn poisoned<T>(_: T) -> StoreError {
    StoreError("state lock poisoned".into())
}

/// The state table in memory.
#[derive(Default)]
pub struct MemoryHostState {
    breakers: Mutex<HashMap<String, BreakerState>>,
    limits: Mutex<HashMap<String, LimitState>>,
    cursors: Mutex<HashMap<String, Cursor>>,
    holds: Mutex<HashMap<String, HoldState>>,
    pub runs: Mutex<HashMap<String, RunRecord>>,
}

#[async_trait]
impl BreakerStore for MemoryHostState {
    async fn load_breaker(&self, host: &str) -> Result<Option<BreakerState>, StoreError> {
        Ok(self.breakers.lock().map_err(poisoned)?.get(host).cloned())
    }

    async fn save_breaker(
        &self,
        host: &str,
        state: &BreakerState,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut map = self.breakers.lock().map_err(poisoned)?;
        if map.get(host).map(|s| s.version) != expected {
            return Ok(false);
        }
        map.insert(host.into(), state.clone());
        Ok(true)
    }
}

#[async_trait]
impl LimitStore for MemoryHostState {
    async fn load_limit(&self, key: &str) -> Result<Option<LimitState>, StoreError> {
        Ok(self.limits.lock().map_err(poisoned)?.get(key).cloned())
    }

    async fn save_limit(&self, key: &str, state: &LimitState) -> Result<(), StoreError> {
        self.limits
            .lock()
            .map_err(poisoned)?
            .insert(key.into(), state.clone());
        Ok(())
    }
}

#[async_trait]
impl CursorStore for MemoryHostState {
    async fn load_cursor(&self, job: &str) -> Result<Option<Cursor>, StoreError> {
        Ok(self.cursors.lock().map_err(poisoned)?.get(job).cloned())
    }

    async fn save_cursor(&self, job: &str, cursor: &Cursor) -> Result<(), StoreError> {
        self.cursors
            .lock()
            .map_err(poisoned)?
            .insert(job.into(), cursor.clone());
        Ok(())
    }

    async fn clear_cursor(&self, job: &str) -> Result<(), StoreError> {
        self.cursors.lock().map_err(poisoned)?.remove(job);
        Ok(())
    }
}

#[async_trait]
impl HoldStore for MemoryHostState {
    async fn load_hold(&self, key: &str) -> Result<Option<HoldState>, StoreError> {
        Ok(self.holds.lock().map_err(poisoned)?.get(key).cloned())
    }

    async fn save_hold(&self, key: &str, hold: &HoldState) -> Result<(), StoreError> {
        self.holds
            .lock()
            .map_err(poisoned)?
            .insert(key.into(), hold.clone());
        Ok(())
    }
}

#[async_trait]
impl RunLog for MemoryHostState {
    async fn load_run(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.runs.lock().map_err(poisoned)?.get(job).cloned())
    }

    async fn save_run(&self, job: &str, run: &RunRecord) -> Result<(), StoreError> {
        self.runs
            .lock()
            .map_err(poisoned)?
            .insert(job.into(), run.clone());
        Ok(())
    }
}

/// A stream in memory. While `failing`, every put fails as a throttled PutRecords would.
#[derive(Default)]
pub struct MemorySink {
    records: Mutex<Vec<StreamRecord>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemorySink {
    pub fn failing() -> MemorySink {
        MemorySink {
            failing: true.into(),
            ..MemorySink::default()
        }
    }

    pub fn records(&self) -> Vec<StreamRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl RecordSink for MemorySink {
    async fn put_records(&self, records: Vec<StreamRecord>) -> Result<PutReport, PutError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PutError {
                failed: records.len(),
                total: records.len(),
                attempts: 3,
                last_error: "ProvisionedThroughputExceededException: throttled".into(),
                report: PutReport::default(),
            });
        }
        let n = records.len();
        if let Ok(mut r) = self.records.lock() {
            r.extend(records);
        }
        Ok(PutReport {
            put: n,
            requests: n.div_ceil(pricewire_pipeline::limits::KINESIS_PUT_RECORDS_MAX_ENTRIES),
            retried_entries: 0,
        })
    }
}

/// Secrets by parameter name.
#[derive(Default)]
pub struct MemorySecrets(pub HashMap<String, String>);

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn secret(&self, parameter: &str) -> Result<Secret, String> {
        self.0
            .get(parameter)
            .map(|v| Secret::new(v.clone()))
            .ok_or_else(|| format!("SSM parameter {parameter}: ParameterNotFound"))
    }
}

/// An answer for [`ScriptedUpstream`].
pub fn reply(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
        url: String::new(),
        fetched_at: Utc::now(),
    }
}

/// An upstream that answers from a script, in order (`Err(())`: a timeout), and keeps the
/// requests it was sent. The answers' URL and fetch time are the request's.
pub struct ScriptedUpstream {
    script: Mutex<Vec<Result<Response, ()>>>,
    pub requests: Mutex<Vec<RequestSpec>>,
}

impl ScriptedUpstream {
    pub fn new(script: Vec<Result<Response, ()>>) -> ScriptedUpstream {
        ScriptedUpstream {
            script: Mutex::new(script),
            requests: Mutex::default(),
        }
    }
}

/// `http://up/path?k=v&…`, as an archived URL looks.
pub fn shown_url(spec: &RequestSpec) -> String {
    let query: Vec<String> = spec.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if query.is_empty() {
        format!("http://up{}", spec.path)
    } else {
        format!("http://up{}?{}", spec.path, query.join("&"))
    }
}

#[async_trait]
impl Upstream for ScriptedUpstream {
    async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError> {
        if let Ok(mut r) = self.requests.lock() {
            r.push(spec.clone());
        }
        let next = self.script.lock().ok().and_then(|mut s| {
            if s.is_empty() {
                None
            } else {
                Some(s.remove(0))
            }
        });
        let url = shown_url(spec);
        match next {
            Some(Ok(mut r)) => {
                r.url = url;
                r.fetched_at = Utc::now();
                Ok(r)
            }
            Some(Err(())) => Err(TransportError::Timeout { url }),
            None => Err(TransportError::Other {
                url,
                detail: "the script has no more answers".into(),
            }),
        }
    }
}

/// Every source's upstream is this one (tests, and `pricewire normalise`).
pub struct SameUpstream(pub std::sync::Arc<dyn Upstream>);

#[async_trait]
impl crate::Upstreams for SameUpstream {
    async fn upstream(
        &self,
        _source: &pricewire_pipeline::sources::settings::SourceSettings,
    ) -> Result<std::sync::Arc<dyn Upstream>, String> {
        Ok(self.0.clone())
    }
}
