//! Alert messages: the deal, for a phone (one SMS segment) and for a mailbox (everything),
//! one layout per record kind.

use crate::gsm;
use chrono::{DateTime, NaiveDate};
use pricewire_pipeline::envelope::{
    Candle, Envelope, FlightPrice, FundingRate, Instrument, OddsQuote, OpenInterest, Payload, Price,
};
use pricewire_pipeline::table;
use rust_decimal::Decimal;
use serde::Serialize;

/// SNS e-mail subjects: at most 100 printable ASCII characters.
const SUBJECT_MAX_CHARS: usize = 100;

/// What is published for one (rule, record) match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub rule: String,
    pub source: String,
    pub kind: String,
    pub key: String,
    pub record_id: String,
    /// The change this alert is about: the entity's partition key and its change item's
    /// sort key (set by the alerter from the stream record).
    pub entity: String,
    pub change: String,
    /// What the record is about, as subscribers name it: a route (`LED-KZN`), a symbol
    /// (`BTCUSDT`), a sport key (`basketball_nba`), a generic record's key.
    pub about: String,
    /// The deal in one SMS segment.
    pub sms: String,
    /// The deal in full, for e-mail and other subscribers.
    pub text: String,
    pub subject: String,
}

/// "2026-12-05" → "05 Dec"; "2026-12-05T10:30:00+03:00" → "05 Dec 10:30"; else as given.
fn short_date(v: &str) -> String {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return t.format("%d %b %H:%M").to_string();
    }
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) => d.format("%d %b").to_string(),
        Err(_) => v.to_string(),
    }
}

fn stops(transfers: Option<u32>) -> Option<String> {
    match transfers {
        Some(0) => Some("direct".into()),
        Some(1) => Some("1 stop".into()),
        Some(n) => Some(format!("{n} stops")),
        None => None,
    }
}

fn seller(f: &FlightPrice) -> Option<String> {
    match (&f.gate, &f.carrier, &f.flight_number) {
        (Some(g), _, _) => Some(g.clone()),
        (None, Some(c), Some(n)) => Some(format!("{c}{n}")),
        (None, Some(c), None) => Some(c.clone()),
        _ => None,
    }
}

fn dates(f: &FlightPrice) -> String {
    match &f.return_at {
        Some(r) => format!("{}-{}", short_date(&f.departure_at), short_date(r)),
        None => short_date(&f.departure_at),
    }
}

/// The first variant that fits one SMS segment, else the last one cut to fit.
fn first_fitting(variants: &[String]) -> String {
    if let Some(v) = variants.iter().find(|v| gsm::fits_one_segment(v)) {
        return v.clone();
    }
    let mut cut = variants.last().cloned().unwrap_or_default();
    while !gsm::fits_one_segment(&cut) {
        cut.pop();
    }
    cut
}

/// The SMS text: the most complete variant that fits one segment. Variants drop, in order,
/// the link's query string, the link, the seller, the stops; the last resort is cut to fit.
pub fn sms_text(f: &FlightPrice) -> String {
    let route = format!("{}-{}", f.origin, f.destination);
    let head = format!("{route} {} {}", dates(f), f.price);
    let stops = stops(f.transfers);
    let link_full = f.link.clone();
    let link_short = f
        .link
        .as_ref()
        .map(|l| l.split('?').next().unwrap_or(l).to_string());
    let compose = |with_seller: bool, stops_on: bool, link: &Option<String>| {
        let mut parts = vec![head.clone()];
        if with_seller {
            parts.extend(seller(f));
        }
        if stops_on {
            parts.extend(stops.clone());
        }
        let mut text = parts.join(", ");
        if let Some(l) = link {
            text.push(' ');
            text.push_str(l);
        }
        text
    };
    first_fitting(&[
        compose(true, true, &link_full),
        compose(true, true, &link_short),
        compose(true, true, &None),
        compose(false, true, &None),
        compose(false, false, &None),
        head.clone(),
    ])
}

fn full_text(rule: &str, e: &Envelope, f: &FlightPrice) -> String {
    let mut lines = vec![
        format!("{}-{}: {}", f.origin, f.destination, f.price),
        format!("Departure: {}", f.departure_at),
    ];
    if let Some(r) = &f.return_at {
        lines.push(format!("Return: {r}"));
    }
    if let Some(s) = seller(f) {
        lines.push(format!("Carrier/gate: {s}"));
    }
    if let Some(s) = stops(f.transfers) {
        lines.push(format!("Transfers: {s}"));
    }
    if let Some(l) = &f.link {
        lines.push(format!("Link: {l}"));
    }
    lines.push(String::new());
    lines.push(format!("Rule: {rule}"));
    lines.push(format!(
        "Observed: {} (record {}, job {})",
        e.observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        e.id,
        e.job
    ));
    lines.join("\n")
}

fn subject(f: &FlightPrice) -> String {
    ascii_subject(format!(
        "pricewire: {}-{} {} {}",
        f.origin,
        f.destination,
        dates(f),
        f.price
    ))
}

fn ascii_subject(s: String) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(SUBJECT_MAX_CHARS)
        .collect()
}

/// "Lakers v Celtics", else the event id.
fn event_name(q: &OddsQuote) -> String {
    match (&q.home_team, &q.away_team) {
        (Some(h), Some(a)) => format!("{h} v {a}"),
        _ => q.event_id.clone(),
    }
}

/// "Lakers -3.5 @ 1.91", "Over 228.5 @ 1.87", "Lakers @ 2.15".
fn quote_line(q: &OddsQuote) -> String {
    match q.point {
        Some(p) => format!("{} {} @ {}", q.outcome, p.normalize(), q.price.normalize()),
        None => format!("{} @ {}", q.outcome, q.price.normalize()),
    }
}

/// The odds SMS: sport, event, start, the quote, market and bookmaker; dropping, in order,
/// the bookmaker's title for its key, the market, the sport, the start.
pub fn odds_sms_text(q: &OddsQuote) -> String {
    let sport = q.sport_title.as_deref().unwrap_or(&q.sport);
    let event = event_name(q);
    let when = short_date(&q.commence_time);
    let book = q.bookmaker_title.as_deref().unwrap_or(&q.bookmaker);
    let line = quote_line(q);
    first_fitting(&[
        format!("{sport} {event} {when}: {line} ({}), {book}", q.market),
        format!(
            "{sport} {event} {when}: {line} ({}), {}",
            q.market, q.bookmaker
        ),
        format!("{sport} {event} {when}: {line}, {}", q.bookmaker),
        format!("{event} {when}: {line}, {}", q.bookmaker),
        format!("{event}: {line}"),
        line,
    ])
}

fn odds_full_text(rule: &str, e: &Envelope, q: &OddsQuote) -> String {
    let mut lines = vec![
        format!("{}: {}", event_name(q), quote_line(q)),
        format!(
            "Sport: {}{}",
            q.sport,
            q.sport_title
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ),
        format!("Starts: {}", q.commence_time),
        format!("Market: {}", q.market),
        format!(
            "Bookmaker: {}",
            q.bookmaker_title.as_deref().unwrap_or(&q.bookmaker)
        ),
        format!(
            "Implied probability: {:.1} %",
            100.0 / q.price.to_string().parse::<f64>().unwrap_or(f64::INFINITY)
        ),
        String::new(),
        format!("Rule: {rule}"),
    ];
    lines.push(format!(
        "Observed: {} (record {}, job {})",
        e.observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        e.id,
        e.job
    ));
    lines.join("\n")
}

/// "Binance BTCUSDT perp", "Bybit ETHUSDT spot".
fn instrument_name(i: &Instrument) -> String {
    let exchange = match i.exchange.as_str() {
        "binance" => "Binance",
        "bybit" => "Bybit",
        other => other,
    };
    let market = match i.market.as_str() {
        "linear" => "perp",
        other => other,
    };
    format!("{exchange} {} {market}", i.symbol)
}

/// `+5.20%`, `-0.0125%`: a signed percentage with no trailing zeros beyond two places.
fn signed_percent(part: Decimal, whole: Decimal) -> String {
    if whole.is_zero() {
        return "n/a".into();
    }
    let p = (part * Decimal::ONE_HUNDRED / whole)
        .round_dp(2)
        .normalize();
    if p.is_sign_negative() {
        format!("{p}%")
    } else {
        format!("+{p}%")
    }
}

fn utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%d %b %H:%M UTC").to_string()
}

/// "Binance BTCUSDT perp 1h 01 Dec 09:00 UTC: close 67321.5 (+1.2%), H 67500 L 66100";
/// dropping, in order, the high and low, the time, the exchange's market.
pub fn candle_sms_text(c: &Candle) -> String {
    let name = instrument_name(&c.instrument);
    let interval = match &c.derived_from {
        Some(from) => format!("{} (from {from})", c.interval),
        None => c.interval.clone(),
    };
    let change = signed_percent(c.close - c.open, c.open);
    let close = format!("close {} ({change})", c.close.normalize());
    first_fitting(&[
        format!(
            "{name} {interval} {}: {close}, H {} L {}",
            utc(c.open_time),
            c.high.normalize(),
            c.low.normalize()
        ),
        format!("{name} {interval} {}: {close}", utc(c.open_time)),
        format!("{name} {interval}: {close}"),
        format!("{} {}: {close}", c.instrument.symbol, c.interval),
    ])
}

/// "Binance BTCUSDT perp funding -0.012% at 01 Dec 08:00 UTC (mark 67000.1)".
pub fn funding_sms_text(f: &FundingRate) -> String {
    let name = instrument_name(&f.instrument);
    let rate = format!("{}%", (f.rate * Decimal::ONE_HUNDRED).normalize());
    let mark = f
        .mark_price
        .map(|m| format!(" (mark {})", m.normalize()))
        .unwrap_or_default();
    first_fitting(&[
        format!("{name} funding {rate} at {}{mark}", utc(f.funding_time)),
        format!("{name} funding {rate} at {}", utc(f.funding_time)),
        format!("{} funding {rate}", f.instrument.symbol),
    ])
}

/// "Bybit BTCUSDT perp open interest 81234.5 (value 5.4e9) at 01 Dec 09:00 UTC, 1h".
pub fn open_interest_sms_text(o: &OpenInterest) -> String {
    let name = instrument_name(&o.instrument);
    let value = o
        .value
        .map(|v| format!(", value {}", v.round_dp(0).normalize()))
        .unwrap_or_default();
    first_fitting(&[
        format!(
            "{name} open interest {}{value} at {} ({})",
            o.open_interest.normalize(),
            utc(o.timestamp),
            o.period
        ),
        format!(
            "{name} open interest {} at {}",
            o.open_interest.normalize(),
            utc(o.timestamp)
        ),
        format!("{} OI {}", o.instrument.symbol, o.open_interest.normalize()),
    ])
}

/// "Sencha (paris/nord, 1001): 12.3 EUR": a generic source's record, its name and key.
pub fn price_sms_text(e: &Envelope, p: &Price) -> String {
    let price = match &p.currency {
        Some(c) => format!("{} {c}", p.price.normalize()),
        None => p.price.normalize().to_string(),
    };
    // The key's parts as the source wrote them (`paris/nord, B-12`), not escaped.
    let what = e
        .key
        .split('/')
        .map(|part| part.replace("%2F", "/").replace("%25", "%"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut variants = vec![];
    if let Some(name) = &p.name {
        variants.push(format!("{name} ({what}): {price}"));
        variants.push(format!("{name}: {price}"));
    }
    variants.push(format!("{what}: {price}"));
    variants.push(price);
    first_fitting(&variants)
}

/// SMS, full text and subject of a market or generic record.
fn market_texts(rule: &str, e: &Envelope, sms: String) -> (String, String, String) {
    let text = market_full_text(rule, e, &sms);
    let subject = ascii_subject(format!("pricewire: {sms}"));
    (sms, text, subject)
}

fn market_full_text(rule: &str, e: &Envelope, sms: &str) -> String {
    let fields = serde_json::to_value(&e.payload)
        .ok()
        .and_then(|v| v.get("fields").cloned())
        .and_then(|f| f.as_object().cloned())
        .unwrap_or_default();
    let mut lines = vec![sms.to_string(), String::new()];
    for (k, v) in fields {
        let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        lines.push(format!("{k}: {shown}"));
    }
    lines.push(String::new());
    lines.push(format!("Rule: {rule}"));
    lines.push(format!(
        "Observed: {} (record {}, job {})",
        e.observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        e.id,
        e.job
    ));
    lines.join("\n")
}

/// What a record is about, as subscribers name it (SNS attribute `subject`).
pub fn subject_of(e: &Envelope) -> String {
    match &e.payload {
        Payload::FlightPrice(f) => format!("{}-{}", f.origin, f.destination),
        Payload::OddsQuote(q) => q.sport.clone(),
        Payload::Candle(c) => c.instrument.symbol.clone(),
        Payload::FundingRate(f) => f.instrument.symbol.clone(),
        Payload::OpenInterest(o) => o.instrument.symbol.clone(),
        Payload::Price(_) => e.key.clone(),
    }
}

pub fn alert(rule: &str, e: &Envelope) -> Alert {
    let (sms, text, subject) = match &e.payload {
        Payload::FlightPrice(f) => (sms_text(f), full_text(rule, e, f), subject(f)),
        Payload::OddsQuote(q) => (
            odds_sms_text(q),
            odds_full_text(rule, e, q),
            ascii_subject(format!("pricewire: {}: {}", event_name(q), quote_line(q))),
        ),
        Payload::Candle(c) => market_texts(rule, e, candle_sms_text(c)),
        Payload::FundingRate(f) => market_texts(rule, e, funding_sms_text(f)),
        Payload::OpenInterest(o) => market_texts(rule, e, open_interest_sms_text(o)),
        Payload::Price(p) => market_texts(rule, e, price_sms_text(e, p)),
    };
    Alert {
        rule: rule.to_string(),
        source: e.source.clone(),
        kind: e.kind().to_string(),
        key: e.key.clone(),
        record_id: e.id.clone(),
        entity: table::entity_pk(e),
        change: table::change_sk(e),
        about: subject_of(e),
        sms,
        text,
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gsm::{measure, Encoding};
    use pricewire_pipeline::envelope::Money;
    use pricewire_pipeline::limits::{SMS_GSM7_SEGMENT_SEPTETS, SMS_UCS2_SEGMENT_UNITS};

    fn offer(gate: Option<&str>, link: Option<&str>) -> FlightPrice {
        FlightPrice {
            origin: "LED".into(),
            destination: "KZN".into(),
            departure_at: "2026-12-05T10:30:00+03:00".into(),
            return_at: Some("2026-12-10".into()),
            price: Money {
                amount: "4830".parse().unwrap(),
                currency: "RUB".into(),
            },
            carrier: Some("SU".into()),
            flight_number: Some("1234".into()),
            gate: gate.map(str::to_string),
            transfers: Some(0),
            duration_minutes: None,
            trip_class: None,
            distance_km: None,
            actual: None,
            link: link.map(str::to_string),
        }
    }

    #[test]
    fn gsm7_message_carries_the_deal_in_one_segment() {
        let text = sms_text(&offer(
            Some("Aeroflot"),
            Some("https://www.aviasales.com/search/LED0512KZN10121"),
        ));
        assert_eq!(text, "LED-KZN 05 Dec 10:30-10 Dec 4830 RUB, Aeroflot, direct https://www.aviasales.com/search/LED0512KZN10121");
        let (enc, n) = measure(&text);
        assert_eq!(enc, Encoding::Gsm7);
        assert!(n <= SMS_GSM7_SEGMENT_SEPTETS);
    }

    #[test]
    fn long_links_lose_their_query_string_first() {
        let long = format!(
            "https://www.aviasales.com/search/LED0512KZN10121?t={}",
            "X".repeat(120)
        );
        let text = sms_text(&offer(None, Some(&long)));
        assert_eq!(text, "LED-KZN 05 Dec 10:30-10 Dec 4830 RUB, SU1234, direct https://www.aviasales.com/search/LED0512KZN10121");
    }

    #[test]
    fn non_gsm_text_fits_seventy_units() {
        let text = sms_text(&offer(
            Some("Аэрофлот"),
            Some("https://www.aviasales.com/search/LED0512KZN10121"),
        ));
        let (enc, n) = measure(&text);
        assert_eq!(enc, Encoding::Ucs2, "{text}");
        assert!(n <= SMS_UCS2_SEGMENT_UNITS, "{n}: {text}");
        assert!(
            text.contains("4830 RUB") && text.contains("Аэрофлот") && text.contains("LED-KZN"),
            "{text}"
        );
        // Even an absurd seller name cannot push it past one segment.
        let text = sms_text(&offer(Some(&"Ж".repeat(200)), None));
        assert!(gsm::fits_one_segment(&text), "{text}");
        assert!(
            text.starts_with("LED-KZN 05 Dec 10:30-10 Dec 4830 RUB"),
            "{text}"
        );
    }

    fn quote(home: &str, title: Option<&str>) -> OddsQuote {
        OddsQuote {
            sport: "basketball_nba".into(),
            sport_title: Some("NBA".into()),
            event_id: "e1".into(),
            commence_time: "2026-12-02T00:30:00Z".into(),
            home_team: Some(home.into()),
            away_team: Some("Boston Celtics".into()),
            bookmaker: "draftkings".into(),
            bookmaker_title: title.map(str::to_string),
            market: "spreads".into(),
            outcome: home.into(),
            price: "1.91".parse().unwrap(),
            point: Some("-3.5".parse().unwrap()),
        }
    }

    #[test]
    fn an_odds_alert_fits_one_segment_with_the_quote_first() {
        let text = odds_sms_text(&quote("Los Angeles Lakers", Some("DraftKings")));
        assert_eq!(
            text,
            "NBA Los Angeles Lakers v Boston Celtics 02 Dec 00:30: Los Angeles Lakers -3.5 @ 1.91 (spreads), DraftKings"
        );
        assert!(gsm::fits_one_segment(&text));
        let long = odds_sms_text(&quote(&"Ж".repeat(40), Some("Букмекер")));
        assert!(gsm::fits_one_segment(&long), "{long}");
        assert!(long.contains("@ 1.91"), "the price survives: {long}");
        let e = Envelope::new(
            "odds",
            "nba",
            "k".into(),
            None,
            chrono::Utc::now(),
            Payload::OddsQuote(quote("Lakers", None)),
        );
        let a = alert("spread-move", &e);
        assert_eq!(a.kind, "odds_quote");
        assert!(a.text.contains("Implied probability: 52.4 %"), "{}", a.text);
        assert_eq!(
            a.subject,
            "pricewire: Lakers v Boston Celtics: Lakers -3.5 @ 1.91"
        );
    }

    #[test]
    fn full_alert_has_everything_and_an_ascii_subject() {
        let e = Envelope::new(
            "travelpayouts",
            "led-kzn",
            "K".into(),
            None,
            chrono::Utc::now(),
            Payload::FlightPrice(offer(Some("Аэрофлот"), Some("https://x/y?t=1"))),
        );
        let a = alert("cheap", &e);
        assert!(
            a.text.contains("Link: https://x/y?t=1") && a.text.contains("Rule: cheap"),
            "{}",
            a.text
        );
        assert!(
            a.subject.is_ascii() && a.subject.starts_with("pricewire: LED-KZN"),
            "{}",
            a.subject
        );
        assert_eq!(a.record_id, e.id);
    }

    #[test]
    fn market_texts_fit_one_segment_and_say_what_moved() {
        use pricewire_pipeline::envelope::{Candle, FundingRate, Instrument, OpenInterest};
        let i = Instrument {
            exchange: "binance".into(),
            market: "linear".into(),
            symbol: "BTCUSDT".into(),
        };
        let t = chrono::DateTime::from_timestamp_millis(1_796_115_600_000).unwrap();
        let c = Candle {
            instrument: i.clone(),
            interval: "8h".into(),
            open_time: t,
            open: "66000".parse().unwrap(),
            high: "67500.25".parse().unwrap(),
            low: "65900".parse().unwrap(),
            close: "67321.50".parse().unwrap(),
            volume: "10".parse().unwrap(),
            quote_volume: None,
            trades: None,
            derived_from: Some("4h".into()),
        };
        let sms = candle_sms_text(&c);
        assert_eq!(sms, "Binance BTCUSDT perp 8h (from 4h) 01 Dec 09:00 UTC: close 67321.5 (+2%), H 67500.25 L 65900");
        let f = FundingRate {
            instrument: i.clone(),
            rate: "-0.00012".parse().unwrap(),
            funding_time: t,
            mark_price: Some("67000.10".parse().unwrap()),
        };
        assert_eq!(
            funding_sms_text(&f),
            "Binance BTCUSDT perp funding -0.012% at 01 Dec 09:00 UTC (mark 67000.1)"
        );
        let o = OpenInterest {
            instrument: i,
            period: "1h".into(),
            open_interest: "81234.500".parse().unwrap(),
            value: Some("5400000000.25".parse().unwrap()),
            timestamp: t,
        };
        assert_eq!(
            open_interest_sms_text(&o),
            "Binance BTCUSDT perp open interest 81234.5, value 5400000000 at 01 Dec 09:00 UTC (1h)"
        );
        let e = Envelope::new(
            "binance",
            "btc",
            "binance/linear/BTCUSDT/8h".into(),
            Some(t),
            t,
            Payload::Candle(c),
        );
        let a = alert("pump", &e);
        assert!(crate::gsm::fits_one_segment(&a.sms));
        assert!(
            a.text.contains("close: 67321.50") && a.text.contains("Rule: pump"),
            "{}",
            a.text
        );
        assert!(a.subject.starts_with("pricewire: Binance BTCUSDT"));
    }

    #[test]
    fn a_generic_price_text_shows_its_name_and_key_as_written() {
        let p = Price {
            price: "12.30".parse().unwrap(),
            currency: Some("EUR".into()),
            name: Some("Sencha".into()),
            attributes: Default::default(),
        };
        let e = Envelope::new(
            "shop",
            "tea",
            "paris%2Fnord/1001".into(),
            None,
            chrono::Utc::now(),
            Payload::Price(p.clone()),
        );
        assert_eq!(
            price_sms_text(&e, &p),
            "Sencha (paris/nord, 1001): 12.3 EUR"
        );
    }
}
