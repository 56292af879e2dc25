//! Plots as PNG and SVG (the `plotters` crate, with DejaVu Sans embedded so
//! that PNGs render anywhere): training curves, the path distribution over
//! epochs, the data distribution's effective sample size, and predicted
//! against true accuracy.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, include_bytes!("../assets/fonts/DejaVuSans.ttf"))
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans font is valid"));
    });
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The axes' ranges: every point for curves; for a scatter of many points,
/// a range that a few far-off points (an architecture with no path from input
/// to output at 10%, say) do not squash: below `p05 - (p95 - p05)` on
/// either axis a point is off-scale and drawn at the edge.
fn bounds(series: &[Series], scatter: bool) -> (f64, f64, f64, f64) {
    let finite = |axis: fn(&(f64, f64)) -> f64| -> Vec<f64> {
        let mut v: Vec<f64> = series.iter().flat_map(|s| s.points.iter()).map(axis).filter(|v| v.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (xs, ys) = (finite(|p| p.0), finite(|p| p.1));
    if xs.is_empty() || ys.is_empty() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let range = |v: &[f64]| -> (f64, f64) {
        let (lo, hi) = (v[0], v[v.len() - 1]);
        let lo = if scatter && v.len() >= 20 {
            let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
            lo.max(q(0.05) - (q(0.95) - q(0.05)))
        } else {
            lo
        };
        let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
        (lo - pad, hi + pad)
    };
    let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
    (x0, x1, y0, y1)
}

/// Curves with exactly the same points drawn once, their names joined
/// ("none = skip_connect"): otherwise the last one hides the others.
fn merge_identical(series: &[Series]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for s in series {
        match out.iter_mut().find(|o| o.points == s.points && !o.points.is_empty()) {
            Some(o) => o.name = format!("{} = {}", o.name, s.name),
            None => out.push(Series { name: s.name.clone(), points: s.points.clone() }),
        }
    }
    out
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    scatter: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let merged;
    let series = if scatter {
        series
    } else {
        merged = merge_identical(series);
        &merged[..]
    };
    let (x0, x1, y0, y1) = bounds(series, scatter);
    let off_scale = series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| *x < x0 || *y < y0).count();
    let title = match off_scale {
        0 => title.to_string(),
        k => format!("{title}; {k} off-scale (hollow, at the edge)"),
    };
    // a long title in a smaller font rather than cut at the figure's edge
    let size = (22.0 * (80.0 / title.chars().count() as f64).min(1.0)).max(13.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(&title, ("sans-serif", size))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 14)).draw().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // small dots for thousands of architectures, visible ones for a few seeds
    let radius = if series.iter().map(|s| s.points.len()).sum::<usize>() < 200 { 5 } else { 2 };
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite());
        let anno = if scatter {
            let (inside, outside): (Vec<_>, Vec<_>) = pts.partition(|(x, y)| *x >= x0 && *y >= y0);
            chart
                .draw_series(outside.into_iter().map(|(x, y)| Circle::new((x.max(x0), y.max(y0)), radius + 2, color.stroke_width(1))))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            chart
                .draw_series(inside.into_iter().map(|p| Circle::new(p, radius, color.mix(0.5).filled())))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
        } else {
            let pts: Vec<(f64, f64)> = pts.collect();
            // a marker on every point: a one-epoch run is a dot, not an empty panel
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            chart.draw_series(LineSeries::new(pts, color.stroke_width(2))).map_err(|e| anyhow::anyhow!("{e:?}"))?
        };
        if !s.name.is_empty() {
            anno.label(s.name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
        }
    }
    if series.iter().any(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// One labelled row of a dot plot: its values (every seed a dot); reference
/// rows are drawn grey.
pub struct DotRow {
    pub label: String,
    pub values: Vec<f64>,
    pub reference: bool,
}

/// A dot plot with one row per label (top to bottom), every value a dot and
/// each row's mean a bar: `<stem>.png` and `<stem>.svg`.
pub fn dot_rows(stem: &Path, title: &str, x_label: &str, rows: &[DotRow]) -> anyhow::Result<[PathBuf; 2]> {
    let [png, svg] = outputs(stem)?;
    let height = 120 + 30 * rows.len() as u32;
    draw_dots(BitMapBackend::new(&png, (900, height)).into_drawing_area(), title, x_label, rows)
        .with_context(|| format!("drawing {}", png.display()))?;
    draw_dots(SVGBackend::new(&svg, (900, height)).into_drawing_area(), title, x_label, rows)
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok([png, svg])
}

fn draw_dots<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, x_label: &str, rows: &[DotRow]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let all = rows.iter().flat_map(|r| r.values.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.05).max(0.02);
    let n = rows.len() as i32;
    // row i at y = n - 1 - i, so that the first row is on top
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(330)
        // (a segmented range a..b has b - a + 1 segments: 0..n - 1 gives one per row)
        .build_cartesian_2d(lo - pad..hi + pad, (0..n - 1).into_segmented())
        .map_err(err)?;
    let label_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(y) if (0..n).contains(y) => rows[(n - 1 - y) as usize].label.clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_labels(rows.len())
        .y_label_formatter(&label_of)
        .label_style(("sans-serif", 14))
        .disable_y_mesh()
        .draw()
        .map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let y = n - 1 - i as i32;
        let color = if r.reference { RGBColor(110, 110, 110) } else { COLORS[i % (COLORS.len() - 1)] }; // COLORS ends in grey
        let dots =
            r.values.iter().filter(|v| v.is_finite()).map(|&v| Circle::new((v, SegmentValue::CenterOf(y)), 5, color.mix(0.6).filled()));
        chart.draw_series(dots).map_err(err)?;
        if r.values.len() > 1 {
            let mean = r.values.iter().sum::<f64>() / r.values.len() as f64;
            // a vertical bar 20 pixels tall, centred on the row
            let bar =
                EmptyElement::at((mean, SegmentValue::CenterOf(y))) + PathElement::new(vec![(0, -10), (0, 10)], color.stroke_width(3));
            chart.draw_series(std::iter::once(bar)).map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// `<stem>.png` and `<stem>.svg`, their folder created (a user's `--out` need not exist yet),
/// and the font registered: what every figure needs before drawing.
fn outputs(stem: &Path) -> anyhow::Result<[PathBuf; 2]> {
    register_font();
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok([stem.with_extension("png"), stem.with_extension("svg")])
}

/// Writes `<stem>.png` and `<stem>.svg`; returns the two paths.
pub fn chart(stem: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series], scatter: bool) -> anyhow::Result<[PathBuf; 2]> {
    let [png, svg] = outputs(stem)?;
    draw(BitMapBackend::new(&png, (900, 600)).into_drawing_area(), title, x_label, y_label, series, scatter)
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(SVGBackend::new(&svg, (900, 600)).into_drawing_area(), title, x_label, y_label, series, scatter)
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok([png, svg])
}
