//! `pricewire chart`: a price-history chart of one or several entities, as PNG and SVG.
//!
//! Each entity is drawn as its stored value holding until the next change (a step line),
//! with the rolling minimum (dashed) and typical value (thin) of one statistics window as
//! the consumer stored them with each change (also holding until the next), and a black
//! marker at each change an alert was sent about. Text is drawn with DejaVu Sans compiled in (plotters' ab_glyph backend), so the
//! chart looks the same on a machine without fonts.
//!
//! The data drawn travels in the files: an iTXt chunk of the PNG and a `<metadata>` element
//! of the SVG hold it as JSON ([`ChartData`]), so a tool (or a test) can check exactly what
//! a chart shows without reading pixels.

use crate::history::Row;
use chrono::{DateTime, Duration as Span, Utc};
use plotters::prelude::*;
use plotters::style::FontStyle;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Keyword of the PNG text chunk and id of the SVG element that carry the chart's data.
pub const DATA_KEYWORD: &str = "pricewire-chart-data";
/// Pixels: wide enough for a month of changes, legible on a laptop screen.
pub const SIZE: (u32, u32) = (1280, 720);
/// Longest key shown in the legend.
const LEGEND_KEY_CHARS: usize = 48;

/// What a chart shows, exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartData {
    pub title: String,
    /// The statistics window of the minimum and typical lines.
    pub window_days: Option<u32>,
    pub series: Vec<SeriesData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesData {
    pub key: String,
    pub kind: String,
    pub currency: Option<String>,
    pub points: Vec<PointData>,
}

/// One stored change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointData {
    pub at: DateTime<Utc>,
    pub price: Decimal,
    pub min: Option<Decimal>,
    pub typical: Option<Decimal>,
    /// Rules whose alert about this change was sent (a marker when any).
    pub rules: Vec<String>,
    /// The change item's sort key.
    pub sk: String,
}

impl ChartData {
    /// One series per entity, in the rows' order (rows are in time order).
    pub fn of(title: impl Into<String>, rows: &[Row]) -> ChartData {
        let mut series: Vec<SeriesData> = Vec::new();
        for r in rows {
            let i = match series
                .iter()
                .position(|s| s.key == r.key && s.kind == r.kind)
            {
                Some(i) => i,
                None => {
                    series.push(SeriesData {
                        key: r.key.clone(),
                        kind: r.kind.clone(),
                        currency: r.currency.clone(),
                        points: Vec::new(),
                    });
                    series.len() - 1
                }
            };
            series[i].points.push(PointData {
                at: r.at,
                price: r.price,
                min: r.min,
                typical: r.typical,
                rules: r.rules.clone(),
                sk: r.sk.clone(),
            });
        }
        ChartData {
            title: title.into(),
            window_days: rows.iter().find_map(|r| r.window_days),
            series,
        }
    }

    fn points(&self) -> impl Iterator<Item = &PointData> {
        self.series.iter().flat_map(|s| s.points.iter())
    }
}

/// Registers the compiled-in font once (plotters looks fonts up by family name).
fn fonts() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for (style, bytes) in [
                (FontStyle::Normal, dejavu::sans::regular()),
                (FontStyle::Bold, dejavu::sans::bold()),
            ] {
                plotters::style::register_font("sans-serif", style, bytes)
                    .map_err(|_| "the compiled-in DejaVu Sans font cannot be read".to_string())?;
            }
            Ok(())
        })
        .clone()
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// A price axis label: whole numbers for prices in the hundreds and up, else enough
/// decimals for odds and funding rates.
fn price_label(v: f64, span: f64) -> String {
    let decimals = if span >= 100.0 {
        0
    } else if span >= 1.0 {
        2
    } else {
        (-(span.log10().floor()) as usize + 2).min(8)
    };
    format!("{v:.decimals$}")
}

/// A value that holds from one change to the next (and the last until `end`) as the
/// corners of a step line; points without a value are skipped.
fn steps(
    points: impl Iterator<Item = (DateTime<Utc>, Option<Decimal>)>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, f64)> {
    let mut out: Vec<(DateTime<Utc>, f64)> = Vec::new();
    for (at, v) in points {
        let Some(v) = v else { continue };
        if let Some(&(_, before)) = out.last() {
            out.push((at, before));
        }
        out.push((at, f(v)));
    }
    if let Some(&(_, last)) = out.last() {
        out.push((end, last));
    }
    out
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
    until: Option<DateTime<Utc>>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("drawing the chart: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let first = data
        .points()
        .map(|p| p.at)
        .min()
        .ok_or("nothing to chart: no stored changes in the range")?;
    let last = data.points().map(|p| p.at).max().unwrap_or(first);
    // The last value holds to the range's end when one was asked for, else a little past
    // the last change (a chart of the data, not of empty time).
    let stored = (last - first).max(Span::minutes(1));
    let end = until.map_or(last + stored / 20, |u| u.max(last));
    let span = (end - first).max(Span::minutes(1));
    let (x0, x1) = (first - span / 50, end + span / 50);
    let values: Vec<f64> = data
        .points()
        .flat_map(|p| [Some(p.price), p.min, p.typical])
        .flatten()
        .map(f)
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-9);
    let (y0, y1) = (lo - pad, hi + pad);
    let currencies: Vec<&str> = {
        let mut c: Vec<&str> = data
            .series
            .iter()
            .filter_map(|s| s.currency.as_deref())
            .collect();
        c.sort();
        c.dedup();
        c
    };
    let y_desc = if currencies.is_empty() {
        "value".to_string()
    } else {
        format!("price ({})", currencies.join(", "))
    };
    let x_format = if span > Span::days(3) {
        "%d %b"
    } else if span > Span::hours(1) {
        "%d %b %H:%M"
    } else {
        "%H:%M:%S"
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            &data.title,
            ("sans-serif", 26).into_font().style(FontStyle::Bold),
        )
        .margin(16)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(84)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(246, 246, 246))
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|t: &DateTime<Utc>| t.format(x_format).to_string())
        .y_label_formatter(&|v: &f64| price_label(*v, y1 - y0))
        .x_desc("time (UTC)")
        .y_desc(y_desc)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(e)?;
    let window = data.window_days.map_or(String::new(), |d| format!(" {d}d"));
    for (i, s) in data.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let key: String = s.key.chars().take(LEGEND_KEY_CHARS).collect();
        chart
            .draw_series(LineSeries::new(
                steps(s.points.iter().map(|p| (p.at, Some(p.price))), end),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(key.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        let mins = steps(s.points.iter().map(|p| (p.at, p.min)), end);
        if !mins.is_empty() {
            chart
                .draw_series(DashedLineSeries::new(
                    mins,
                    6,
                    4,
                    color.mix(0.8).stroke_width(1),
                ))
                .map_err(e)?;
        }
        let typical = steps(s.points.iter().map(|p| (p.at, p.typical)), end);
        if !typical.is_empty() {
            chart
                .draw_series(LineSeries::new(typical, color.mix(0.45).stroke_width(1)))
                .map_err(e)?;
        }
    }
    // One legend entry each for the statistics lines, drawn in each entity's colour.
    let grey = RGBColor(110, 110, 110);
    if data.points().any(|p| p.min.is_some()) {
        chart
            .draw_series(std::iter::empty::<PathElement<(DateTime<Utc>, f64)>>())
            .map_err(e)?
            .label(format!("minimum{window} (dashed)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 8, y)], grey.stroke_width(1)));
    }
    if data.points().any(|p| p.typical.is_some()) {
        chart
            .draw_series(std::iter::empty::<PathElement<(DateTime<Utc>, f64)>>())
            .map_err(e)?
            .label(format!("typical{window} (thin)"))
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], grey.mix(0.5).stroke_width(1))
            });
    }
    let alerts: Vec<(DateTime<Utc>, f64)> = data
        .points()
        .filter(|p| !p.rules.is_empty())
        .map(|p| (p.at, f(p.price)))
        .collect();
    if !alerts.is_empty() {
        chart
            .draw_series(
                alerts
                    .into_iter()
                    .map(|c| TriangleMarker::new(c, 9, BLACK.filled())),
            )
            .map_err(e)?
            .label("alert sent")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// The chart as an SVG document, its data in `<metadata id="pricewire-chart-data">`.
pub fn svg(data: &ChartData, until: Option<DateTime<Utc>>) -> Result<String, String> {
    fonts()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(root, data, until)?;
    }
    let json = serde_json::to_string(data).map_err(|e| e.to_string())?;
    let escaped = json
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let open = out
        .find("<svg")
        .and_then(|i| out[i..].find('>').map(|j| i + j + 1))
        .ok_or("the SVG backend wrote no <svg> element")?;
    out.insert_str(
        open,
        &format!("\n<metadata id=\"{DATA_KEYWORD}\">{escaped}</metadata>"),
    );
    Ok(out)
}

/// The chart as a PNG image, its data in an iTXt chunk `pricewire-chart-data`.
pub fn png(data: &ChartData, until: Option<DateTime<Utc>>) -> Result<Vec<u8>, String> {
    fonts()?;
    let (w, h) = SIZE;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        draw(root, data, until)?;
    }
    let json = serde_json::to_string(data).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut out, w, h);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        enc.add_itxt_chunk(DATA_KEYWORD.to_string(), json)
            .map_err(|e| format!("PNG: {e}"))?;
        let mut writer = enc.write_header().map_err(|e| format!("PNG: {e}"))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| format!("PNG: {e}"))?;
    }
    Ok(out)
}

/// The data a pricewire PNG carries, and its size in pixels.
pub fn data_of_png(bytes: &[u8]) -> Result<(ChartData, (u32, u32)), String> {
    let decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(|e| format!("PNG: {e}"))?;
    // Text chunks after the image data are read with the rest of the file.
    let mut pixels = vec![0u8; reader.output_buffer_size().unwrap_or(0)];
    reader
        .next_frame(&mut pixels)
        .map_err(|e| format!("PNG: {e}"))?;
    reader.finish().map_err(|e| format!("PNG: {e}"))?;
    let info = reader.info();
    let chunk = info
        .utf8_text
        .iter()
        .find(|c| c.keyword == DATA_KEYWORD)
        .ok_or("the PNG carries no pricewire chart data")?;
    let text = chunk.get_text().map_err(|e| format!("PNG: {e}"))?;
    let data = serde_json::from_str(&text).map_err(|e| format!("PNG chart data: {e}"))?;
    Ok((data, (info.width, info.height)))
}

/// The data a pricewire SVG carries.
pub fn data_of_svg(text: &str) -> Result<ChartData, String> {
    let open = format!("<metadata id=\"{DATA_KEYWORD}\">");
    let start = text
        .find(&open)
        .map(|i| i + open.len())
        .ok_or("the SVG carries no pricewire chart data")?;
    let end = text[start..]
        .find("</metadata>")
        .map(|j| start + j)
        .ok_or("the SVG's chart data is not closed")?;
    let json = text[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).map_err(|e| format!("SVG chart data: {e}"))
}

/// Writes `<stem>.png` and `<stem>.svg`; returns their paths. `until`: where the time
/// axis ends (the last value holds to it); default just past the last change.
pub fn write(
    data: &ChartData,
    until: Option<DateTime<Utc>>,
    stem: &Path,
) -> Result<(PathBuf, PathBuf), String> {
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let png_path = stem.with_extension("png");
    let svg_path = stem.with_extension("svg");
    std::fs::write(&png_path, png(data, until)?)
        .map_err(|e| format!("{}: {e}", png_path.display()))?;
    std::fs::write(&svg_path, svg(data, until)?)
        .map_err(|e| format!("{}: {e}", svg_path.display()))?;
    Ok((png_path, svg_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn row(key: &str, minutes: i64, price: &str, rules: &[&str]) -> Row {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        Row {
            key: key.into(),
            kind: "flight_price".into(),
            at: DateTime::from_timestamp(1_764_000_000 + minutes * 60, 0).unwrap(),
            price: d(price),
            currency: Some("RUB".into()),
            previous: None,
            change: None,
            change_percent: None,
            window_days: Some(30),
            min: Some(d("4000")),
            typical: Some(d("5200")),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            flag: None,
            sk: format!("T#{minutes:013}"),
            id: String::new(),
        }
    }

    fn data() -> ChartData {
        ChartData::of(
            "LED-KZN <&> fares",
            &[
                row("LED-KZN/2026-12-24/oneway", 0, "5000", &[]),
                row("LED-KZN/2026-12-25/oneway", 5, "6100", &[]),
                row("LED-KZN/2026-12-24/oneway", 60, "4200", &["drop", "low"]),
            ],
        )
    }

    #[test]
    fn rows_become_one_series_per_entity() {
        let d = data();
        assert_eq!(d.series.len(), 2);
        assert_eq!(d.series[0].points.len(), 2);
        assert_eq!(d.series[0].points[1].rules, ["drop", "low"]);
        assert_eq!(d.window_days, Some(30));
    }

    #[test]
    fn the_png_is_a_png_of_the_chart_size_carrying_its_data() {
        let d = data();
        let bytes = png(&d, Some(d.series[0].points[1].at)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (back, size) = data_of_png(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(size, SIZE);
    }

    #[test]
    fn the_svg_is_svg_carrying_its_data_escaped() {
        let d = data();
        let text = svg(&d, Some(Utc::now())).unwrap();
        assert!(text.contains("<svg"), "{}", &text[..200.min(text.len())]);
        assert!(
            text.contains("LED-KZN &lt;&amp;&gt; fares"),
            "the title is escaped"
        );
        assert!(text.trim_end().ends_with("</svg>"));
        assert_eq!(data_of_svg(&text).unwrap(), d);
    }

    #[test]
    fn nothing_to_chart_is_an_error_not_an_empty_picture() {
        let empty = ChartData::of("x", &[]);
        assert!(png(&empty, None).unwrap_err().contains("nothing to chart"));
    }

    #[test]
    fn values_hold_until_the_next_change_and_the_last_until_the_end() {
        let t = |m: i64| DateTime::from_timestamp(m * 60, 0).unwrap();
        let d = |v: i64| Some(Decimal::from(v));
        let corners = steps([(t(0), d(5)), (t(1), None), (t(2), d(3))].into_iter(), t(9));
        assert_eq!(
            corners,
            [(t(0), 5.0), (t(2), 5.0), (t(2), 3.0), (t(9), 3.0)],
            "a point without a value is skipped"
        );
    }

    #[test]
    fn price_labels_fit_the_scale() {
        assert_eq!(price_label(4830.4, 2000.0), "4830");
        assert_eq!(price_label(2.104, 1.5), "2.10");
        assert_eq!(price_label(0.000123, 0.0003), "0.000123");
    }
}
