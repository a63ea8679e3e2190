//! Travelpayouts (Aviasales) Data API: the two shapes users meet.
//!
//! - `/aviasales/v3/prices_for_dates`: `data` is an array of offers with `price`, `airline`,
//!   `flight_number` (a string, sometimes a number), `departure_at`, `return_at`,
//!   `transfers`, `duration`, `link` (relative to the Aviasales site).
//! - `/v2/prices/month-matrix` (the older one): `data` is an array with `value`, `gate`,
//!   `depart_date`, `return_date`, `number_of_changes`, `found_at`, `trip_class`,
//!   `distance`, `actual`.
//!
//! Both wrap the data as `{"success": true, "data": …}`; an error is `{"success": false,
//! "error": "…"}`. Fields are mapped by name, each with its own rule for `null`, `{}`,
//! missing and wrong-typed values (see [`crate::fields`]).

use super::{
    Auth, Context, Defaults, Normalised, Page, Plan, Quarantined, RateScope, RequestSpec, Response,
    ResponseError, Source, Step, Walk,
};
use crate::envelope::{Envelope, FlightPrice, Money, Payload};
use crate::fields::{self, describe, Dropped, FieldIssue};
use crate::job::{Job, JobError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

pub const MODULE: &str = "travelpayouts";
/// The header Travelpayouts reads the token from.
pub const TOKEN_HEADER: &str = "X-Access-Token";

/// Travelpayouts' documented per-method limits, requests per minute (support article
/// "API rate limits", limits valid from 2024-06-14; read 2026-11-21). Paths are the API's,
/// as the collector requests them.
pub const DOCUMENTED_RPM: &[(&str, u32)] = &[
    ("/aviasales/v3/prices_for_dates", 600),
    ("/aviasales/v3/get_latest_prices", 300),
    ("/aviasales/v3/grouped_prices", 600),
    ("/v2/prices/month-matrix", 300),
    ("/v2/prices/latest", 300),
    ("/v1/prices/calendar", 300),
    ("/v1/prices/cheap", 300),
    ("/v1/prices/direct", 180),
    ("/v1/prices/monthly", 60),
];

/// The flight-price source: the Travelpayouts (Aviasales) Data API.
pub struct Travelpayouts;

impl Source for Travelpayouts {
    fn module(&self) -> &'static str {
        MODULE
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["flight_price"]
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            base_url: "https://api.travelpayouts.com",
            auth: Auth::Header {
                name: TOKEN_HEADER.into(),
            },
            documented_rpm: DOCUMENTED_RPM,
            unknown_path_rpm: 60,
            rate_scope: RateScope::Path,
        }
    }

    fn plan(&self, job: &Job, context: Context<'_>) -> Result<Box<dyn Plan>, JobError> {
        Ok(Box::new(query(job, context.source)?))
    }
}
/// Where relative offer links point.
const SITE: &str = "https://www.aviasales.com";
/// The sites an absolute offer link may point at (Aviasales' own); any other is dropped.
pub const SITE_DOMAINS: &[&str] = &[
    "aviasales.com",
    "aviasales.ru",
    "aviasales.kz",
    "aviasales.by",
    "aviasales.uz",
    "aviasales.kg",
    "aviasales.tj",
    "aviasales.am",
    "aviasales.az",
    "aviasales.ge",
    "travelpayouts.com",
];
/// Travelpayouts answers in roubles unless asked otherwise.
const DEFAULT_CURRENCY: &str = "RUB";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    PricesForDates,
    MonthMatrix,
}

impl Endpoint {
    pub fn path(&self) -> &'static str {
        match self {
            Endpoint::PricesForDates => "/aviasales/v3/prices_for_dates",
            Endpoint::MonthMatrix => "/v2/prices/month-matrix",
        }
    }

    fn allowed_params(&self) -> &'static [&'static str] {
        match self {
            Endpoint::PricesForDates => &[
                "origin",
                "destination",
                "departure_at",
                "return_at",
                "one_way",
                "direct",
                "currency",
                "market",
                "limit",
                "page",
                "max_pages",
                "sorting",
                "unique",
            ],
            Endpoint::MonthMatrix => &[
                "origin",
                "destination",
                "month",
                "currency",
                "market",
                "show_to_affiliates",
                "trip_duration",
                "one_way",
            ],
        }
    }
}

/// The v3 API's page size when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 30;
/// The v3 API's largest page.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Pages walked per collection when the job does not say (`params.max_pages`).
pub const DEFAULT_MAX_PAGES: u32 = 10;
/// The most pages one walk may take (the API's `page` goes to 1000 too).
pub const MAX_PAGES: u32 = 1000;
/// Job parameters that steer the collector and are not sent upstream.
const LOCAL_PARAMS: &[&str] = &["endpoint", "max_pages"];

/// How a paginated query is walked: pages 1..=max_pages of `page_size`, ending early at
/// the first page with fewer records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page_size: u32,
    pub max_pages: u32,
}

/// A validated Travelpayouts query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The source entry (records' `source`) and the job (records' `job`).
    pub source: String,
    pub job: String,
    pub endpoint: Endpoint,
    pub origin: String,
    pub destination: String,
    /// Upper-case ISO code used for the records' money.
    pub currency: String,
    pub request: RequestSpec,
    /// `None`: one request (month-matrix, or a job that names its `page`).
    pub paging: Option<Paging>,
}

impl Query {
    /// The request for one page (1-based) of a paginated query.
    pub fn page(&self, page: u32) -> RequestSpec {
        let mut spec = self.request.clone();
        spec.query.retain(|(k, _)| k != "page");
        spec.query.push(("page".into(), page.to_string()));
        spec
    }
}

/// Turns a job's params into a query. The endpoint is `params.endpoint`
/// (`prices_for_dates` or `month-matrix`), or month-matrix when `params.month` is given.
pub fn query(job: &Job, source: &str) -> Result<Query, JobError> {
    let endpoint = match job.param("endpoint") {
        Some("prices_for_dates") | Some("v3") => Endpoint::PricesForDates,
        Some("month-matrix") | Some("month_matrix") => Endpoint::MonthMatrix,
        Some(other) => {
            return Err(JobError::new(
                "params.endpoint",
                format!("unknown endpoint {other:?} (expected prices_for_dates or month-matrix)"),
            ))
        }
        None if job.param("month").is_some() => Endpoint::MonthMatrix,
        None => Endpoint::PricesForDates,
    };
    for key in job.params.keys() {
        if key != "endpoint" && !endpoint.allowed_params().contains(&key.as_str()) {
            return Err(JobError::new(
                format!("params.{key}"),
                format!("not a parameter of {}", endpoint.path()),
            ));
        }
    }
    let iata = |name: &str| -> Result<String, JobError> {
        let v = job
            .param(name)
            .ok_or_else(|| JobError::new(format!("params.{name}"), "missing"))?;
        if is_iata(v) {
            Ok(v.to_ascii_uppercase())
        } else {
            Err(JobError::new(
                format!("params.{name}"),
                format!("{v:?} is not a 3-letter IATA code"),
            ))
        }
    };
    let origin = iata("origin")?;
    let destination = iata("destination")?;
    let currency = match job.param("currency") {
        None => DEFAULT_CURRENCY.to_string(),
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        Some(c) => {
            return Err(JobError::new(
                "params.currency",
                format!("{c:?} is not a 3-letter currency code"),
            ))
        }
    };
    match endpoint {
        Endpoint::PricesForDates => {
            for name in ["departure_at", "return_at"] {
                if let Some(v) = job.param(name) {
                    if !is_month_or_date(v) {
                        return Err(JobError::new(
                            format!("params.{name}"),
                            format!("{v:?} is not YYYY-MM or YYYY-MM-DD"),
                        ));
                    }
                }
            }
            for (name, max) in [
                ("limit", MAX_PAGE_SIZE),
                ("page", 1000),
                ("max_pages", MAX_PAGES),
            ] {
                if let Some(v) = job.param(name) {
                    if !v.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n)) {
                        return Err(JobError::new(
                            format!("params.{name}"),
                            format!("{v:?} is not a number from 1 to {max}"),
                        ));
                    }
                }
            }
        }
        Endpoint::MonthMatrix => {
            let month = job
                .param("month")
                .ok_or_else(|| JobError::new("params.month", "missing"))?;
            if !is_month_or_date(month) {
                return Err(JobError::new(
                    "params.month",
                    format!("{month:?} is not YYYY-MM or YYYY-MM-DD"),
                ));
            }
        }
    }
    for name in ["one_way", "direct", "unique", "show_to_affiliates"] {
        if let Some(v) = job.param(name) {
            if v != "true" && v != "false" {
                return Err(JobError::new(
                    format!("params.{name}"),
                    format!("{v:?} is not true or false"),
                ));
            }
        }
    }
    let paging = match endpoint {
        Endpoint::PricesForDates if job.param("page").is_none() => Some(Paging {
            page_size: job
                .param("limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_PAGE_SIZE),
            max_pages: job
                .param("max_pages")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_PAGES),
        }),
        _ => None,
    };
    let mut query: Vec<(String, String)> = job
        .params
        .iter()
        .filter(|(k, _)| !LOCAL_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = match k.as_str() {
                "origin" | "destination" => v.to_ascii_uppercase(),
                "currency" => v.to_ascii_lowercase(),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    if let Some(p) = paging {
        if job.param("limit").is_none() {
            query.push(("limit".into(), p.page_size.to_string()));
        }
    }
    Ok(Query {
        source: source.to_string(),
        job: job.name.clone(),
        endpoint,
        origin,
        destination,
        currency,
        request: RequestSpec::new(endpoint.path(), query),
        paging,
    })
}

fn is_iata(v: &str) -> bool {
    v.len() == 3 && v.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_month_or_date(v: &str) -> bool {
    NaiveDate::parse_from_str(&format!("{v}-01"), "%Y-%m-%d").is_ok()
        || NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
}

impl Plan for Query {
    fn walk(&self) -> Walk {
        match self.paging {
            Some(p) => Walk::Pages {
                page_size: p.page_size,
                max_pages: p.max_pages,
            },
            None => Walk::Single,
        }
    }

    fn request(&self, step: &Step) -> RequestSpec {
        match (step, self.paging) {
            (Step::Page { page }, Some(_)) => self.page(*page),
            _ => self.request.clone(),
        }
    }

    fn parse(&self, response: &Response) -> Result<Page, ResponseError> {
        let normalised = parse(self, &response.body, response.fetched_at)?;
        let size = normalised.records.len() + normalised.quarantined.len();
        Ok(Page {
            normalised,
            next: None,
            size,
            resume_at: None,
        })
    }
}

/// Parses a response body into records and quarantined records.
pub fn parse(
    query: &Query,
    body: &[u8],
    fetched_at: DateTime<Utc>,
) -> Result<Normalised, ResponseError> {
    let job_name = &query.job;
    let root: Value = serde_json::from_slice(body).map_err(|e| ResponseError::NotJson {
        job: job_name.clone(),
        detail: e.to_string(),
    })?;
    let Value::Object(root) = root else {
        return Err(ResponseError::UnexpectedShape {
            job: job_name.clone(),
            detail: format!("top level is {}, expected an object", describe(&root)),
        });
    };
    if let Some(success) = root.get("success") {
        if success == &Value::Bool(false) {
            let message = match root.get("error").or_else(|| root.get("message")) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "success=false without an error message".to_string(),
            };
            let message = super::cap_text(&message, super::UPSTREAM_TEXT_MAX_CHARS);
            return Err(ResponseError::ErrorEnvelope {
                job: job_name.clone(),
                message,
            });
        }
    }
    let currency = match fields::text(&root, "currency") {
        Ok(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        _ => query.currency.clone(),
    };
    let mut root = root;
    // `data: null` and `data: {}` both mean "nothing found" for this query. The records
    // are taken out of the body, not copied.
    let items: Vec<Value> = match root.remove("data") {
        Some(Value::Array(items)) => items,
        Some(Value::Object(map)) => map.into_iter().map(|(_, v)| v).collect(),
        Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(ResponseError::UnexpectedShape {
                job: job_name.clone(),
                detail: format!("data is {}, expected an array", describe(&other)),
            })
        }
        None => {
            return Err(ResponseError::UnexpectedShape {
                job: job_name.clone(),
                detail: "no data field".into(),
            })
        }
    };

    let mut out = Normalised::default();
    for (index, item) in items.into_iter().enumerate() {
        let mut dropped = Dropped::default();
        let result = match &item {
            Value::Object(obj) => match query.endpoint {
                Endpoint::PricesForDates => offer_v3(obj, query, &currency, &mut dropped),
                Endpoint::MonthMatrix => offer_month_matrix(obj, query, &currency, &mut dropped),
            },
            other => Err(format!("record is {}, expected an object", describe(other))),
        };
        match result {
            Ok((key, upstream_time, price)) => {
                out.records.push(Envelope::new(
                    &query.source,
                    job_name,
                    key,
                    upstream_time,
                    fetched_at,
                    Payload::FlightPrice(price),
                ));
                out.dropped_values.extend(dropped.0);
            }
            Err(reason) => out.quarantined.push(Quarantined {
                source: query.source.clone(),
                job: job_name.clone(),
                index: Some(index),
                reason,
                record: item,
            }),
        }
    }
    Ok(out)
}

type Offer = (String, Option<DateTime<Utc>>, FlightPrice);

fn required<T>(name: &str, r: Result<T, FieldIssue>) -> Result<T, String> {
    r.map_err(|issue| format!("{name}: {issue}"))
}

/// A positive price, exact.
fn price(obj: &Map<String, Value>, name: &str, currency: &str) -> Result<Money, String> {
    let amount: Decimal = required(name, fields::decimal(obj, name))?;
    if amount <= Decimal::ZERO {
        return Err(format!("{name}: {amount} is not a positive price"));
    }
    Ok(Money {
        amount: amount.normalize(),
        currency: currency.to_string(),
    })
}

/// Origin/destination: the record's own value when usable; when absent, the query's (the
/// upstream answered that query); when present but not an IATA code, the record is bad.
fn place(obj: &Map<String, Value>, name: &str, fallback: &str) -> Result<String, String> {
    match fields::text(obj, name) {
        Ok(v) if is_iata(&v) => Ok(v.to_ascii_uppercase()),
        Ok(v) => Err(format!("{name}: {v:?} is not a 3-letter IATA code")),
        Err(issue) if issue.is_absent() => Ok(fallback.to_string()),
        Err(issue) => Err(format!("{name}: {issue}")),
    }
}

/// A date or date-time as the upstream wrote it, checked to parse.
fn when(obj: &Map<String, Value>, name: &str) -> Result<String, FieldIssue> {
    let v = fields::text(obj, name)?;
    if parse_time(&v).is_some() || NaiveDate::parse_from_str(&v, "%Y-%m-%d").is_ok() {
        Ok(v)
    } else {
        Err(FieldIssue::Invalid(format!(
            "{v:?} is not a date or date-time"
        )))
    }
}

/// RFC 3339, or a naive `YYYY-MM-DDTHH:MM:SS[.fff]` taken as UTC.
fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, format) {
            return Some(t.and_utc());
        }
    }
    None
}

fn entity_key(f: &FlightPrice) -> String {
    let mut key = format!(
        "{}-{}/{}/{}",
        f.origin,
        f.destination,
        f.departure_at,
        f.return_at.as_deref().unwrap_or("oneway")
    );
    if let (Some(carrier), Some(number)) = (&f.carrier, &f.flight_number) {
        key.push('/');
        key.push_str(carrier);
        key.push_str(number);
    }
    key
}

fn offer_v3(
    obj: &Map<String, Value>,
    query: &Query,
    currency: &str,
    dropped: &mut Dropped,
) -> Result<Offer, String> {
    let price = price(obj, "price", currency)?;
    let origin = place(obj, "origin", &query.origin)?;
    let destination = place(obj, "destination", &query.destination)?;
    let departure_at = required("departure_at", when(obj, "departure_at"))?;
    let return_at = dropped.optional("return_at", when(obj, "return_at"));
    let carrier = dropped.optional("airline", fields::text(obj, "airline"));
    let flight_number = dropped.optional("flight_number", fields::text(obj, "flight_number"));
    let transfers = dropped.optional("transfers", fields::count(obj, "transfers"));
    let duration_minutes = dropped.optional("duration", fields::count(obj, "duration"));
    let link = dropped
        .optional("link", fields::text(obj, "link"))
        .and_then(|l| {
            // A relative link is joined to the site, then checked like any other.
            let l = if l.starts_with('/') {
                format!("{SITE}{l}")
            } else {
                l
            };
            match super::trusted_link(&l, SITE_DOMAINS) {
                Ok(l) => Some(l),
                Err(why) => {
                    dropped.0.push(format!("link: {why}"));
                    None
                }
            }
        });
    let offer = FlightPrice {
        origin,
        destination,
        departure_at,
        return_at,
        price,
        carrier,
        flight_number,
        gate: None,
        transfers,
        duration_minutes,
        trip_class: None,
        distance_km: None,
        actual: None,
        link,
    };
    Ok((entity_key(&offer), None, offer))
}

fn offer_month_matrix(
    obj: &Map<String, Value>,
    query: &Query,
    currency: &str,
    dropped: &mut Dropped,
) -> Result<Offer, String> {
    let price = price(obj, "value", currency)?;
    let origin = place(obj, "origin", &query.origin)?;
    let destination = place(obj, "destination", &query.destination)?;
    let departure_at = required("depart_date", when(obj, "depart_date"))?;
    let return_at = dropped.optional("return_date", when(obj, "return_date"));
    let found_at = dropped
        .optional("found_at", fields::text(obj, "found_at"))
        .and_then(|v| match parse_time(&v) {
            Some(t) => Some(t),
            None => {
                dropped
                    .0
                    .push(format!("found_at: {v:?} is not a date-time"));
                None
            }
        });
    let link = Some(search_link(
        &origin,
        &destination,
        &departure_at,
        return_at.as_deref(),
    ));
    let offer = FlightPrice {
        origin,
        destination,
        departure_at,
        return_at,
        price,
        carrier: None,
        flight_number: None,
        gate: dropped.optional("gate", fields::text(obj, "gate")),
        transfers: dropped.optional("number_of_changes", fields::count(obj, "number_of_changes")),
        duration_minutes: dropped.optional("duration", fields::count(obj, "duration")),
        trip_class: dropped.optional("trip_class", fields::count(obj, "trip_class")),
        distance_km: dropped.optional("distance", fields::count(obj, "distance")),
        actual: dropped.optional("actual", fields::flag(obj, "actual")),
        link,
    };
    Ok((entity_key(&offer), found_at, offer))
}

/// Aviasales search link, `/search/LED0512KZN10121` style: origin, DDMM, destination,
/// return DDMM if any, one adult.
fn search_link(origin: &str, destination: &str, depart: &str, ret: Option<&str>) -> String {
    let ddmm = |d: &str| {
        NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d")
            .map(|d| d.format("%d%m").to_string())
            .unwrap_or_default()
    };
    format!(
        "{SITE}/search/{origin}{}{destination}{}1",
        ddmm(depart),
        ret.map(ddmm).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn job(params: Value) -> Job {
        Job::from_value(&json!({"job":"led-kzn","source":"travelpayouts","params":params})).unwrap()
    }

    fn v3_job() -> (Job, Query) {
        let j = job(
            json!({"origin":"LED","destination":"KZN","departure_at":"2026-12","currency":"rub"}),
        );
        let q = query(&j, MODULE).unwrap();
        (j, q)
    }

    fn mm_job() -> (Job, Query) {
        let j = job(
            json!({"origin":"MOW","destination":"AER","month":"2026-12-01","currency":"rub","show_to_affiliates":"true"}),
        );
        let q = query(&j, MODULE).unwrap();
        (j, q)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
    }

    fn flight(e: &Envelope) -> &FlightPrice {
        match &e.payload {
            Payload::FlightPrice(f) => f,
            other => panic!("not a flight: {other:?}"),
        }
    }

    #[test]
    fn query_picks_endpoint_and_validates_params_by_name() {
        let (_, q) = v3_job();
        assert_eq!(q.endpoint, Endpoint::PricesForDates);
        assert_eq!(q.request.path, "/aviasales/v3/prices_for_dates");
        assert!(q.request.query.contains(&("currency".into(), "rub".into())));
        assert_eq!(q.currency, "RUB");
        let (_, q) = mm_job();
        assert_eq!(q.endpoint, Endpoint::MonthMatrix);
        assert_eq!(q.request.path, "/v2/prices/month-matrix");

        let bad = [
            (json!({"destination":"KZN"}), "params.origin"),
            (
                json!({"origin":"LEDX","destination":"KZN"}),
                "params.origin",
            ),
            (
                json!({"origin":"LED","destination":"KZN","departure_at":"Dec"}),
                "params.departure_at",
            ),
            (
                json!({"origin":"LED","destination":"KZN","limit":"0"}),
                "params.limit",
            ),
            (
                json!({"origin":"LED","destination":"KZN","month":"2026-13"}),
                "params.month",
            ),
            (
                json!({"origin":"LED","destination":"KZN","token":"x"}),
                "params.token",
            ),
            (
                json!({"origin":"LED","destination":"KZN","endpoint":"v9"}),
                "params.endpoint",
            ),
            (
                json!({"origin":"LED","destination":"KZN","currency":"roubles"}),
                "params.currency",
            ),
        ];
        for (params, field) in bad {
            let err = query(&job(params.clone()), MODULE).unwrap_err();
            assert_eq!(err.field, field, "{params}: {err}");
        }
    }

    #[test]
    fn v3_is_walked_page_by_page_unless_the_job_names_a_page() {
        let (_, q) = v3_job();
        assert_eq!(
            q.paging,
            Some(Paging {
                page_size: DEFAULT_PAGE_SIZE,
                max_pages: DEFAULT_MAX_PAGES
            })
        );
        let p3 = q.page(3);
        assert!(p3.query.contains(&("page".into(), "3".into())));
        assert!(p3.query.contains(&("limit".into(), "30".into())), "{p3:?}");
        let q = query(
            &job(json!({"origin":"LED","destination":"KZN","limit":"25","max_pages":"80"})),
            MODULE,
        )
        .unwrap();
        assert_eq!(
            q.paging,
            Some(Paging {
                page_size: 25,
                max_pages: 80
            })
        );
        assert!(
            !q.request.query.iter().any(|(k, _)| k == "max_pages"),
            "max_pages is the collector's, not the API's"
        );
        let q = query(
            &job(json!({"origin":"LED","destination":"KZN","page":"2"})),
            MODULE,
        )
        .unwrap();
        assert_eq!(q.paging, None);
        assert_eq!(mm_job().1.paging, None);
        let err = query(
            &job(json!({"origin":"LED","destination":"KZN","max_pages":"0"})),
            MODULE,
        )
        .unwrap_err();
        assert_eq!(err.field, "params.max_pages");
    }

    #[test]
    fn v3_prices_for_dates_normalises_every_field() {
        let (_, q) = v3_job();
        let body = json!({"success":true,"currency":"rub","data":[{
            "origin":"LED","destination":"KZN","origin_airport":"LED","destination_airport":"KZN",
            "price":4830,"airline":"SU","flight_number":"1234",
            "departure_at":"2026-12-05T10:30:00+03:00","return_at":"2026-12-10T18:00:00+03:00",
            "transfers":0,"return_transfers":0,"duration":95,"link":"/search/LED0512KZN10121?t=SU1"}]});
        let n = parse(&q, body.to_string().as_bytes(), now()).unwrap();
        assert!(n.quarantined.is_empty() && n.dropped_values.is_empty());
        let e = &n.records[0];
        let f = flight(e);
        assert_eq!(f.price.to_string(), "4830 RUB");
        assert_eq!(f.carrier.as_deref(), Some("SU"));
        assert_eq!(f.flight_number.as_deref(), Some("1234"));
        assert_eq!(f.transfers, Some(0));
        assert_eq!(f.duration_minutes, Some(95));
        assert_eq!(
            f.link.as_deref(),
            Some("https://www.aviasales.com/search/LED0512KZN10121?t=SU1")
        );
        assert_eq!(
            e.key,
            "LED-KZN/2026-12-05T10:30:00+03:00/2026-12-10T18:00:00+03:00/SU1234"
        );
        assert_eq!(
            e.observed_at,
            now(),
            "v3 has no upstream time: observed_at is fetched_at"
        );
        assert_eq!(e.kind(), "flight_price");
    }

    #[test]
    fn links_to_other_sites_are_dropped_and_upstream_errors_capped() {
        let (_, q) = v3_job();
        let body = json!({"success":true,"data":[
            {"price":100,"departure_at":"2026-12-05","link":"https://www.aviasales.ru/search/LED0512KZN1"},
            {"price":100,"departure_at":"2026-12-06","link":"https://phish.example/claim-your-prize"},
            {"price":100,"departure_at":"2026-12-07","link":"https://www.aviasales.com@phish.example/"},
            {"price":100,"departure_at":"2026-12-08","link":"/search/x\n\nWIN: https://phish.example"}]});
        let n = parse(&q, body.to_string().as_bytes(), now()).unwrap();
        let links: Vec<Option<&str>> = n
            .records
            .iter()
            .map(|e| flight(e).link.as_deref())
            .collect();
        assert_eq!(
            links,
            vec![
                Some("https://www.aviasales.ru/search/LED0512KZN1"),
                None,
                None,
                None
            ]
        );
        assert_eq!(n.dropped_values.len(), 3, "{:?}", n.dropped_values);
        assert!(
            n.dropped_values[2].contains("spaces or control characters"),
            "a relative link is checked too: {:?}",
            n.dropped_values
        );
        assert!(
            n.dropped_values[0]
                .starts_with("link: host \"phish.example\" is not one of the source's sites"),
            "{:?}",
            n.dropped_values
        );
        let long = json!({"success": false, "error": "x".repeat(100_000)}).to_string();
        let err = parse(&q, long.as_bytes(), now()).unwrap_err().to_string();
        assert!(
            err.len() < 500,
            "an upstream's error text is capped: {} bytes",
            err.len()
        );
    }

    #[test]
    fn month_matrix_normalises_every_field() {
        let (_, q) = mm_job();
        let body = json!({"success":true,"data":[{
            "value":3900,"trip_class":0,"show_to_affiliates":true,"return_date":"2026-12-12",
            "origin":"MOW","gate":"Aeroflot","found_at":"2026-11-20T08:12:44","number_of_changes":0,
            "destination":"AER","depart_date":"2026-12-05","actual":true,"distance":1360,"duration":130}]});
        let n = parse(&q, body.to_string().as_bytes(), now()).unwrap();
        assert!(n.quarantined.is_empty());
        let e = &n.records[0];
        let f = flight(e);
        assert_eq!(f.price.to_string(), "3900 RUB");
        assert_eq!(f.gate.as_deref(), Some("Aeroflot"));
        assert_eq!(f.transfers, Some(0));
        assert_eq!(f.distance_km, Some(1360));
        assert_eq!(f.actual, Some(true));
        assert_eq!(f.trip_class, Some(0));
        assert_eq!(
            f.link.as_deref(),
            Some("https://www.aviasales.com/search/MOW0512AER12121")
        );
        assert_eq!(e.key, "MOW-AER/2026-12-05/2026-12-12");
        assert_eq!(
            e.observed_at,
            Utc.with_ymd_and_hms(2026, 11, 20, 8, 12, 44).unwrap()
        );
    }

    #[test]
    fn null_empty_missing_and_wrong_typed_optional_fields_are_handled_per_field() {
        let (_, q) = mm_job();
        let body = json!({"success":true,"data":[
            {"value":"3900.50","depart_date":"2026-12-05","return_date":"","gate":null,
             "number_of_changes":{},"found_at":[],"actual":"true","distance":"1360","trip_class":"x"},
            {"value":3900,"depart_date":"2026-12-06","gate":{},"number_of_changes":"1","found_at":"yesterday"}]});
        let n = parse(&q, body.to_string().as_bytes(), now()).unwrap();
        assert_eq!(n.records.len(), 2, "{:?}", n.quarantined);
        let a = flight(&n.records[0]);
        assert_eq!(a.price.amount.to_string(), "3900.5");
        assert_eq!(a.origin, "MOW", "missing origin falls back to the query's");
        assert_eq!(a.return_at, None);
        assert_eq!(a.gate, None);
        assert_eq!(a.transfers, None);
        assert_eq!(a.actual, Some(true));
        assert_eq!(a.distance_km, Some(1360));
        assert_eq!(a.trip_class, None);
        let b = flight(&n.records[1]);
        assert_eq!(b.transfers, Some(1));
        assert_eq!(
            n.records[1].observed_at,
            now(),
            "unusable found_at: fall back to fetch time"
        );
        assert_eq!(
            n.dropped_values,
            vec![
                "trip_class: expected a whole number, found string \"x\"".to_string(),
                "found_at: \"yesterday\" is not a date-time".to_string(),
            ]
        );
    }

    #[test]
    fn unusable_required_fields_quarantine_the_record_with_its_reason() {
        let (_, q) = v3_job();
        let body = json!({"success":true,"data":[
            {"price":null,"departure_at":"2026-12-05"},
            {"price":{},"departure_at":"2026-12-05"},
            {"departure_at":"2026-12-05"},
            {"price":"cheap","departure_at":"2026-12-05"},
            {"price":-5,"departure_at":"2026-12-05"},
            {"price":100},
            {"price":100,"departure_at":"soon"},
            {"price":100,"departure_at":"2026-12-05","origin":"Pulkovo"},
            "garbage",
            {"price":100,"departure_at":"2026-12-05"}]});
        let n = parse(&q, body.to_string().as_bytes(), now()).unwrap();
        assert_eq!(n.records.len(), 1);
        let reasons: Vec<&str> = n.quarantined.iter().map(|q| q.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "price: null",
                "price: empty object {}",
                "price: missing",
                "price: expected a number, found string \"cheap\"",
                "price: -5 is not a positive price",
                "departure_at: missing",
                "departure_at: \"soon\" is not a date or date-time",
                "origin: \"Pulkovo\" is not a 3-letter IATA code",
                "record is string \"garbage\", expected an object",
            ]
        );
        assert_eq!(n.quarantined[8].index, Some(8));
        assert_eq!(n.quarantined[0].job, "led-kzn");
    }

    #[test]
    fn error_envelope_and_malformed_bodies_are_clear_errors_naming_the_job() {
        let (_, q) = v3_job();
        let err = parse(
            &q,
            br#"{"success":false,"data":null,"error":"Unauthorized"}"#,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job led-kzn: upstream reported an error: Unauthorized"
        );
        let err = parse(&q, b"<html>502 Bad Gateway</html>", now()).unwrap_err();
        assert!(matches!(err, ResponseError::NotJson { .. }));
        assert!(
            err.to_string()
                .starts_with("job led-kzn: upstream body is not JSON"),
            "{err}"
        );
        let err = parse(&q, br#"{"success":true,"data":[{"price":1"#, now()).unwrap_err();
        assert!(matches!(err, ResponseError::NotJson { .. }));
        let err = parse(&q, br#"[1,2]"#, now()).unwrap_err();
        assert!(err.to_string().contains("top level is array of 2"), "{err}");
        let err = parse(&q, br#"{"success":true,"data":"none"}"#, now()).unwrap_err();
        assert!(matches!(err, ResponseError::UnexpectedShape { .. }));
        // `data: null` / `{}` = nothing found: not an error.
        assert!(parse(&q, br#"{"success":true,"data":null}"#, now())
            .unwrap()
            .records
            .is_empty());
        assert!(parse(&q, br#"{"success":true,"data":{}}"#, now())
            .unwrap()
            .records
            .is_empty());
    }

    #[test]
    fn the_same_offer_fetched_twice_has_one_id_and_a_new_price_a_new_one() {
        let (_, q) = v3_job();
        let body = |p: u32| {
            json!({"success":true,"data":[{"price":p,"departure_at":"2026-12-05T10:30:00+03:00","airline":"SU","flight_number":1234}]}).to_string()
        };
        let later = now() + chrono::Duration::minutes(5);
        let a = parse(&q, body(4830).as_bytes(), now())
            .unwrap()
            .records
            .remove(0);
        let b = parse(&q, body(4830).as_bytes(), later)
            .unwrap()
            .records
            .remove(0);
        let c = parse(&q, body(4700).as_bytes(), later)
            .unwrap()
            .records
            .remove(0);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.key, c.key);
    }
}
