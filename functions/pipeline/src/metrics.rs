//! CloudWatch Embedded Metric Format: one JSON line on stdout per invocation, which
//! CloudWatch Logs turns into metrics without a PutMetricData call (no extra IAM, no
//! latency). One namespace; dimensions are the function and, for the collector, the
//! source: the number of metric series (each billed per month) grows with the sources,
//! not the jobs. The job is a property: a top-level field of the same log line that
//! Logs Insights searches (`filter job = "led-kzn"`), not a dimension.

use serde_json::{json, Map, Value};

use crate::limits::{EMF_MAX_DIMENSIONS, EMF_MAX_METRICS};

/// The one namespace of every pricewire metric.
pub const NAMESPACE: &str = "pricewire";

/// The unit of every metric: each is a count of something (durations are details).
const UNIT: &str = "Count";

/// One EMF document under construction.
#[derive(Debug, Clone, Default)]
pub struct Emf {
    dimensions: Vec<(&'static str, String)>,
    /// Top-level fields that are not dimensions or metrics: searchable and summable in the
    /// logs (Logs Insights), no metric series.
    properties: Vec<(&'static str, Value)>,
    metrics: Vec<(&'static str, f64)>,
}

impl Emf {
    pub fn new(dimensions: &[(&'static str, &str)]) -> Emf {
        Emf {
            dimensions: dimensions
                .iter()
                .take(EMF_MAX_DIMENSIONS)
                .map(|(k, v)| (*k, v.to_string()))
                .collect(),
            properties: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// A field of the log line that is not a dimension (the job): no metric series.
    pub fn property(mut self, name: &'static str, value: &str) -> Emf {
        self.properties
            .push((name, Value::String(value.to_string())));
        self
    }

    /// A figure kept in the log line only (Logs Insights can sum it), not a metric: each
    /// metric is a billed series per dimension value, so only what an alarm or the
    /// dashboard reads is one.
    pub fn detail(mut self, name: &'static str, value: u64) -> Emf {
        self.properties.push((name, json!(value)));
        self
    }

    pub fn count(mut self, name: &'static str, value: u64) -> Emf {
        if self.metrics.len() < EMF_MAX_METRICS {
            self.metrics.push((name, value as f64));
        }
        self
    }

    /// The document as one line, stamped `timestamp_ms`.
    pub fn to_line(&self, timestamp_ms: i64) -> String {
        let mut root = Map::new();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(n, _)| json!({"Name": n, "Unit": UNIT}))
            .collect();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| *k).collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimension_names], "Metrics": definitions}],
            }),
        );
        for (k, v) in &self.properties {
            root.insert((*k).into(), v.clone());
        }
        for (k, v) in &self.dimensions {
            root.insert((*k).into(), Value::String(v.clone()));
        }
        for (n, v) in &self.metrics {
            root.insert((*n).into(), json!(v));
        }
        Value::Object(root).to_string()
    }

    /// Writes the document to stdout, where the Lambda log agent picks it up.
    pub fn emit(&self) {
        println!("{}", self.to_line(chrono::Utc::now().timestamp_millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let line = Emf::new(&[("function", "collector"), ("source", "travelpayouts")])
            .property("job", "led-kzn")
            .detail("Pages", 2)
            .count("Requests", 3)
            .count("Throttled", 1)
            .to_line(1_790_000_000_000);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'));
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_790_000_000_000i64);
        assert_eq!(spec["Namespace"], "pricewire");
        // The job is a property, not a dimension: series do not grow with the jobs.
        assert_eq!(spec["Dimensions"], json!([["function", "source"]]));
        assert_eq!(
            spec["Metrics"][0],
            json!({"Name": "Requests", "Unit": "Count"})
        );
        // Every dimension and metric named in the spec has its value at the top level,
        // and so has the property.
        assert_eq!(
            (
                v["function"].as_str(),
                v["source"].as_str(),
                v["job"].as_str()
            ),
            (Some("collector"), Some("travelpayouts"), Some("led-kzn"))
        );
        // A detail is in the line, not among the metrics.
        assert_eq!(v["Pages"].as_f64(), Some(2.0));
        assert_eq!(spec["Metrics"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            (v["Requests"].as_f64(), v["Throttled"].as_f64()),
            (Some(3.0), Some(1.0))
        );
    }

    #[test]
    fn limits_are_respected() {
        let mut emf = Emf::new(&[("function", "x")]);
        for _ in 0..150 {
            emf = emf.count("M", 1);
        }
        let v: Value = serde_json::from_str(&emf.to_line(0)).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            EMF_MAX_METRICS
        );
    }
}
