//! The `compare --plot` figure: a log-log scatter of A's prices (median
//! less boundary, x) against B's (y), one colour per stage, with the y = x
//! line, so that a stage that moves differently from the rest stands out at
//! a glance; `validate --plot` draws predicted against measured the same way.
//!
//! SVG or PNG, by the file's extension. Text is laid out (and, in a PNG,
//! drawn) with DejaVu Sans built into the binary (`assets/`, under its
//! Bitstream Vera licence), so no system font or font library is needed.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{bail, ProfilerError, Result};

/// One point of a scatter: one common entry of two tables, or one network
/// (measured on x, predicted on y).
#[derive(Clone, Debug)]
pub struct Point {
    pub group: String,
    pub a_ms: f64,
    pub b_ms: f64,
}

/// The file formats a plot can be written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

/// The format `path` asks for, or why it cannot be written.
fn format_of(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
        Some(e) if e.eq_ignore_ascii_case("png") => Ok(Format::Png),
        _ => bail!(
            "--plot {}: the plot file must end in .svg or .png",
            path.display()
        ),
    }
}

/// Refuses, before any work (a validation may time for minutes first), an
/// output the plot cannot be written as or to.
pub fn check_plot_path(path: &Path) -> Result<()> {
    format_of(path)?;
    crate::files::resume::check_out_folder("--plot", path)?;
    Ok(())
}

/// DejaVu Sans, unmodified (see `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Makes [`FONT`] the font of every family the plot may ask for, once per
/// process.
fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        ["sans-serif", "serif", "monospace"]
            .iter()
            .all(|family| plotters::style::register_font(family, FontStyle::Normal, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        bail!("the built-in font cannot be read")
    }
}

/// A colour per group, in the order groups first appear.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// An axis label with at most 4 significant digits and no float noise
/// (`0.30000000000000004` → `0.3`).
fn tick(v: f64) -> String {
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Draws `points` (all values positive) into an SVG or PNG file at `path`,
/// `a_ms` on x and `b_ms` on y. Generic over what A and B are, so that
/// `validate`'s predicted-against-measured plot can reuse it.
pub fn scatter(
    path: &Path,
    points: &[Point],
    caption: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<()> {
    let format = format_of(path)?;
    if points.is_empty() {
        bail!("no common entry with positive medians to plot");
    }
    register_font()?;
    const SIZE: (u32, u32) = (900, 800);
    let text = Labels {
        caption,
        x_desc,
        y_desc,
    };
    // Drawn into a temporary file beside `path` that keeps its extension,
    // then renamed: a full disk leaves the old plot, never half of one.
    let file = space::io::AtomicFile::new(path)?;
    let temp = file.temp_path();
    match format {
        Format::Svg => draw(
            SVGBackend::new(temp, SIZE).into_drawing_area(),
            points,
            &text,
        ),
        Format::Png => draw(
            BitMapBackend::new(temp, SIZE).into_drawing_area(),
            points,
            &text,
        ),
    }
    .map_err(|e| ProfilerError::Invalid(format!("cannot draw {}: {e}", path.display())))?;
    Ok(file.commit()?)
}

/// The plot's caption and axis descriptions.
struct Labels<'a> {
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
}

/// The scatter on any plotters backend; errors as text, since each
/// backend has an error type of its own.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    points: &[Point],
    text: &Labels<'_>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (lo, hi) = points
        .iter()
        .flat_map(|p| [p.a_ms, p.b_ms])
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    // A margin of a fifth of a decade on each side; a single value still
    // gets a visible range.
    let (lo, hi) = (lo / 1.6, hi * 1.6);
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(text.caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(text.x_desc)
        .y_desc(text.y_desc)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("y = x")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));

    let mut groups: Vec<&str> = Vec::new();
    for p in points {
        if !groups.contains(&p.group.as_str()) {
            groups.push(&p.group);
        }
    }
    for (i, group) in groups.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.group == *group)
                    .map(|p| Circle::new((p.a_ms, p.b_ms), 3, colour.mix(0.7).filled())),
            )
            .map_err(|e| err(&e))?
            .label(*group)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_drop_float_noise() {
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(0.6000000000000001), "0.6");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(12.5), "12.5");
        assert_eq!(tick(0.0125), "0.0125");
        assert_eq!(tick(1500.0), "1500");
    }
}
