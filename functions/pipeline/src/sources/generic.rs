//! A JSON upstream no module knows, declared in configuration alone (a Terraform
//! `sources` entry with `module = "generic"`): where its records are, which of their
//! fields make the entity key, the price, the time and the currency, and how its pages
//! follow each other. Every setting is an `options` string (Terraform's options are a
//! map of strings), checked when the collector starts, naming the option:
//!
//! | option | meaning |
//! |---|---|
//! | `path` | the request path (`/v1/prices`); required |
//! | `records` | a JSON pointer (RFC 6901) to the array of records in the body (`/data/items`; `""` or unset: the body is the array) |
//! | `key` | the record fields whose values make the entity key, comma-separated (`store,sku`); required |
//! | `price` | the field holding the price (a number or a numeric string); required |
//! | `time` | the field holding the observation time (RFC 3339, or epoch seconds or milliseconds); optional |
//! | `currency` | the field holding the ISO 4217 currency; or `fixed_currency`: one code for every record |
//! | `name` | a field with a human name for the record, used in alert texts; optional |
//! | `pagination` | `none` (default), `page`, `cursor` or `link` |
//! | `page_param`, `page_size_param`, `page_size`, `max_pages` | `page`: the query parameters (`page`, `per_page`), the page size (100) and the pages walked (20) |
//! | `cursor_field`, `cursor_param` | `cursor`: where the next cursor is in the body (a JSON pointer, `/meta/next`) and the query parameter that sends it (`cursor`) |
//! | `max_steps` | `cursor` and `link`: the most pages one walk takes (100) |
//! | `query.<name>` | a fixed query parameter sent on every request |
//!
//! A field is a top-level name (`price`) or a JSON pointer into the record
//! (`/offer/price/amount`), resolved with `serde_json`'s own RFC 6901 pointer. The job's
//! `params` are sent as query parameters (the job picks what to ask for: `market=eu`).
//! With `link`, the next page is the `Link` header's `rel="next"` URL, of which only the
//! path and query are used: the request always goes to the source's own base URL.
//!
//! A record without a usable key field or price is quarantined with its reason; an
//! unusable optional value (time, currency, name) is dropped and noted.

use super::{
    cap_text, key_part, rate_limit_headers, request_of_url, standard_inspection, Auth, Context,
    Defaults, Inspection, Normalised, Page, Plan, Quarantined, RateScope, RequestSpec, Response,
    ResponseError, Source, Step, Walk,
};
use crate::envelope::{Envelope, Payload, Price};
use crate::fields::{self, describe, Dropped};
use crate::job::{Job, JobError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const MODULE: &str = "generic";
/// Requests per minute when the entry sets no `rate_limits`: a cautious start; the
/// limiter learns a lower limit from 429s.
const START_RPM: u32 = 60;
const DEFAULT_PAGE_SIZE: u32 = 100;
const DEFAULT_MAX_PAGES: u32 = 20;
const DEFAULT_MAX_STEPS: u32 = 100;
/// The most pages or steps a walk may be configured to take.
const MAX_WALK: u32 = 1000;
/// Fields that make a key, at most.
const MAX_KEY_FIELDS: usize = 8;
/// A job parameter or fixed query value, at most this many characters.
const MAX_QUERY_VALUE: usize = 512;

/// Every option the module reads (besides `query.<name>`).
const OPTIONS: &[&str] = &[
    "path",
    "records",
    "key",
    "price",
    "time",
    "currency",
    "fixed_currency",
    "name",
    "pagination",
    "page_param",
    "page_size_param",
    "page_size",
    "max_pages",
    "cursor_field",
    "cursor_param",
    "max_steps",
];

/// How pages follow each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    None,
    Page {
        page_param: String,
        size_param: String,
        size: u32,
        max_pages: u32,
    },
    Cursor {
        field: String,
        param: String,
        max_steps: u32,
    },
    Link {
        max_steps: u32,
    },
}

/// A source entry's options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub path: String,
    pub records: String,
    pub key: Vec<String>,
    pub price: String,
    pub time: Option<String>,
    pub currency: Option<String>,
    pub fixed_currency: Option<String>,
    pub name: Option<String>,
    pub pagination: Pagination,
    pub query: Vec<(String, String)>,
}

/// A field as a JSON pointer: `price` → `/price`; `/a/b` stays.
fn pointer(field: &str) -> String {
    if field.starts_with('/') {
        field.to_string()
    } else {
        format!("/{}", field.replace('~', "~0").replace('/', "~1"))
    }
}

fn is_param_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'))
}

fn is_field(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control)
}

fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Reads and checks the options, naming the first one that is wrong.
pub fn spec_of(options: &Map<String, Value>) -> Result<Spec, String> {
    let mut text = BTreeMap::new();
    for (k, v) in options {
        let Value::String(s) = v else {
            return Err(format!("options.{k}: {}, expected a string", describe(v)));
        };
        if !(OPTIONS.contains(&k.as_str()) || k.starts_with("query.")) {
            return Err(format!(
                "options.{k}: not an option of the generic module (expected one of {}, or query.<name>)",
                OPTIONS.join(", ")
            ));
        }
        text.insert(k.as_str(), s.trim().to_string());
    }
    let get = |k: &str| text.get(k).cloned().filter(|v| !v.is_empty());
    let required =
        |k: &str, what: &str| get(k).ok_or_else(|| format!("options.{k}: missing ({what})"));
    let field = |k: &str| -> Result<Option<String>, String> {
        match get(k) {
            None => Ok(None),
            Some(f) if is_field(&f) => Ok(Some(pointer(&f))),
            Some(f) => Err(format!(
                "options.{k}: {:?} is not a field name or JSON pointer",
                cap_text(&f, 40)
            )),
        }
    };
    let number = |k: &str, default: u32| -> Result<u32, String> {
        match get(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_WALK).contains(n))
                .ok_or_else(|| {
                    format!("options.{k}: {v:?} is not a whole number from 1 to {MAX_WALK}")
                }),
        }
    };
    let param = |k: &str, default: &str| -> Result<String, String> {
        let v = get(k).unwrap_or_else(|| default.to_string());
        if is_param_name(&v) {
            Ok(v)
        } else {
            Err(format!("options.{k}: {v:?} is not a query parameter name"))
        }
    };
    let path = required("path", "the request path, as /v1/prices")?;
    if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "options.path: {:?} is not a path (it starts with /, without query or spaces)",
            cap_text(&path, 60)
        ));
    }
    let records = get("records").unwrap_or_default();
    if !records.is_empty() && !records.starts_with('/') {
        return Err(format!(
            "options.records: {records:?} is not a JSON pointer (it starts with /, as /data/items)"
        ));
    }
    let key: Vec<String> = required("key", "the fields that make the entity key, as store,sku")?
        .split(',')
        .map(str::trim)
        .map(str::to_string)
        .collect();
    if key.len() > MAX_KEY_FIELDS || key.iter().any(|f| !is_field(f)) {
        return Err(format!(
            "options.key: 1 to {MAX_KEY_FIELDS} field names or JSON pointers, comma-separated"
        ));
    }
    let fixed_currency = match get("fixed_currency") {
        Some(c) if is_currency(&c) => Some(c),
        Some(c) => {
            return Err(format!(
                "options.fixed_currency: {c:?} is not an ISO 4217 code (three capital letters)"
            ))
        }
        None => None,
    };
    let currency = field("currency")?;
    if currency.is_some() && fixed_currency.is_some() {
        return Err(
            "options.fixed_currency: set currency (a field) or fixed_currency, not both".into(),
        );
    }
    let pagination = match get("pagination").as_deref().unwrap_or("none") {
        "none" => Pagination::None,
        "page" => Pagination::Page {
            page_param: param("page_param", "page")?,
            size_param: param("page_size_param", "per_page")?,
            size: number("page_size", DEFAULT_PAGE_SIZE)?,
            max_pages: number("max_pages", DEFAULT_MAX_PAGES)?,
        },
        "cursor" => Pagination::Cursor {
            field: field("cursor_field")?
                .ok_or("options.cursor_field: missing (where the next cursor is in the body, as /meta/next)")?,
            param: param("cursor_param", "cursor")?,
            max_steps: number("max_steps", DEFAULT_MAX_STEPS)?,
        },
        "link" => Pagination::Link {
            max_steps: number("max_steps", DEFAULT_MAX_STEPS)?,
        },
        other => {
            return Err(format!(
                "options.pagination: {other:?} is not none, page, cursor or link"
            ))
        }
    };
    let mut query = vec![];
    for (k, v) in &text {
        if let Some(name) = k.strip_prefix("query.") {
            if !is_param_name(name) || v.chars().count() > MAX_QUERY_VALUE {
                return Err(format!(
                    "options.{k}: not a query parameter name, or a value over {MAX_QUERY_VALUE} characters"
                ));
            }
            query.push((name.to_string(), v.clone()));
        }
    }
    Ok(Spec {
        path,
        records,
        key: key.iter().map(|f| pointer(f)).collect(),
        price: pointer(&required("price", "the field holding the price")?),
        time: field("time")?,
        currency,
        fixed_currency,
        name: field("name")?,
        pagination,
        query,
    })
}

/// The generic source.
pub struct Generic;

impl Source for Generic {
    fn module(&self) -> &'static str {
        MODULE
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["price"]
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            // No default upstream: an entry must name its own base_url.
            base_url: "",
            auth: Auth::None,
            documented_rpm: &[],
            unknown_path_rpm: START_RPM,
            rate_scope: RateScope::Host,
        }
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), String> {
        spec_of(options).map(|_| ())
    }

    fn plan(&self, job: &Job, context: Context<'_>) -> Result<Box<dyn Plan>, JobError> {
        let spec = spec_of(context.options).map_err(|p| JobError::new("source", p))?;
        Ok(Box::new(plan(job, context.source, spec)?))
    }

    fn plan_of_request(
        &self,
        job: &str,
        context: Context<'_>,
        request: &RequestSpec,
    ) -> Result<Box<dyn Plan>, JobError> {
        let spec = spec_of(context.options).map_err(|p| JobError::new("source", p))?;
        let mut walk_params: Vec<&str> = spec.query.iter().map(|(k, _)| k.as_str()).collect();
        match &spec.pagination {
            Pagination::Page {
                page_param,
                size_param,
                ..
            } => walk_params.extend([page_param.as_str(), size_param.as_str()]),
            Pagination::Cursor { param, .. } => walk_params.push(param),
            Pagination::None | Pagination::Link { .. } => {}
        }
        let params = super::params_of_request(request, &walk_params);
        let job = super::job_of(job, context.source, params)?;
        Ok(Box::new(plan(&job, context.source, spec)?))
    }
}

/// A job of a generic source: its params become query parameters.
#[derive(Debug, Clone)]
pub struct GenericPlan {
    pub source: String,
    pub job: String,
    pub spec: Spec,
    pub params: Vec<(String, String)>,
}

pub fn plan(job: &Job, source: &str, spec: Spec) -> Result<GenericPlan, JobError> {
    for (k, v) in &job.params {
        if !is_param_name(k) || v.chars().count() > MAX_QUERY_VALUE {
            return Err(JobError::new(
                format!("params.{k}"),
                format!("not a query parameter name, or a value over {MAX_QUERY_VALUE} characters"),
            ));
        }
    }
    Ok(GenericPlan {
        source: source.into(),
        job: job.name.clone(),
        params: job
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        spec,
    })
}

/// `<…>; rel="next"` of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let rel_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        rel_next.then(|| url.to_string())
    })
}

/// One value as text (a key part, a cursor): strings and numbers.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl GenericPlan {
    fn record(
        &self,
        raw: &Value,
        fetched: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Envelope, Vec<String>), String> {
        if !raw.is_object() {
            return Err(format!("record is {}, expected an object", describe(raw)));
        }
        let mut parts = vec![];
        let mut attributes = BTreeMap::new();
        for field in &self.spec.key {
            let value = raw.pointer(field).unwrap_or(&Value::Null);
            let text = scalar_text(value).ok_or_else(|| {
                format!(
                    "key field {field}: {}, expected a string or number",
                    describe(value)
                )
            })?;
            parts.push(key_part(&text));
            attributes.insert(
                field.trim_start_matches('/').to_string(),
                cap_text(&text, 200),
            );
        }
        // One-entry maps, so the checks every other source uses apply as they are.
        let one = |field: &str| -> Map<String, Value> {
            let mut m = Map::new();
            if let Some(v) = raw.pointer(field) {
                m.insert("v".into(), v.clone());
            }
            m
        };
        let price = fields::decimal(&one(&self.spec.price), "v")
            .map_err(|e| format!("price {}: {e}", self.spec.price))?;
        if price.is_sign_negative() && !price.is_zero() {
            return Err(format!("price {}: {price} is negative", self.spec.price));
        }
        let mut dropped = Dropped::default();
        let time = self
            .spec
            .time
            .as_ref()
            .and_then(|f| dropped.optional(f, fields::time(&one(f), "v")));
        let currency = match (&self.spec.fixed_currency, &self.spec.currency) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(f)) => dropped
                .optional(f, fields::text(&one(f), "v"))
                .map(|c| c.to_ascii_uppercase())
                .filter(|c| {
                    let ok = is_currency(c);
                    if !ok {
                        dropped.0.push(format!(
                            "{f}: {:?} is not an ISO 4217 code",
                            cap_text(c, 20)
                        ));
                    }
                    ok
                }),
            (None, None) => None,
        };
        let name = self
            .spec
            .name
            .as_ref()
            .and_then(|f| dropped.optional(f, fields::text(&one(f), "v")))
            .map(|n| cap_text(&n, 200));
        let payload = Payload::Price(Price {
            price,
            currency,
            name,
            attributes,
        });
        let key = parts.join("/");
        Ok((
            Envelope::new(&self.source, &self.job, key, time, fetched, payload),
            dropped.0,
        ))
    }
}

impl Plan for GenericPlan {
    fn walk(&self) -> Walk {
        match &self.spec.pagination {
            Pagination::None => Walk::Single,
            Pagination::Page {
                size, max_pages, ..
            } => Walk::Pages {
                page_size: *size,
                max_pages: *max_pages,
            },
            Pagination::Cursor { max_steps, .. } | Pagination::Link { max_steps } => Walk::Chain {
                max_steps: *max_steps,
            },
        }
    }

    fn request(&self, step: &Step) -> RequestSpec {
        // A `Link` next URL: its path and query, sent to the source's own base URL.
        if let (Pagination::Link { .. }, Step::Token { token }) = (&self.spec.pagination, step) {
            if let Some(r) = request_of_url(token) {
                return r;
            }
        }
        let mut query = self.spec.query.clone();
        query.extend(self.params.iter().cloned());
        match (&self.spec.pagination, step) {
            (
                Pagination::Page {
                    page_param,
                    size_param,
                    size,
                    ..
                },
                _,
            ) => {
                let page = match step {
                    Step::Page { page } => *page,
                    _ => 1,
                };
                query.push((page_param.clone(), page.to_string()));
                query.push((size_param.clone(), size.to_string()));
            }
            (Pagination::Cursor { param, .. }, Step::Token { token }) => {
                query.push((param.clone(), token.clone()));
            }
            _ => {}
        }
        RequestSpec::new(self.spec.path.clone(), query)
    }

    fn inspect(&self, response: &Response) -> Inspection {
        let mut i = standard_inspection(response);
        i.rate = rate_limit_headers(response);
        i
    }

    fn parse(&self, response: &Response) -> Result<Page, ResponseError> {
        let root: Value =
            serde_json::from_slice(&response.body).map_err(|e| ResponseError::NotJson {
                job: self.job.clone(),
                detail: e.to_string(),
            })?;
        let list = if self.spec.records.is_empty() {
            Some(&root)
        } else {
            root.pointer(&self.spec.records)
        };
        let records: &[Value] = match list {
            Some(Value::Array(items)) => items,
            // Nothing there: `null`, `{}` or absent.
            None | Some(Value::Null) => &[],
            Some(Value::Object(o)) if o.is_empty() => &[],
            Some(other) => {
                return Err(ResponseError::UnexpectedShape {
                    job: self.job.clone(),
                    detail: format!(
                        "records at {:?} are {}, expected an array",
                        self.spec.records,
                        describe(other)
                    ),
                })
            }
        };
        let mut n = Normalised::default();
        for (index, raw) in records.iter().enumerate() {
            match self.record(raw, response.fetched_at) {
                Ok((e, dropped)) => {
                    n.records.push(e);
                    n.dropped_values.extend(dropped);
                }
                Err(reason) => n.quarantined.push(Quarantined {
                    source: self.source.clone(),
                    job: self.job.clone(),
                    index: Some(index),
                    reason,
                    record: raw.clone(),
                }),
            }
        }
        let next = match &self.spec.pagination {
            Pagination::Cursor { field, .. } => root
                .pointer(field)
                .and_then(scalar_text)
                .map(|token| Step::Token { token }),
            Pagination::Link { .. } => response
                .header("link")
                .and_then(next_link)
                .map(|token| Step::Token { token }),
            // Page walks end at the first short page; the walk asks for the next.
            Pagination::Page { .. } | Pagination::None => None,
        };
        Ok(Page {
            size: records.len(),
            normalised: n,
            next,
            resume_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn options(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn shop() -> Map<String, Value> {
        options(json!({
            "path": "/v1/offers", "records": "/data/items", "key": "store,/item/sku",
            "price": "/item/price", "time": "updated_at", "currency": "currency", "name": "/item/title",
            "pagination": "cursor", "cursor_field": "/meta/next", "query.region": "eu"
        }))
    }

    fn job(params: Value) -> Job {
        Job::from_value(&json!({"job": "shop", "source": "shop", "params": params})).unwrap()
    }

    fn answer(body: Value, headers: &[(&str, &str)]) -> Response {
        let url = "https://shop.example/v1/offers";
        crate::sources::test_response(url, 200, headers, body, Utc::now().timestamp_millis())
    }

    fn the_plan(options: &Map<String, Value>, params: Value) -> Box<dyn Plan> {
        Generic
            .plan(
                &job(params),
                Context {
                    source: "shop",
                    options,
                },
            )
            .unwrap()
    }

    #[test]
    fn records_are_found_keyed_and_priced_as_declared() {
        let o = shop();
        let p = the_plan(&o, json!({"category": "tea"}));
        let r = p.request(&Step::Start);
        assert_eq!(r.path, "/v1/offers");
        assert_eq!(
            r.query,
            vec![
                ("region".to_string(), "eu".to_string()),
                ("category".into(), "tea".into())
            ]
        );
        let page = p.parse(&answer(json!({
            "data": {"items": [
                {"store": "berlin", "item": {"sku": 1001, "price": "12.30", "title": "Sencha"}, "updated_at": "2026-11-30T10:00:00Z", "currency": "eur"},
                {"store": "paris/nord", "item": {"sku": "A-7", "price": 9}, "currency": "dollars"},
                {"store": "rome", "item": {"sku": "B", "price": "NaN"}},
                {"store": null, "item": {"sku": "C", "price": 1}},
                {"store": "oslo", "item": {"sku": "D", "price": -3}},
                "junk"
            ]},
            "meta": {"next": "c2"}
        }), &[])).unwrap();
        let n = &page.normalised;
        assert_eq!(n.records.len(), 2, "{:?}", n.quarantined);
        let first = &n.records[0];
        assert_eq!((first.key.as_str(), first.kind()), ("berlin/1001", "price"));
        assert_eq!(first.observed_at.to_rfc3339(), "2026-11-30T10:00:00+00:00");
        let Payload::Price(x) = &first.payload else {
            panic!()
        };
        assert_eq!(
            (
                x.price.to_string(),
                x.currency.as_deref(),
                x.name.as_deref()
            ),
            ("12.30".into(), Some("EUR"), Some("Sencha"))
        );
        assert_eq!(x.attributes["item/sku"], "1001");
        assert_eq!(n.records[1].key, "paris%2Fnord/A-7");
        assert!(
            n.dropped_values.iter().any(|d| d.contains("ISO 4217")),
            "{:?}",
            n.dropped_values
        );
        let reasons: Vec<&str> = n.quarantined.iter().map(|q| q.reason.as_str()).collect();
        assert!(reasons[0].starts_with("price /item/price:"), "{reasons:?}");
        assert!(
            reasons[1].starts_with("key field /store: null"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("negative"), "{reasons:?}");
        assert!(reasons[3].contains("expected an object"), "{reasons:?}");
        assert_eq!(page.next, Some(Step::Token { token: "c2".into() }));
        let r = p.request(&Step::Token { token: "c2".into() });
        assert!(r.query.contains(&("cursor".into(), "c2".into())));
        // Missing records, as null or {}, are none; anything else is a shape error.
        for empty in [
            json!({"data": null}),
            json!({"data": {"items": {}}}),
            json!({}),
        ] {
            assert!(p
                .parse(&answer(empty, &[]))
                .unwrap()
                .normalised
                .records
                .is_empty());
        }
        assert!(p
            .parse(&answer(json!({"data": {"items": "x"}}), &[]))
            .is_err());
    }

    #[test]
    fn page_and_link_pagination() {
        let o = options(
            json!({"path": "/p", "key": "id", "price": "price", "pagination": "page",
            "page_size": "2", "page_size_param": "limit"}),
        );
        let p = the_plan(&o, json!({}));
        assert_eq!(
            p.walk(),
            Walk::Pages {
                page_size: 2,
                max_pages: DEFAULT_MAX_PAGES
            }
        );
        assert_eq!(
            p.request(&Step::Page { page: 3 }).query,
            vec![
                ("page".to_string(), "3".to_string()),
                ("limit".into(), "2".into())
            ]
        );
        let page = p
            .parse(&answer(json!([{"id": 1, "price": 2}]), &[]))
            .unwrap();
        assert_eq!(
            (page.size, page.normalised.records[0].key.as_str()),
            (1, "1")
        );

        let o = options(json!({"path": "/p", "key": "id", "price": "price", "pagination": "link"}));
        let p = the_plan(&o, json!({}));
        let link = r#"<https://api.example/p?page=1>; rel="prev", <https://api.example/p?page=3&x=a%2Cb>; rel="next""#;
        let page = p.parse(&answer(json!([]), &[("link", link)])).unwrap();
        let next = page.next.unwrap();
        let r = p.request(&next);
        assert_eq!(
            (r.path.as_str(), r.query.clone()),
            (
                "/p",
                vec![
                    ("page".to_string(), "3".to_string()),
                    ("x".into(), "a,b".into())
                ]
            )
        );
        assert_eq!(p.parse(&answer(json!([]), &[])).unwrap().next, None);
    }

    #[test]
    fn bad_options_fail_at_start_naming_the_option() {
        for (bad, option) in [
            (json!({"key": "id", "price": "p"}), "options.path"),
            (
                json!({"path": "v1", "key": "id", "price": "p"}),
                "options.path",
            ),
            (json!({"path": "/v1", "price": "p"}), "options.key"),
            (json!({"path": "/v1", "key": "id"}), "options.price"),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "records": "data"}),
                "options.records",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "pagination": "scroll"}),
                "options.pagination",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "pagination": "cursor"}),
                "options.cursor_field",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "pagination": "page", "page_size": "0"}),
                "options.page_size",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "fixed_currency": "euro"}),
                "options.fixed_currency",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "currency": "c", "fixed_currency": "EUR"}),
                "options.fixed_currency",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "query.a b": "x"}),
                "options.query.a b",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": "p", "colour": "red"}),
                "options.colour",
            ),
            (
                json!({"path": "/v1", "key": "id", "price": 5}),
                "options.price",
            ),
        ] {
            let err = Generic.check_options(&options(bad.clone())).unwrap_err();
            assert!(err.starts_with(&format!("{option}:")), "{bad}: {err}");
        }
        assert!(Generic.check_options(&shop()).is_ok());
    }

    #[test]
    fn an_archived_request_gives_back_its_job() {
        let o = options(
            json!({"path": "/p", "key": "id", "price": "price", "pagination": "page", "query.fixed": "1"}),
        );
        let r = request_of_url("https://api.example/p?fixed=1&category=tea&page=4&per_page=100")
            .unwrap();
        let p = Generic
            .plan_of_request(
                "j",
                Context {
                    source: "shop",
                    options: &o,
                },
                &r,
            )
            .unwrap();
        assert_eq!(p.request(&Step::Page { page: 4 }), r);
    }
}
