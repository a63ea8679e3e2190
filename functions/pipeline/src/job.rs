//! The collector's input: one job, as the EventBridge Scheduler schedule delivers it.
//!
//! `{"job":"led-kzn","source":"travelpayouts","params":{"origin":"LED",…}}`
//!
//! `source` names a source entry (see `sources::settings`); whether it exists, and whether
//! the params suit its module, is checked when the job is planned.

use serde_json::Value;
use std::collections::BTreeMap;

/// Longest job name; it becomes part of S3 keys and metric dimensions.
const JOB_NAME_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub name: String,
    /// The source entry the job collects from.
    pub source: String,
    /// Parameters as strings (numbers and booleans are accepted and rendered as text).
    pub params: BTreeMap<String, String>,
}

/// An invalid job, naming the field (`params.origin`, `source`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job: {field}: {problem}")]
pub struct JobError {
    pub field: String,
    pub problem: String,
}

impl JobError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> JobError {
        JobError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl Job {
    pub fn from_value(value: &Value) -> Result<Job, JobError> {
        let obj = value
            .as_object()
            .ok_or_else(|| JobError::new("(job)", "expected a JSON object"))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "job" | "source" | "params") {
                return Err(JobError::new(
                    key,
                    "unknown field (expected job, source, params)",
                ));
            }
        }
        let name = match obj.get("job") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(JobError::new(
                    "job",
                    format!(
                        "expected a string, found {}",
                        crate::fields::describe(other)
                    ),
                ))
            }
            None => return Err(JobError::new("job", "missing")),
        };
        validate_name(&name).map_err(|p| JobError::new("job", p))?;
        let source = match obj.get("source") {
            Some(Value::String(s)) if is_source_name(s) => s.clone(),
            Some(Value::String(s)) => {
                return Err(JobError::new(
                    "source",
                    format!(
                        "{s:?} is not a source name (a-z, 0-9 and '-', starting with a letter)"
                    ),
                ))
            }
            Some(other) => {
                return Err(JobError::new(
                    "source",
                    format!(
                        "expected a string, found {}",
                        crate::fields::describe(other)
                    ),
                ))
            }
            None => return Err(JobError::new("source", "missing")),
        };
        let mut params = BTreeMap::new();
        match obj.get("params") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(JobError::new(
                                format!("params.{k}"),
                                format!(
                                    "expected a string, number or boolean, found {}",
                                    crate::fields::describe(other)
                                ),
                            ))
                        }
                    };
                    params.insert(k.clone(), text);
                }
            }
            Some(other) => {
                return Err(JobError::new(
                    "params",
                    format!(
                        "expected an object, found {}",
                        crate::fields::describe(other)
                    ),
                ))
            }
        }
        Ok(Job {
            name,
            source,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn is_source_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > JOB_NAME_MAX || !ok_chars || name.starts_with('-') {
        return Err(format!(
            "{name:?} must be 1-{JOB_NAME_MAX} characters of a-z, 0-9 and '-', not starting with '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_schedule_input() {
        let job = Job::from_value(&json!({"job":"led-kzn","source":"travelpayouts",
            "params":{"origin":"LED","destination":"KZN","departure_at":"2026-12","currency":"rub","limit":100}}))
        .unwrap();
        assert_eq!(job.name, "led-kzn");
        assert_eq!(job.source, "travelpayouts");
        assert_eq!(job.param("limit"), Some("100"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!([]), "(job)"),
            (json!({"source":"travelpayouts"}), "job"),
            (json!({"job":"Bad Name","source":"travelpayouts"}), "job"),
            (json!({"job":"a","source":"Kayak!"}), "source"),
            (json!({"job":"a","source":7}), "source"),
            (
                json!({"job":"a","source":"travelpayouts","params":[1]}),
                "params",
            ),
            (
                json!({"job":"a","source":"travelpayouts","params":{"origin":{"x":1}}}),
                "params.origin",
            ),
            (
                json!({"job":"a","source":"travelpayouts","extra":1}),
                "extra",
            ),
        ];
        for (input, field) in cases {
            let err = Job::from_value(&input).unwrap_err();
            assert_eq!(err.field, field, "{input}: {err}");
            assert!(err
                .to_string()
                .starts_with(&format!("invalid job: {field}: ")));
        }
    }
}
