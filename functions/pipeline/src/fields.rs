//! Per-field rules for unstable upstream JSON.
//!
//! Upstreams in this domain answer the same field as `null` one day, `{}` or `[]` the next,
//! leave it out, or send a number as a string. Every extractor here says exactly what it
//! accepts, and returns a [`FieldIssue`] naming what it found otherwise. Callers decide per
//! field whether an issue quarantines the record (required fields) or drops the value
//! (optional ones).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::str::FromStr;

/// What was wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldIssue {
    Missing,
    Null,
    EmptyObject,
    EmptyArray,
    EmptyString,
    WrongType {
        expected: &'static str,
        found: String,
    },
    Invalid(String),
}

impl FieldIssue {
    /// `null`, `{}`, `[]`, `""` and absence all mean "no value": optional fields treat them
    /// as `None` without counting a dropped value.
    pub fn is_absent(&self) -> bool {
        matches!(
            self,
            FieldIssue::Missing
                | FieldIssue::Null
                | FieldIssue::EmptyObject
                | FieldIssue::EmptyArray
                | FieldIssue::EmptyString
        )
    }
}

impl std::fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldIssue::Missing => f.write_str("missing"),
            FieldIssue::Null => f.write_str("null"),
            FieldIssue::EmptyObject => f.write_str("empty object {}"),
            FieldIssue::EmptyArray => f.write_str("empty array []"),
            FieldIssue::EmptyString => f.write_str("empty string"),
            FieldIssue::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            FieldIssue::Invalid(why) => f.write_str(why),
        }
    }
}

/// Short, bounded description of a JSON value for error messages.
pub fn describe(value: &Value) -> String {
    const MAX: usize = 40;
    let text = match value {
        Value::String(s) => format!("string {:?}", s),
        Value::Number(n) => format!("number {n}"),
        Value::Bool(b) => format!("bool {b}"),
        Value::Null => "null".into(),
        Value::Array(a) => format!("array of {}", a.len()),
        Value::Object(o) => format!("object with {} keys", o.len()),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The value of a field, or the "absent" issue that describes why there is none.
fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a Value, FieldIssue> {
    match obj.get(name) {
        None => Err(FieldIssue::Missing),
        Some(Value::Null) => Err(FieldIssue::Null),
        Some(Value::Object(o)) if o.is_empty() => Err(FieldIssue::EmptyObject),
        Some(Value::Array(a)) if a.is_empty() => Err(FieldIssue::EmptyArray),
        Some(Value::String(s)) if s.trim().is_empty() => Err(FieldIssue::EmptyString),
        Some(v) => Ok(v),
    }
}

fn wrong(expected: &'static str, found: &Value) -> FieldIssue {
    FieldIssue::WrongType {
        expected,
        found: describe(found),
    }
}

/// A string; a number is accepted and rendered as written (flight numbers come both ways).
pub fn text(obj: &Map<String, Value>, name: &str) -> Result<String, FieldIssue> {
    match present(obj, name)? {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(wrong("a string", other)),
    }
}

/// An exact decimal from a JSON number or a numeric string ("4830", "4830.50").
pub fn decimal(obj: &Map<String, Value>, name: &str) -> Result<Decimal, FieldIssue> {
    match present(obj, name)? {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map_err(|_| FieldIssue::Invalid(format!("number {n} is out of range"))),
        Value::String(s) => {
            Decimal::from_str(s.trim()).map_err(|_| wrong("a number", &Value::String(s.clone())))
        }
        other => Err(wrong("a number", other)),
    }
}

/// A non-negative whole number that fits `u32`, from a number (`2`, `2.0`) or a string ("2").
pub fn count(obj: &Map<String, Value>, name: &str) -> Result<u32, FieldIssue> {
    let value = present(obj, name)?;
    let number = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(wrong("a whole number", other)),
    };
    let parsed = Decimal::from_str(&number).map_err(|_| wrong("a whole number", value))?;
    if parsed.fract() != Decimal::ZERO || parsed.is_sign_negative() {
        return Err(wrong("a whole number", value));
    }
    parsed
        .to_u32()
        .ok_or_else(|| FieldIssue::Invalid(format!("{number} is out of range")))
}

/// A boolean from `true`/`false`, "true"/"false", or 0/1.
pub fn flag(obj: &Map<String, Value>, name: &str) -> Result<bool, FieldIssue> {
    match present(obj, name)? {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        other => Err(wrong("a boolean", other)),
    }
}

/// An array. `null`, `{}`, `[]`, `""` and absence all mean "nothing there": an empty one.
pub fn list<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], FieldIssue> {
    match present(obj, name) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => Err(wrong("an array", other)),
        Err(issue) if issue.is_absent() => Ok(&[]),
        Err(issue) => Err(issue),
    }
}

/// A point in time: an RFC 3339 string, or epoch seconds (or milliseconds, when the number
/// is too large for seconds) as a number or numeric string.
pub fn time(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<chrono::DateTime<chrono::Utc>, FieldIssue> {
    /// Epoch values above this are milliseconds (year 5138 in seconds).
    const MILLIS_ABOVE: i64 = 100_000_000_000;
    let value = present(obj, name)?;
    let epoch = |n: i64| {
        let t = if n.abs() > MILLIS_ABOVE {
            chrono::DateTime::from_timestamp_millis(n)
        } else {
            chrono::DateTime::from_timestamp(n, 0)
        };
        t.ok_or_else(|| FieldIssue::Invalid(format!("{n} is out of range")))
    };
    match value {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return epoch(n);
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| FieldIssue::Invalid(format!("{s:?} is not an RFC 3339 time")))
        }
        Value::Number(n) => match n.as_i64() {
            Some(n) => epoch(n),
            None => Err(wrong("a whole number of seconds", value)),
        },
        other => Err(wrong("a time", other)),
    }
}

/// Counts optional values that were present but unusable and therefore dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped(pub Vec<String>);

impl Dropped {
    /// `Some(value)`, or `None` for an absent value, or `None` plus a note for a bad one.
    pub fn optional<T>(&mut self, name: &str, result: Result<T, FieldIssue>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(issue) if issue.is_absent() => None,
            Err(issue) => {
                self.0.push(format!("{name}: {issue}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn absent_shapes_are_named() {
        let o = obj(json!({"a": null, "b": {}, "c": [], "d": "  "}));
        assert_eq!(text(&o, "a"), Err(FieldIssue::Null));
        assert_eq!(text(&o, "b"), Err(FieldIssue::EmptyObject));
        assert_eq!(text(&o, "c"), Err(FieldIssue::EmptyArray));
        assert_eq!(text(&o, "d"), Err(FieldIssue::EmptyString));
        assert_eq!(text(&o, "zz"), Err(FieldIssue::Missing));
    }

    #[test]
    fn numbers_as_strings_where_unambiguous() {
        let o = obj(json!({"p": "4830.50", "q": 4830, "r": 12.25, "n": "2", "m": 2.0, "f": 1234}));
        assert_eq!(decimal(&o, "p").unwrap().to_string(), "4830.50");
        assert_eq!(decimal(&o, "q").unwrap().to_string(), "4830");
        assert_eq!(decimal(&o, "r").unwrap().to_string(), "12.25");
        assert_eq!(count(&o, "n"), Ok(2));
        assert_eq!(count(&o, "m"), Ok(2));
        assert_eq!(text(&o, "f").unwrap(), "1234");
    }

    #[test]
    fn wrong_types_say_what_they_found() {
        let o = obj(json!({"p": "cheap", "n": -1, "x": 1.5, "b": "maybe", "o": {"k": 1}}));
        assert_eq!(
            decimal(&o, "p").unwrap_err().to_string(),
            "expected a number, found string \"cheap\""
        );
        assert!(count(&o, "n").is_err());
        assert!(count(&o, "x").is_err());
        assert!(flag(&o, "b").is_err());
        assert_eq!(
            text(&o, "o").unwrap_err().to_string(),
            "expected a string, found object with 1 keys"
        );
    }

    #[test]
    fn lists_and_times() {
        let o = obj(
            json!({"a": [1], "n": null, "e": {}, "o": {"k": 1}, "s": "x",
            "t": "2026-12-01T19:30:00Z", "u": 1764617400, "m": "1764617400000", "z": "soon"}),
        );
        assert_eq!(list(&o, "a").unwrap().len(), 1);
        for absent in ["n", "e", "missing"] {
            assert!(list(&o, absent).unwrap().is_empty(), "{absent}");
        }
        assert!(list(&o, "o").is_err() && list(&o, "s").is_err());
        let t = time(&o, "t").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T19:30:00+00:00");
        assert_eq!(time(&o, "u").unwrap().timestamp(), 1764617400);
        assert_eq!(time(&o, "m").unwrap().timestamp(), 1764617400);
        assert_eq!(
            time(&o, "z").unwrap_err().to_string(),
            "\"soon\" is not an RFC 3339 time"
        );
    }

    #[test]
    fn optional_drops_bad_values_with_a_note_but_not_absent_ones() {
        let o = obj(json!({"t": null, "u": "x"}));
        let mut d = Dropped::default();
        assert_eq!(d.optional("t", count(&o, "t")), None);
        assert_eq!(d.optional("u", count(&o, "u")), None);
        assert_eq!(
            d.0,
            vec!["u: expected a whole number, found string \"x\"".to_string()]
        );
    }
}
