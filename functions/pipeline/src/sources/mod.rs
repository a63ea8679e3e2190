//! Upstream sources: how a job becomes a request, and how a response becomes records.
//!
//! Everything here is pure: no I/O, so every shape an upstream can answer is unit-tested.

pub mod travelpayouts;

use crate::envelope::Envelope;
use serde::Serialize;
use serde_json::Value;

/// One HTTP GET to make against the source's base URL. The token is added by the HTTP
/// adapter as a header, so nothing here (and nothing logged or archived) carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    pub path: &'static str,
    pub query: Vec<(String, String)>,
}

/// What a response body normalised into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Normalised {
    pub records: Vec<Envelope>,
    pub quarantined: Vec<Quarantined>,
    /// Optional values that were present but unusable ("transfers: expected a whole number…").
    pub dropped_values: Vec<String>,
}

/// A record that could not be normalised: kept with its reason, never sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantined {
    pub source: String,
    pub job: String,
    /// Position of the record in the response's data, when it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub reason: String,
    pub record: Value,
}

/// A response that as a whole could not be used. Each names the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("job {job}: upstream body is not JSON: {detail}")]
    NotJson { job: String, detail: String },
    #[error("job {job}: upstream reported an error: {message}")]
    ErrorEnvelope { job: String, message: String },
    #[error("job {job}: unexpected response shape: {detail}")]
    UnexpectedShape { job: String, detail: String },
}
