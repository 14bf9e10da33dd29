//! Minimal SVG plots: curves against step, and a dot-and-whisker summary. No dependencies.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// One polyline.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points (x, y); non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Palette index (default: the series' position).
    pub color: Option<usize>,
    /// Dashed line.
    pub dashed: bool,
}

/// A horizontal reference line.
pub struct HLine {
    /// Legend label.
    pub label: String,
    /// Height.
    pub y: f64,
    /// Colour.
    pub color: &'static str,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (H - TOP - BOTTOM)
    }
}

fn header(out: &mut String, title: &str, xlabel: &str, ylabel: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>
"##,
        (LEFT + W - RIGHT) / 2.0,
        esc(title),
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        esc(xlabel),
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        esc(ylabel)
    );
}

fn axes(out: &mut String, f: &Frame, xticks: &[(f64, String)], yticks: &[f64]) {
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    for (x, label) in xticks {
        let px = f.px(*x);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#444"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 5.0,
            H - BOTTOM + 18.0,
            esc(label)
        );
    }
    for &y in yticks {
        let py = f.py(y);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(y)
        );
    }
}

fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn legend(out: &mut String, i: usize, label: &str, color: &str, dashed: bool) {
    let y = TOP + 12.0 + 18.0 * i as f64;
    let x = W - RIGHT + 12.0;
    let dash = if dashed {
        r#" stroke-dasharray="5,3""#
    } else {
        ""
    };
    let _ = writeln!(
        out,
        r##"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"##,
        x + 22.0,
        x + 28.0,
        y + 4.0,
        esc(label)
    );
}

/// Nice round ticks covering [lo, hi].
fn ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / count as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + 1e-9 * span {
        out.push(t);
        t += step;
    }
    out
}

/// Curves of y against x with optional horizontal reference lines; y spans [y0, y1].
pub fn line_plot(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    hlines: &[HLine],
    (y0, y1): (f64, f64),
) -> String {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite());
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (x0, x1) = if x0.is_finite() {
        (x0.min(0.0), x1.max(1.0))
    } else {
        (0.0, 1.0)
    };
    let f = Frame { x0, x1, y0, y1 };
    let mut out = String::new();
    header(&mut out, title, xlabel, ylabel);
    let xt: Vec<(f64, String)> = ticks(x0, x1, 5)
        .into_iter()
        .map(|x| (x, fmt_tick(x)))
        .collect();
    axes(&mut out, &f, &xt, &ticks(y0, y1, 5));
    let mut li = 0;
    for h in hlines {
        let py = f.py(h.y.clamp(y0, y1));
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="5,3"/>"##,
            W - RIGHT,
            h.color
        );
        legend(&mut out, li, &h.label, h.color, true);
        li += 1;
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[s.color.unwrap_or(i) % COLORS.len()];
        let dash = if s.dashed {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y.clamp(y0, y1))))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>"##,
            pts.join(" ")
        );
        legend(&mut out, li, &s.label, color, s.dashed);
        li += 1;
    }
    out.push_str("</svg>\n");
    out
}

/// One category of a summary plot.
pub struct Dot {
    /// Axis label.
    pub label: String,
    /// Our mean and std (points), if any.
    pub ours: Option<(f64, f64)>,
    /// The paper's figure, if numeric.
    pub paper: Option<f64>,
    /// Our identity baseline, if any.
    pub identity: Option<f64>,
}

/// Dot-and-whisker plot: ours (mean ± std), the paper (diamond) and the identity baseline
/// (grey square) per category, on [y0, y1].
pub fn dot_plot(title: &str, ylabel: &str, dots: &[Dot], (y0, y1): (f64, f64)) -> String {
    let n = dots.len().max(1) as f64;
    let f = Frame {
        x0: 0.0,
        x1: n,
        y0,
        y1,
    };
    let mut out = String::new();
    header(&mut out, title, "row", ylabel);
    let xt: Vec<(f64, String)> = dots
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64 + 0.5, d.label.clone()))
        .collect();
    axes(&mut out, &f, &xt, &ticks(y0, y1, 5));
    for (i, d) in dots.iter().enumerate() {
        let px = f.px(i as f64 + 0.5);
        if let Some(idv) = d.identity.filter(|v| v.is_finite()) {
            let py = f.py(idv.clamp(y0, y1));
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="#999"/>"##,
                px - 3.5,
                py - 3.5
            );
        }
        if let Some(p) = d.paper {
            let py = f.py(p.clamp(y0, y1));
            let _ = writeln!(
                out,
                r##"<path d="M{px:.1},{:.1} l5,5 l-5,5 l-5,-5 z" fill="none" stroke="#d62728" stroke-width="1.5"/>"##,
                py - 5.0
            );
        }
        if let Some((m, s)) = d.ours.filter(|(m, _)| m.is_finite()) {
            let (pm, lo, hi) = (
                f.py(m.clamp(y0, y1)),
                f.py((m - s).clamp(y0, y1)),
                f.py((m + s).clamp(y0, y1)),
            );
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{lo:.1}" x2="{px:.1}" y2="{hi:.1}" stroke="#1f77b4" stroke-width="2"/><circle cx="{px:.1}" cy="{pm:.1}" r="4" fill="#1f77b4"/>"##
            );
        }
    }
    let (x, y) = (W - RIGHT + 14.0, TOP + 12.0);
    let _ = writeln!(
        out,
        r##"<circle cx="{x}" cy="{y}" r="4" fill="#1f77b4"/><text x="{}" y="{}">clica (mean ± std)</text>
<path d="M{x},{} l5,5 l-5,5 l-5,-5 z" fill="none" stroke="#d62728" stroke-width="1.5"/><text x="{}" y="{}">paper</text>
<rect x="{}" y="{}" width="7" height="7" fill="#999"/><text x="{}" y="{}">identity (clica)</text>"##,
        x + 12.0,
        y + 4.0,
        y + 18.0 - 5.0,
        x + 12.0,
        y + 22.0,
        x - 3.5,
        y + 36.0 - 3.5,
        x + 12.0,
        y + 40.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(ticks(0.0, 28000.0, 5), vec![0.0, 10000.0, 20000.0]);
    }

    #[test]
    fn plots_are_well_formed_and_place_points_in_the_frame() {
        let s = Series {
            label: "seed 0 <a&b>".into(),
            points: vec![(0.0, 50.0), (100.0, 90.0), (200.0, f64::NAN)],
            color: None,
            dashed: false,
        };
        let svg = line_plot(
            "t",
            "step",
            "R² (%)",
            &[s],
            &[HLine {
                label: "paper".into(),
                y: 99.0,
                color: "#d62728",
            }],
            (0.0, 100.0),
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("seed 0 &lt;a&amp;b&gt;"));
        // (0, 50) maps to the left edge, half height; (100, 90) half-way across (the NaN point at
        // x = 200 still sets the x range but draws nothing).
        let inner_h = H - TOP - BOTTOM;
        let want = format!(
            "{:.1},{:.1} {:.1},{:.1}",
            LEFT,
            H - BOTTOM - 0.5 * inner_h,
            LEFT + 0.5 * (W - LEFT - RIGHT),
            H - BOTTOM - 0.9 * inner_h
        );
        assert!(svg.contains(&want), "{want} not in {svg}");
        let d = dot_plot(
            "sum",
            "%",
            &[Dot {
                label: "1".into(),
                ours: Some((80.0, 1.0)),
                paper: Some(99.0),
                identity: Some(60.0),
            }],
            (0.0, 100.0),
        );
        assert_eq!(d.matches("<circle").count(), 2);
        assert_eq!(d.matches("<path").count(), 2);
    }
}
