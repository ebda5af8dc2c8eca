//! The ratio chart: nestbox/Dovecot per workload, one series per mailbox size, as an SVG.
//!
//! Owns turning ratios (from a finished run, or from results JSON written earlier) into a dot
//! plot on a log scale with the 1.0 line ("as fast as Dovecot"), and checking a written chart
//! (well-formed SVG, one mark per workload and series, every workload named). It never
//! measures anything and never decides pass/fail on a ratio: `--check` fails on a chart that
//! is malformed or misses a mark, not on what the marks say.
//!
//! Drawn with plotters' SVG backend and nothing else (no font loading: text is written as
//! SVG `<text>` for the viewer to render; plotters only estimates its width for the layout).
//! Axis ticks and labels are placed here rather than by plotters' mesh, whose log-scale key
//! points are not the 1-2-5 steps a reader expects.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::workload::Outcome;

/// Ratios of one candidate against one baseline at one mailbox size.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Messages in INBOX.
    pub messages: usize,
    /// Server labels, e.g. `nestbox` against `dovecot`.
    pub cand: String,
    pub base: String,
    /// Workload name and ratio candidate/baseline, in the run's order.
    pub points: Vec<(String, f64)>,
}

impl Series {
    /// "10k messages" (and the pair when it is not the usual one).
    fn label(&self) -> String {
        let n = self.messages;
        let size = if n >= 1000 && n.is_multiple_of(1000) {
            format!("{}k", n / 1000)
        } else {
            n.to_string()
        };
        if self.cand == "nestbox" && self.base == "dovecot" {
            format!("{size} messages")
        } else {
            format!("{size} messages, {}/{}", self.cand, self.base)
        }
    }
}

/// The series of a finished run: one per server after the first (the baseline).
pub fn from_outcomes(messages: usize, results: &[(String, Outcome)]) -> Vec<Series> {
    let Some((bn, base)) = results.first() else {
        return Vec::new();
    };
    results[1..]
        .iter()
        .map(|(cn, c)| Series {
            messages,
            cand: cn.clone(),
            base: bn.clone(),
            points: c
                .measures
                .iter()
                .filter_map(|m| crate::ratio(base, c, &m.name).map(|r| (m.name.clone(), r)))
                .filter(|(_, r)| r.is_finite())
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// The series of a results JSON written by `run --json`: its `ratios` object, whose keys are
/// `workload (cand/base)`, and `corpus.messages`. The rows keep the run's order, taken from
/// the servers' `measures` arrays (serde_json's map is sorted by key).
pub fn from_json(text: &str) -> Result<Vec<Series>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let messages = v["corpus"]["messages"]
        .as_u64()
        .ok_or("no corpus.messages")? as usize;
    let ratios = v["ratios"].as_object().ok_or("no ratios object")?;
    let mut order: Vec<&str> = Vec::new();
    for s in v["servers"].as_array().into_iter().flatten() {
        for m in s["measures"].as_array().into_iter().flatten() {
            if let Some(n) = m["name"].as_str()
                && !order.contains(&n)
            {
                order.push(n);
            }
        }
    }
    let mut out: Vec<Series> = Vec::new();
    for (key, val) in ratios {
        // The pair is the last parenthesis: workload names may hold one, `fetch_meta (again)`.
        let (name, pair) = key
            .strip_suffix(')')
            .and_then(|k| k.rsplit_once(" ("))
            .ok_or_else(|| format!("ratio key {key:?} is not `workload (cand/base)`"))?;
        let (cand, base) = pair
            .split_once('/')
            .ok_or_else(|| format!("ratio key {key:?} has no cand/base"))?;
        // `null` is how the run writes a ratio that was not finite: no ratio to draw.
        let Some(r) = val.as_f64().filter(|r| r.is_finite()) else {
            continue;
        };
        match out.iter_mut().find(|s| s.cand == cand && s.base == base) {
            Some(s) => s.points.push((name.to_string(), r)),
            None => out.push(Series {
                messages,
                cand: cand.to_string(),
                base: base.to_string(),
                points: vec![(name.to_string(), r)],
            }),
        }
    }
    if out.is_empty() {
        return Err("no ratios (did only one server run?)".into());
    }
    for s in &mut out {
        // Names the measures do not list (a hand-edited file) go last, in key order.
        s.points
            .sort_by_key(|(n, _)| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
    }
    Ok(out)
}

/// Marker colours per series, in order (blue and orange read apart in grey and for most
/// colour-blind readers; the second series is also drawn hollow).
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x5f, 0xb4),
    RGBColor(0xe0, 0x6c, 0x00),
    RGBColor(0x2a, 0x9d, 0x3f),
    RGBColor(0x8e, 0x3c, 0xb0),
];
const MARK_R: i32 = 5;
const ROW_H: i32 = 20;
const WIDTH: i32 = 1000;
const LABEL_W: i32 = 300;
const VALUES_W: i32 = 150;
const TOP: i32 = 96;
const BOTTOM: i32 = 72;
const FONT: &str = "sans-serif";

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

fn style(i: usize) -> ShapeStyle {
    if i.is_multiple_of(2) {
        colour(i).filled()
    } else {
        colour(i).stroke_width(2)
    }
}

/// The workloads of all series in the runs' order: the first series' rows, with a workload
/// only a later one has placed after the one it follows there.
fn rows(series: &[Series]) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for s in series {
        let mut at = 0;
        for (n, _) in &s.points {
            match rows.iter().position(|r| r == n) {
                Some(i) => at = i + 1,
                None => {
                    rows.insert(at, n.clone());
                    at += 1;
                }
            }
        }
    }
    rows
}

/// A server label as a reader writes it: `Dovecot`, `nestbox`.
fn shown(label: &str) -> String {
    match label.strip_prefix("dovecot") {
        Some(rest) => format!("Dovecot{rest}"),
        None => label.to_string(),
    }
}

/// 1-2-5 steps: the largest at or below `x` (`down`) or the smallest at or above it.
fn nice(x: f64, down: bool) -> f64 {
    let e = x.log10().floor();
    let p = 10f64.powf(e);
    let steps = [1.0, 2.0, 5.0, 10.0];
    if down {
        steps
            .iter()
            .rev()
            .map(|m| m * p)
            .find(|v| *v <= x * (1.0 + 1e-9))
            .unwrap_or(p)
    } else {
        steps
            .iter()
            .map(|m| m * p)
            .find(|v| *v >= x * (1.0 - 1e-9))
            .unwrap_or(10.0 * p)
    }
}

/// The x range: the data's, widened to 1-2-5 steps, always holding 1.0 with room on both
/// sides, and never below 1e-4 (smaller ratios are drawn at the edge with their value).
fn x_range(series: &[Series]) -> Range<f64> {
    let vals = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|r| r.is_finite() && *r > 0.0);
    let (lo, hi) = vals.fold((0.5f64, 2.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    nice(lo.max(1e-4), true)..nice(hi.min(1e4), false)
}

/// Tick values: every 1, 2 and 5 times a power of ten inside the range.
fn ticks(r: &Range<f64>) -> Vec<f64> {
    let mut out = Vec::new();
    let (lo, hi) = (r.start.log10().floor() as i32, r.end.log10().ceil() as i32);
    for e in lo..=hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if v >= r.start * (1.0 - 1e-9) && v <= r.end * (1.0 + 1e-9) {
                out.push(v);
            }
        }
    }
    out
}

/// A tick label: 1, 2 or 5 times a power of ten, with exactly the digits it needs.
fn fmt_tick(t: f64) -> String {
    let digits = (-t.log10().floor()).max(0.0) as usize;
    format!("{t:.digits$}")
}

/// A ratio as a reader wants it: two significant digits, no exponent.
fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        return "n/a".into();
    }
    if r == 0.0 {
        return "0".into();
    }
    let digits = (1 - r.abs().log10().floor() as i32).max(0) as usize;
    format!("{r:.digits$}")
}

/// Draws the chart. `subtitle` says where the figures come from.
pub fn render(series: &[Series], subtitle: &str) -> Result<String, String> {
    if series.is_empty() {
        return Err("nothing to draw".into());
    }
    let rows = rows(series);
    let n = rows.len();
    let height = TOP + ROW_H * n as i32 + BOTTOM;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH as u32, height as u32)).into_drawing_area();
        draw(&root, series, &rows, subtitle).map_err(|e| format!("drawing the chart: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing the chart: {e}"))?;
    }
    Ok(svg)
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend, Shift>,
    series: &[Series],
    rows: &[String],
    subtitle: &str,
) -> DrawResult {
    root.fill(&WHITE)?;
    let n = rows.len();
    let xr = x_range(series);
    let (cand, base) = (shown(&series[0].cand), shown(&series[0].base));
    let title = format!(
        "{cand} / {base}, per workload: below 1 (left of the line) {cand} is faster, lighter or sends less"
    );
    let text = |s: u32| (FONT, s).into_font().color(&BLACK);
    root.draw(&Text::new(
        title,
        (12, 8),
        text(16).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    root.draw(&Text::new(
        subtitle.to_string(),
        (12, 32),
        text(12)
            .color(&RGBColor(0x55, 0x55, 0x55))
            .pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    // Legend: one mark and label per series.
    let mut lx = 12;
    for (i, s) in series.iter().enumerate() {
        root.draw(&Circle::new((lx + MARK_R, 62), MARK_R, style(i)))?;
        let l = s.label();
        root.draw(&Text::new(
            l.clone(),
            (lx + 3 * MARK_R, 62),
            text(13).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        lx += 3 * MARK_R + 8 * l.len() as i32 + 24;
    }
    root.draw(&Text::new(
        format!("log scale; each row is one workload's time (or memory, or bytes) with {cand} divided by that with {base}, same run, same machine"),
        (12, 78),
        text(11).color(&RGBColor(0x55, 0x55, 0x55)).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;

    let plot_x = LABEL_W..(WIDTH - VALUES_W);
    let plot_y = TOP..(TOP + ROW_H * n as i32);
    let area = root.margin(
        plot_y.start,
        root.dim_in_pixel().1 as i32 - plot_y.end,
        plot_x.start,
        WIDTH - plot_x.end,
    );
    let mut chart =
        ChartBuilder::on(&area).build_cartesian_2d(xr.clone().log_scale(), 0f64..n as f64)?;
    let grid = RGBColor(0xdd, 0xdd, 0xdd);
    // Row bands, every other one shaded, so a mark is read against the right name.
    for i in (0..n).step_by(2) {
        let y = (n - i) as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(xr.start, y), (xr.end, y - 1.0)],
            RGBColor(0xf4, 0xf4, 0xf4).filled(),
        )))?;
    }
    // Ticks and their vertical grid lines, labelled below the plot.
    // Past four decades the 2s and 5s keep their grid lines but lose their labels, which
    // would run into each other.
    let crowded = (xr.end / xr.start).log10() > 4.5;
    for t in ticks(&xr) {
        let major = (t.log10() - t.log10().round()).abs() < 1e-9;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, 0.0), (t, n as f64)],
            if major {
                RGBColor(0xbb, 0xbb, 0xbb)
            } else {
                grid
            }
            .stroke_width(1),
        )))?;
        if crowded && !major {
            continue;
        }
        let (px, _) = chart.backend_coord(&(t, 0.0));
        root.draw(&Text::new(
            fmt_tick(t),
            (px, plot_y.end + 6),
            text(12).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    // The line that matters.
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(2),
    )))?;
    let (one_x, _) = chart.backend_coord(&(1.0, 0.0));
    root.draw(&Text::new(
        format!("1 = as fast as {base}"),
        (one_x, plot_y.end + 24),
        text(12).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    root.draw(&Text::new(
        format!("← {cand} better"),
        (plot_x.start, plot_y.end + 24),
        text(12).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    root.draw(&Text::new(
        format!("{base} better →"),
        (plot_x.end, plot_y.end + 24),
        text(12).pos(Pos::new(HPos::Right, VPos::Top)),
    ))?;
    // Column heads over the values.
    for (j, s) in series.iter().enumerate() {
        let size = s.label();
        let size = size.split(' ').next().unwrap_or("");
        root.draw(&Text::new(
            size.to_string(),
            (plot_x.end + 8 + 64 * j as i32, plot_y.start - 4),
            text(12)
                .color(&colour(j))
                .pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))?;
    }
    // Rows: the name at the left, the marks, the values at the right.
    let k = series.len() as f64;
    for (i, name) in rows.iter().enumerate() {
        let centre = (n - i) as f64 - 0.5;
        let (_, py) = chart.backend_coord(&(1.0, centre));
        root.draw(&Text::new(
            name.clone(),
            (plot_x.start - 8, py),
            text(12).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        for (j, s) in series.iter().enumerate() {
            let Some((_, r)) = s.points.iter().find(|(p, _)| p == name) else {
                continue;
            };
            // Series side by side within the row, so equal ratios do not hide each other.
            let y = centre + 0.4 * ((k - 1.0) / 2.0 - j as f64) / k.max(1.0);
            // Beyond the axis (0 included) the mark sits at its edge; the value column says.
            let x = r.clamp(xr.start, xr.end);
            chart.draw_series(std::iter::once(Circle::new((x, y), MARK_R, style(j))))?;
            root.draw(&Text::new(
                fmt_ratio(*r),
                (plot_x.end + 8 + 64 * j as i32, py),
                text(12)
                    .color(&colour(j))
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}

/// Checks a written chart: well-formed SVG, one mark (circle in the series' colour) per
/// workload of each series plus its legend mark, and every workload named in a `<text>`.
pub fn verify(svg: &str, series: &[Series]) -> Result<(), String> {
    let doc = roxmltree::Document::parse(svg)
        .map_err(|e| format!("chart is not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "svg" {
        return Err(format!(
            "chart's root element is <{}>, not <svg>",
            root.tag_name().name()
        ));
    }
    let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
    // Series past the palette's length share a style with an earlier one: count per style.
    for k in 0..series.len().min(COLOURS.len()) {
        let c = hex(colour(k));
        let attr = if k.is_multiple_of(2) {
            "fill"
        } else {
            "stroke"
        };
        let marks = root
            .descendants()
            .filter(|e| e.has_tag_name("circle"))
            .filter(|e| {
                e.attribute(attr)
                    .is_some_and(|v| v.eq_ignore_ascii_case(&c))
            })
            .count();
        let sharing: Vec<&Series> = series.iter().skip(k).step_by(COLOURS.len()).collect();
        let expected: usize = sharing.iter().map(|s| s.points.len() + 1).sum();
        if marks != expected {
            let names: Vec<String> = sharing.iter().map(|s| s.label()).collect();
            return Err(format!(
                "chart has {marks} marks for {} where {expected} (a mark per workload and a legend mark) were expected",
                names.join(", ")
            ));
        }
    }
    let texts: Vec<&str> = root
        .descendants()
        .filter(|e| e.has_tag_name("text"))
        .filter_map(|e| e.text())
        .map(str::trim)
        .collect();
    if let Some(missing) = rows(series)
        .into_iter()
        .find(|n| !texts.contains(&n.as_str()))
    {
        return Err(format!("chart does not name workload {missing:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_sizes() -> Vec<Series> {
        let mk = |messages, pts: &[(&str, f64)]| Series {
            messages,
            cand: "nestbox".into(),
            base: "dovecot".into(),
            points: pts.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
        };
        vec![
            mk(
                10_000,
                &[
                    ("fetch_meta", 0.14),
                    ("fetch_meta (again)", 0.05),
                    ("rss_after_workloads", 2.9),
                    ("pop3_noop_rtt", 0.87),
                ],
            ),
            // A ratio of 0, one far below the floor and one missing workload (pop3_noop_rtt).
            mk(
                100_000,
                &[
                    ("fetch_meta", 0.12),
                    ("fetch_meta (again)", 0.0),
                    ("rss_after_workloads", 13.6),
                    ("idle_push_median", 1e-7),
                ],
            ),
        ]
    }

    #[test]
    fn chart_has_one_mark_per_workload_and_size() {
        let s = two_sizes();
        let svg = render(&s, "test").unwrap();
        verify(&svg, &s).unwrap();
        // A chart that lost a mark fails the check.
        let mut short = s.clone();
        short[1].points.push(("extra".into(), 0.5));
        assert!(verify(&svg, &short).unwrap_err().contains("marks"));
        // A mark removed from the drawing fails it too.
        let at = svg.rfind("<circle").unwrap();
        let end = at + svg[at..].find("/>").unwrap() + 2;
        let lost = format!("{}{}", &svg[..at], &svg[end..]);
        assert!(verify(&lost, &s).unwrap_err().contains("marks"));
        assert!(
            verify(&svg[..svg.len() / 2], &s)
                .unwrap_err()
                .contains("well-formed")
        );
        assert!(svg.contains("1 = as fast as Dovecot"));
        // pop3_noop_rtt, only in the first series, and idle_push_median, only in the second,
        // keep their places.
        assert_eq!(
            rows(&s),
            [
                "fetch_meta",
                "fetch_meta (again)",
                "rss_after_workloads",
                "idle_push_median",
                "pop3_noop_rtt"
            ]
        );
    }

    #[test]
    fn more_series_than_colours() {
        let mut s = two_sizes();
        s.extend(two_sizes());
        s.extend(two_sizes());
        verify(&render(&s, "six").unwrap(), &s).unwrap();
    }

    #[test]
    fn json_round_trip() {
        let j = r#"{"corpus":{"messages":10000,"seed":1},
          "servers":[{"label":"dovecot","measures":[{"name":"fetch_meta"},{"name":"fetch_meta (again)"},
            {"name":"notify_push_latency_append"}]}],
          "ratios":{
            "fetch_meta (nestbox/dovecot)": 0.147053,
            "fetch_meta (again) (nestbox/dovecot)": 0.054377,
            "notify_push_latency_append (nestbox/dovecot)": null,
            "fetch_meta (dovecot-2/dovecot)": 1.02}}"#;
        let s = from_json(j).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].messages, 10_000);
        assert_eq!(s[0].points[1], ("fetch_meta (again)".to_string(), 0.054377));
        assert_eq!(s[0].points.len(), 2, "the null ratio is not drawn");
        assert_eq!((s[1].cand.as_str(), s[1].points.len()), ("dovecot-2", 1));
        assert!(from_json(r#"{"corpus":{"messages":1},"ratios":{}}"#).is_err());
        assert!(from_json(r#"{"corpus":{"messages":1},"ratios":{"x": 1}}"#).is_err());
        verify(&render(&s, "t").unwrap(), &s).unwrap();
    }

    #[test]
    fn ranges_and_ticks() {
        assert_eq!(nice(0.0025, true), 0.002);
        assert_eq!(nice(13.6, false), 20.0);
        assert_eq!(nice(1.0, false), 1.0);
        let r = x_range(&two_sizes());
        assert_eq!((r.start, r.end), (1e-4, 20.0));
        let t: Vec<String> = ticks(&(0.01..2.0)).into_iter().map(fmt_tick).collect();
        assert_eq!(t, ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"]);
        let t: Vec<String> = ticks(&(1e-4..20.0)).into_iter().map(fmt_tick).collect();
        assert_eq!(
            (t[0].as_str(), t[t.len() - 1].as_str(), t.len()),
            ("0.0001", "20", 17)
        );
        assert_eq!(fmt_ratio(0.0412), "0.041");
        assert_eq!(fmt_ratio(13.63), "14");
        assert_eq!(fmt_ratio(0.5), "0.50");
    }
}
