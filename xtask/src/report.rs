//! Aggregation of run summaries into the tables, the JSON behind them and the figures.
//!
//! Summaries and metrics are read through `clica-records`' types. Only bookkeeping happens
//! here: means and standard deviations over seeds of the scores `clica` computed, and the
//! band checks of `configs/reproduce.toml`.

use crate::manifest::{RowSpec, Verdict};
use crate::svg::{self, Dot, HLine, Series};
use clica_records::{FinalScores, LogPoint, Summary};
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

/// Mean and sample standard deviation over seeds, in %.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Band {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
    /// Number of seeds.
    pub n: usize,
}

impl Band {
    /// Of the finite values in `v`; `None` when there are none.
    pub fn of(v: &[f64]) -> Option<Band> {
        let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let m = clica_records::MeanStd::of(&v);
        Some(Band {
            mean: m.mean,
            std: m.std,
            n: v.len(),
        })
    }

    /// `mean ± std` (just the mean for one seed), `–` for none.
    pub fn text(b: Option<Band>) -> String {
        match b {
            Some(b) if b.n > 1 => format!("{:.2} ± {:.2}", b.mean, b.std),
            Some(b) => format!("{:.2}", b.mean),
            None => "–".into(),
        }
    }
}

/// One seed's run of a row.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    /// Seed.
    pub seed: u64,
    /// Run folder.
    pub dir: String,
    /// Generator fingerprint (identity of g).
    pub generator_fingerprint: Option<String>,
    /// Identity score, %.
    pub identity: Option<f64>,
    /// Supervised score (mean over final batches), %.
    pub supervised: Option<f64>,
    /// Contrastive score (mean over final batches), %.
    pub contrastive: Option<f64>,
    /// Contrastive held-out R², %.
    pub contrastive_r2_held_out: Option<f64>,
    /// Contrastive MCC (Pearson), %.
    pub contrastive_mcc: Option<f64>,
    /// Contrastive in-sample R², %, beside the MCC of a row whose spec gives `paper_r2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrastive_r2: Option<f64>,
    /// Contrastive training seconds.
    pub train_seconds: Option<f64>,
    /// Wall time of the whole `clica` process (all phases), when xtask ran it.
    pub run_seconds: Option<f64>,
    /// Error, when the run failed.
    pub error: Option<String>,
}

/// One row aggregated over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// The manifest entry.
    pub spec: RowSpec,
    /// Which score the table reports: `r2` or `mcc_pearson`.
    pub metric: String,
    /// Per-seed results.
    pub seeds: Vec<SeedResult>,
    /// Identity over seeds.
    pub identity: Option<Band>,
    /// Supervised over seeds.
    pub supervised: Option<Band>,
    /// Contrastive over seeds.
    pub contrastive: Option<Band>,
    /// Contrastive MCC (Pearson) over seeds, % (the table's score in Table 2).
    pub contrastive_mcc: Option<Band>,
    /// Contrastive in-sample R² over seeds, %, where the spec gives `paper_r2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrastive_r2: Option<Band>,
    /// The band check.
    pub verdict: Verdict,
}

/// The score the table reports (`r2` for Table 1, `mcc_pearson` for Table 2).
pub fn metric_of(table: u8) -> &'static str {
    if table == 1 {
        "r2"
    } else {
        "mcc_pearson"
    }
}

/// A score as a percentage; `None` when it is not finite (written as `null`).
pub fn pct(x: Option<f64>) -> Option<f64> {
    x.filter(|x| x.is_finite()).map(|x| 100.0 * x)
}

/// The mean over final batches of score `name` in `scores` (`None` when absent).
pub fn mean_of(scores: Option<&FinalScores>, name: &str) -> Option<f64> {
    scores?.get(name).map(|m| m.mean)
}

/// Reads one seed's result from its summary (or records its error).
/// `dir` is written relative to `out` (the results folder) when it lies inside it, so the JSON
/// stays valid when the folder moves.
pub fn seed_result(
    table: u8,
    seed: u64,
    out: &Path,
    dir: &Path,
    summary: Result<&Summary, &str>,
) -> SeedResult {
    let m = metric_of(table);
    let mut r = SeedResult {
        seed,
        dir: dir.strip_prefix(out).unwrap_or(dir).display().to_string(),
        generator_fingerprint: None,
        identity: None,
        supervised: None,
        contrastive: None,
        contrastive_r2_held_out: None,
        contrastive_mcc: None,
        contrastive_r2: None,
        train_seconds: None,
        run_seconds: crate::runner::run_seconds(dir),
        error: None,
    };
    match summary {
        Ok(s) => {
            let contrastive = s.contrastive.as_ref();
            r.generator_fingerprint = Some(s.generator_fingerprint.clone());
            r.identity = pct(s.identity.as_ref().and_then(|i| i.get(m)));
            r.supervised = pct(mean_of(s.supervised.as_ref(), m));
            r.contrastive = pct(mean_of(contrastive, m));
            r.contrastive_r2_held_out = pct(mean_of(contrastive, "r2_held_out"));
            r.contrastive_mcc = pct(mean_of(contrastive, "mcc_pearson"));
            r.train_seconds = s.train_seconds;
        }
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

/// [`seed_result`] for a row of the manifest: with the contrastive R² beside the table's
/// score where the row gives the paper's R² (`paper_r2`).
pub fn seed_result_for(
    spec: &RowSpec,
    seed: u64,
    out: &Path,
    dir: &Path,
    summary: Result<&Summary, &str>,
) -> SeedResult {
    let mut r = seed_result(spec.table, seed, out, dir, summary);
    if let (Some(_), Ok(s)) = (spec.paper_r2, summary) {
        r.contrastive_r2 = pct(mean_of(s.contrastive.as_ref(), "r2"));
    }
    r
}

/// Aggregates rows and applies the band checks (a control is judged against the row named by
/// its `than`, when that row is in `rows`).
pub fn aggregate(rows: Vec<(RowSpec, Vec<SeedResult>)>) -> Vec<RowResult> {
    let mut out: Vec<RowResult> = rows
        .into_iter()
        .map(|(spec, seeds)| {
            let col = |f: fn(&SeedResult) -> Option<f64>| {
                Band::of(&seeds.iter().filter_map(f).collect::<Vec<_>>())
            };
            RowResult {
                metric: metric_of(spec.table).into(),
                identity: col(|s| s.identity),
                supervised: col(|s| s.supervised),
                contrastive: col(|s| s.contrastive),
                contrastive_mcc: col(|s| s.contrastive_mcc),
                contrastive_r2: col(|s| s.contrastive_r2),
                seeds,
                spec,
                verdict: Verdict::NotApplicable,
            }
        })
        .collect();
    let lows: Vec<Option<f64>> = out
        .iter()
        .map(|r| sibling(r, &out).and_then(|o| o.contrastive.map(|b| b.mean)))
        .collect();
    for (r, low) in out.iter_mut().zip(lows) {
        let main = r
            .spec
            .check
            .verdict(r.contrastive.map(|b| b.mean), r.spec.paper, low);
        r.verdict = match (main, r.spec.mcc_band, r.contrastive_mcc) {
            (Verdict::Pass, Some([lo, hi]), Some(m)) if !(lo..=hi).contains(&m.mean) => {
                Verdict::Fail
            }
            (Verdict::Pass, Some(_), None) => Verdict::NotApplicable,
            (v, _, _) => v,
        };
    }
    out
}

/// The row a control is judged against (its `than`, the main entry), when it is in `rows`.
fn sibling<'a>(r: &RowResult, rows: &'a [RowResult]) -> Option<&'a RowResult> {
    let t = r.spec.check.than?;
    rows.iter()
        .find(|o| o.spec.table == r.spec.table && o.spec.row == t && o.spec.variant.is_none())
}

fn paper_cell(ours: Option<Band>, paper: Option<f64>) -> String {
    match paper {
        Some(p) => format!("{} ({p:.2})", Band::text(ours)),
        None => Band::text(ours),
    }
}

/// The Markdown report of one table.
pub fn table_markdown(table: u8, rows: &[RowResult], header: &str) -> String {
    let score = if table == 1 { "R²" } else { "MCC (Pearson)" };
    let mut md = String::new();
    let _ = writeln!(md, "# Table {table}: {score} in %, n = 10\n");
    let _ = writeln!(md, "{header}\n");
    if rows
        .iter()
        .any(|r| r.spec.table == table && r.spec.own_protocol)
    {
        let _ = writeln!(
            md,
            "Images are 3DIdent-like (clica-rendered), not the paper's Blender data. These rows carry \
             their own training protocol (their config files); `--protocol` and its per-row \
             overrides do not apply to them.\n"
        );
    }
    let _ = writeln!(
        md,
        "Columns: clica's mean ± std over seeds, the paper's figure in brackets where it gives one. \
         Check: the band from `configs/reproduce.toml`.\n"
    );
    // The contrastive R² beside the MCC, where the paper gives one (Table 3).
    let r2_column = table != 1
        && rows
            .iter()
            .any(|r| r.spec.table == table && r.spec.paper_r2.is_some());
    let (r2_head, r2_rule) = if r2_column {
        (" contrastive R² (paper) |", "---|")
    } else {
        ("", "")
    };
    let _ = writeln!(
        md,
        "| row | setting | identity (paper) | supervised (paper) | contrastive |{r2_head} paper | ours − paper | check | band |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|{r2_rule}---|---|---|---|");
    for r in rows
        .iter()
        .filter(|r| r.spec.table == table && r.spec.variant.is_none())
    {
        let r2_cell = if r2_column {
            format!(" {} |", paper_cell(r.contrastive_r2, r.spec.paper_r2))
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | **{}** |{r2_cell} {} | {} | {} | {} |",
            r.spec.row,
            r.spec.setting,
            paper_cell(r.identity, r.spec.paper_identity),
            paper_cell(r.supervised, r.spec.paper_supervised),
            Band::text(r.contrastive),
            r.spec.paper_text,
            match (r.contrastive, r.spec.paper) {
                (Some(c), Some(p)) => format!("{:+.2}", c.mean - p),
                _ => "–".into(),
            },
            r.verdict.mark(),
            r.spec.check.describe()
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.spec.table == table)
        .flat_map(|r| {
            r.seeds.iter().filter_map(move |s| {
                s.error
                    .as_ref()
                    .map(|e| format!("row {} seed {}: {e}", r.spec.label(), s.seed))
            })
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n**Failed runs** (left out of the means):\n");
        for f in failed {
            let _ = writeln!(md, "- {f}");
        }
    }
    variants_markdown(&mut md, table, rows);
    // The non-identifiable controls, in words.
    for r in rows
        .iter()
        .filter(|r| r.spec.table == table && r.spec.check.is_control())
    {
        let t = r.spec.check.than.unwrap_or(0);
        let sib = sibling(r, rows);
        let Some((c, s)) = r.contrastive.zip(sib.and_then(|o| o.contrastive)) else {
            let _ = writeln!(
                md,
                "\nControl (row {}): run row {t} of the same table too to judge it.",
                r.spec.row
            );
            continue;
        };
        let words = if r.spec.check.below.is_some() {
            match r.verdict {
                Verdict::Pass => "clearly lower, as the paper reports",
                _ => "NOT clearly lower",
            }
        } else if r.spec.check.verdict(Some(c.mean), None, Some(s.mean)) == Verdict::Pass {
            "at its sibling's level, as the theory expects of a score that cannot see a rotation"
        } else {
            "NOT at its sibling's level"
        };
        let _ = writeln!(
            md,
            "\nControl (row {}): contrastive {:.2} against {:.2} for row {t}, its identifiable \
             sibling (same model and loss): {:.2} points lower, {words} (the paper: {}).",
            r.spec.row,
            c.mean,
            s.mean,
            s.mean - c.mean,
            r.spec.paper_text
        );
        if let (Some(a), Some(b)) = (r.contrastive_r2, sib.and_then(|o| o.contrastive_r2)) {
            let _ = writeln!(
                md,
                "Its R²: {} against {} for row {t} (the paper: {}).",
                Band::text(Some(a)),
                Band::text(Some(b)),
                r.spec.paper_r2.map_or("–".into(), |p| format!("≈ {p}"))
            );
        }
        if let Some([lo, hi]) = r.spec.mcc_band {
            let per_seed = |x: &RowResult| {
                x.seeds
                    .iter()
                    .filter_map(|s| s.contrastive_mcc.map(|m| format!("{m:.1}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let inside = r
                .contrastive_mcc
                .is_some_and(|m| (lo..=hi).contains(&m.mean));
            let _ = writeln!(
                md,
                "Its MCC, the score that sees a rotation: {} (seeds: {}) against the band \
                 [{lo}, {hi}] of a uniformly random rotation: {}. Row {t}: {} (seeds: {}).",
                Band::text(r.contrastive_mcc),
                per_seed(r),
                if inside {
                    "inside, so its axes are no better than a random rotation's"
                } else {
                    "OUTSIDE"
                },
                Band::text(sib.and_then(|o| o.contrastive_mcc)),
                sib.map(per_seed).unwrap_or_default()
            );
        }
    }
    md
}

/// The rows run under a second protocol (`variant`), beside their main entry.
fn variants_markdown(md: &mut String, table: u8, rows: &[RowResult]) {
    let variants: Vec<&RowResult> = rows
        .iter()
        .filter(|r| r.spec.table == table && r.spec.variant.is_some())
        .collect();
    if variants.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Rows under a second protocol\n\n| row | setting | contrastive, main protocol | \
         contrastive, second protocol | second protocol | paper | check |\n|---|---|---|---|---|---|---|"
    );
    for v in variants {
        let main = rows.iter().find(|m| {
            m.spec.table == table && m.spec.row == v.spec.row && m.spec.variant.is_none()
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | **{}** | {} | {} | {} |",
            v.spec.row,
            v.spec.setting,
            Band::text(main.and_then(|m| m.contrastive)),
            Band::text(v.contrastive),
            v.spec.variant_text.as_deref().unwrap_or_default(),
            v.spec.paper_text,
            v.verdict.mark()
        );
    }
}

/// Reads `(step, score %)` from a run's `metrics.jsonl`, skipping lines that are not a
/// [`LogPoint`] and points whose score is not finite.
pub fn curve(dir: &Path, metric: &str) -> Vec<(f64, f64)> {
    let score = |p: &LogPoint| if metric == "r2" { p.r2 } else { p.mcc };
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<LogPoint>(l).ok())
        .filter_map(|p| Some((p.step as f64, pct(Some(score(&p)))?)))
        .collect()
}

/// The per-row curve figure.
/// The per-row curve figure; run folders are resolved against `out`.
pub fn row_plot(r: &RowResult, out: &Path) -> String {
    let score = if r.spec.table == 1 {
        "R² (%)"
    } else {
        "MCC (%)"
    };
    let series: Vec<Series> = r
        .seeds
        .iter()
        .map(|s| Series {
            label: format!("seed {}", s.seed),
            points: curve(&out.join(&s.dir), &r.metric),
            color: None,
            dashed: false,
        })
        .collect();
    let mut hl = Vec::new();
    if let Some(p) = r.spec.paper {
        hl.push(HLine {
            label: format!("paper {}", r.spec.paper_text),
            y: p,
            color: "#d62728",
        });
    }
    if let Some(i) = r.identity {
        hl.push(HLine {
            label: format!("identity {:.1}", i.mean),
            y: i.mean,
            color: "#999",
        });
    }
    if let Some(s) = r.supervised {
        hl.push(HLine {
            label: format!("supervised {:.1}", s.mean),
            y: s.mean,
            color: "#2ca02c",
        });
    }
    svg::line_plot(
        &format!(
            "Table {} row {}: {}",
            r.spec.table,
            r.spec.label(),
            short(&r.spec.setting)
        ),
        "step",
        score,
        &series,
        &hl,
        (0.0, 100.0),
    )
}

/// The 3DIdent latents' names, in the renderer's order.
const THREEDIDENT_LATENTS: [&str; 10] = [
    "x",
    "y",
    "z",
    "α",
    "β",
    "γ",
    "spotlight θ",
    "hue object",
    "hue spotlight",
    "hue floor",
];

/// Reads each latent's R² (%) per step from a run's `metrics.jsonl`; empty when the file
/// holds no per-latent scores (runs written before they were recorded).
pub fn latent_curves(dir: &Path) -> Vec<Vec<(f64, f64)>> {
    let mut curves: Vec<Vec<(f64, f64)>> = Vec::new();
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
    for p in text
        .lines()
        .filter_map(|l| serde_json::from_str::<LogPoint>(l).ok())
    {
        let Some(per) = p.r2_per_latent else { continue };
        if curves.len() < per.len() {
            curves.resize(per.len(), Vec::new());
        }
        for (c, v) in curves.iter_mut().zip(per) {
            if let Some(y) = pct(Some(v)) {
                c.push((p.step as f64, y));
            }
        }
    }
    curves
}

/// The per-latent figure of a row: each latent's R² against the step, for the row's first
/// seed; `None` when its metrics hold no per-latent scores.
pub fn latent_plot(r: &RowResult, out: &Path) -> Option<String> {
    let first = r.seeds.first()?;
    let curves = latent_curves(&out.join(&first.dir));
    if curves.is_empty() {
        return None;
    }
    let named = r.spec.table == 3 && curves.len() == THREEDIDENT_LATENTS.len();
    let series: Vec<Series> = curves
        .into_iter()
        .enumerate()
        .map(|(i, points)| Series {
            label: if named {
                THREEDIDENT_LATENTS[i].to_string()
            } else {
                format!("z{}", i + 1)
            },
            points,
            color: Some(i % 8),
            dashed: i >= 8,
        })
        .collect();
    Some(svg::line_plot(
        &format!(
            "Table {} row {}, seed {}: R² of each latent",
            r.spec.table,
            r.spec.label(),
            first.seed
        ),
        "step",
        "R² (%)",
        &series,
        &[],
        (0.0, 100.0),
    ))
}

fn short(s: &str) -> String {
    let s: String = s.chars().take(60).collect();
    s
}

/// The summary figure of one table: ours, paper and identity per row.
pub fn summary_plot(table: u8, rows: &[RowResult]) -> String {
    let dots: Vec<Dot> = rows
        .iter()
        .filter(|r| r.spec.table == table)
        .map(|r| Dot {
            label: match &r.spec.variant {
                Some(v) => format!("{}·{v}", r.spec.row),
                None => r.spec.row.to_string(),
            },
            ours: r.contrastive.map(|b| (b.mean, b.std)),
            paper: r.spec.paper,
            identity: r.identity.map(|b| b.mean),
        })
        .collect();
    let score = if table == 1 { "R² (%)" } else { "MCC (%)" };
    svg::dot_plot(
        &format!("Table {table}: clica against the paper, per row"),
        score,
        &dots,
        (0.0, 100.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Check;

    fn spec(table: u8, row: u32, paper: Option<f64>, check: Check) -> RowSpec {
        RowSpec {
            table,
            row,
            config: String::new(),
            setting: format!("setting {row}"),
            paper,
            paper_text: paper.map_or("lower".into(), |p| p.to_string()),
            paper_identity: None,
            paper_supervised: None,
            paper_r2: None,
            check,
            fast: vec![],
            variant: None,
            variant_text: None,
            mcc_band: None,
            own_protocol: false,
        }
    }

    fn summary(r2: f64) -> Summary {
        summary_mcc(r2, 0.5)
    }

    fn summary_mcc(r2: f64, mcc: f64) -> Summary {
        let ms = |mean: f64| serde_json::json!({"mean": mean, "std": 0.0});
        let scores = |r2: f64, mcc: f64| {
            serde_json::json!({"r2": ms(r2), "r2_held_out": ms(r2 - 0.01),
                "mcc_pearson": ms(mcc), "mcc_spearman": ms(mcc)})
        };
        serde_json::from_value(serde_json::json!({
            "status": "completed",
            "seed": 0,
            "generator_fingerprint": "abcd",
            "identity": {"r2": 0.6, "r2_held_out": 0.59, "mcc_pearson": 0.45,
                "mcc_spearman": 0.44, "assignment": [0, 1]},
            "contrastive": scores(r2, mcc),
            "supervised": scores(0.99, 0.98),
            "steps": 40,
            "train_seconds": 12.0,
            "versions": {"clica": "0.1.0"}
        }))
        .unwrap()
    }

    #[test]
    fn band_is_mean_and_sample_std() {
        let b = Band::of(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert_eq!((b.mean, b.std, b.n), (2.0, 1.0, 3));
        assert_eq!(Band::of(&[5.0]).unwrap().std, 0.0);
        assert!(Band::of(&[]).is_none());
    }

    #[test]
    fn rows_aggregate_over_seeds_and_controls_compare_within_their_table() {
        let within = Check {
            within: Some(1.0),
            ..Check::default()
        };
        let below = Check {
            below: Some(10.0),
            than: Some(2),
            ..Check::default()
        };
        let d = Path::new("/nonexistent");
        let rows = vec![
            (
                spec(1, 1, Some(99.0), within.clone()),
                vec![
                    seed_result(1, 0, d, d, Ok(&summary(0.985))),
                    seed_result(1, 1, d, d, Ok(&summary(0.995))),
                ],
            ),
            (
                spec(1, 2, Some(90.0), within),
                vec![seed_result(1, 0, d, d, Ok(&summary(0.80)))],
            ),
            (
                spec(1, 12, None, below),
                vec![
                    seed_result(1, 0, d, d, Ok(&summary(0.60))),
                    seed_result(1, 1, d, d, Err("diverged at step 3")),
                ],
            ),
        ];
        let out = aggregate(rows);
        let c = out[0].contrastive.unwrap();
        assert!((c.mean - 99.0).abs() < 1e-9 && (c.std - 0.5f64.sqrt() * 1.0).abs() < 1e-9);
        assert_eq!(out[0].verdict, Verdict::Pass);
        assert_eq!(out[1].verdict, Verdict::Fail);
        // Row 2 (the control's sibling): 80; the control's 60 is 20 points lower.
        assert_eq!(out[2].verdict, Verdict::Pass);
        assert_eq!(out[2].contrastive.unwrap().n, 1);
        let md = table_markdown(1, &out, "header");
        assert!(
            md.contains(
                "| 1 | setting 1 | 60.00 ± 0.00 | 99.00 ± 0.00 | **99.00 ± 0.71** | 99 | +0.00 | ✓ |"
            ),
            "{md}"
        );
        assert!(md.contains("row 12 seed 1: diverged at step 3"));
        assert!(md.contains("20.00 points lower, clearly lower"), "{md}");
        assert!(
            table_markdown(2, &out, "h")
                .lines()
                .filter(|l| l.starts_with("| "))
                .count()
                == 1
        );
    }

    #[test]
    fn mcc_tables_show_the_contrastive_r2_beside_the_mcc_where_the_paper_gives_one() {
        let within = Check {
            within: Some(2.0),
            ..Check::default()
        };
        let d = Path::new("/nonexistent");
        let mut with_r2 = spec(3, 1, Some(98.31), within.clone());
        with_r2.paper_r2 = Some(96.7);
        let s = summary_mcc(0.7352, 0.7428);
        let r = seed_result_for(&with_r2, 0, d, d, Ok(&s));
        assert_eq!(r.contrastive_r2, Some(73.52));
        // A row without the paper's R² (every row of Tables 1 and 2) records none.
        let plain = spec(3, 2, Some(55.0), within);
        assert_eq!(
            seed_result_for(&plain, 0, d, d, Ok(&s)).contrastive_r2,
            None
        );
        let out = aggregate(vec![
            (with_r2.clone(), vec![r.clone()]),
            (
                plain.clone(),
                vec![seed_result_for(&plain, 0, d, d, Ok(&s))],
            ),
        ]);
        let md = table_markdown(3, &out, "h");
        assert!(
            md.contains("| contrastive | contrastive R² (paper) | paper |"),
            "{md}"
        );
        assert!(md.contains("| **74.28** | 73.52 (96.70) | 98.31 |"), "{md}");
        assert!(md.contains("| **74.28** | – | 55 |"), "{md}");
        // A control with R² on both sides names both.
        let mut control = spec(
            3,
            2,
            Some(55.0),
            Check {
                below: Some(20.0),
                than: Some(1),
                ..Check::default()
            },
        );
        control.paper_r2 = Some(96.4);
        let c = seed_result_for(&control, 0, d, d, Ok(&summary_mcc(0.7069, 0.5001)));
        let both = aggregate(vec![(with_r2, vec![r]), (control, vec![c])]);
        let md2 = table_markdown(3, &both, "h");
        assert!(
            md2.contains("Its R²: 70.69 against 73.52 for row 1 (the paper: ≈ 96.4)."),
            "{md2}"
        );
        // Without any such row the table keeps its columns.
        let md1 = table_markdown(3, &out[1..], "h");
        assert!(md1.contains("| contrastive | paper |"), "{md1}");
    }

    #[test]
    fn variants_sit_beside_their_row_and_a_rotation_control_needs_its_mcc_band() {
        let within = Check {
            within: Some(5.0),
            ..Check::default()
        };
        let not_below = Check {
            not_below: Some(3.0),
            than: Some(11),
            ..Check::default()
        };
        let mut tau1 = spec(1, 9, Some(90.0), within.clone());
        tau1.variant = Some("tau1".into());
        tau1.variant_text = Some("the paper's τ = 1".into());
        let mut control = spec(1, 12, None, not_below);
        control.mcc_band = Some([50.0, 60.0]);
        let d = Path::new("/nonexistent");
        let one = |r2: f64, mcc: f64| vec![seed_result(1, 0, d, d, Ok(&summary_mcc(r2, mcc)))];
        let rows = |control_mcc: f64, control_r2: f64| {
            aggregate(vec![
                (spec(1, 9, Some(90.0), within.clone()), one(0.97, 0.6)),
                (tau1.clone(), one(0.88, 0.6)),
                (spec(1, 11, Some(90.0), within.clone()), one(0.92, 0.58)),
                (control.clone(), one(control_r2, control_mcc)),
            ])
        };
        let out = rows(0.55, 0.91);
        assert_eq!(out[1].verdict, Verdict::Pass);
        assert_eq!(out[3].verdict, Verdict::Pass);
        let md = table_markdown(1, &out, "h");
        // The variant is not a row of the main table but a line of the second table.
        let (main, second) = md.split_once("## Rows under a second protocol").unwrap();
        assert_eq!(main.lines().filter(|l| l.starts_with("| 9 |")).count(), 1);
        assert_eq!(second.lines().filter(|l| l.starts_with("| 9 |")).count(), 1);
        assert!(
            md.contains("| 9 | setting 9 | 97.00 | **88.00** | the paper's τ = 1 | 90 | ✓ |"),
            "{md}"
        );
        assert!(
            md.contains("1.00 points lower, at its sibling's level"),
            "{md}"
        );
        assert!(
            md.contains("55.00 (seeds: 55.0) against the band [50, 60]"),
            "{md}"
        );
        assert!(md.contains("inside"), "{md}");
        // An MCC outside the band fails the row although its R² is at the sibling's level;
        // an R² far below fails it although its MCC is in the band.
        assert_eq!(rows(0.70, 0.91)[3].verdict, Verdict::Fail);
        assert!(table_markdown(1, &rows(0.70, 0.91), "h").contains("OUTSIDE"));
        assert_eq!(rows(0.55, 0.80)[3].verdict, Verdict::Fail);
        assert!(table_markdown(1, &rows(0.55, 0.80), "h").contains("NOT at its sibling's level"));
        assert!(summary_plot(1, &out).contains("9·tau1"));
    }

    #[test]
    fn curves_skip_lines_that_are_not_log_points_and_scores_that_are_not_finite() {
        let dir = std::env::temp_dir().join(format!("xtask-curve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let point = |step: u32, r2: &str, mcc: &str| {
            format!(
                r#"{{"step":{step},"loss":2.0,"lr":0.001,"r2":{r2},"mcc":{mcc},"elapsed_s":0.1}}"#
            )
        };
        let lines = [
            point(1, "0.5", "0.25"),
            point(2, "0.75", "null"),
            "not json".into(),
            point(3, "0.8", "0.3").replace("\"lr\"", "\"learning_rate\""),
            point(4, "0.9", "0.4")[..30].into(),
        ];
        std::fs::write(dir.join("metrics.jsonl"), lines.join("\n")).unwrap();
        assert_eq!(curve(&dir, "r2"), vec![(1.0, 50.0), (2.0, 75.0)]);
        assert_eq!(curve(&dir, "mcc_pearson"), vec![(1.0, 25.0)]);
        assert!(curve(&dir.join("missing"), "r2").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn latent_curves_follow_each_latent_and_skip_points_without_them() {
        let dir = std::env::temp_dir().join(format!("xtask-latents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = r#"{"step":S,"loss":2.0,"lr":0.001,"r2":0.5,"mcc":0.5,"elapsed_s":0.1"#;
        let lines = [
            format!("{}}}", base.replace('S', "1")),
            format!(r#"{},"r2_per_latent":[0.25,0.5]}}"#, base.replace('S', "2")),
            format!(
                r#"{},"r2_per_latent":[null,0.75]}}"#,
                base.replace('S', "3")
            ),
            format!(r#"{},"r2_per_latent":[0.5,"x"]}}"#, base.replace('S', "4")),
        ];
        std::fs::write(dir.join("metrics.jsonl"), lines.join("\n")).unwrap();
        assert_eq!(
            latent_curves(&dir),
            vec![vec![(2.0, 25.0)], vec![(2.0, 50.0), (3.0, 75.0)]]
        );
        assert!(latent_curves(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `v` as `results.json` holds it, read back with the parser that read the committed
    /// file (serde_json's default float parsing can land one ulp off; equal texts, which
    /// are shortest round-trip digits, read back equal).
    fn as_read<T: Serialize>(v: &T) -> serde_json::Value {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    /// The committed reference run, read back through the record types: every seed's
    /// figures, the per-row and summary figures are those `reproduce` wrote.
    #[test]
    fn the_committed_reference_run_reads_back_unchanged() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results");
        let text = std::fs::read_to_string(out.join("results.json")).unwrap();
        let committed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut rows = Vec::new();
        for row in committed["rows"].as_array().unwrap() {
            let spec: RowSpec = serde_json::from_value(row["spec"].clone()).unwrap();
            let seeds: Vec<SeedResult> = row["seeds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let dir = out.join(s["dir"].as_str().unwrap());
                    let summary = crate::runner::read_completed(&dir).unwrap();
                    let seed = s["seed"].as_u64().unwrap();
                    let r = seed_result_for(&spec, seed, &out, &dir, Ok(&summary));
                    assert_eq!(&as_read(&r), s, "{}", dir.display());
                    r
                })
                .collect();
            rows.push((spec, seeds));
        }
        let rows = aggregate(rows);
        assert_eq!(rows.len(), 20);
        for (r, c) in rows.iter().zip(committed["rows"].as_array().unwrap()) {
            // Every figure the committed file holds reads back unchanged, and it holds every
            // field the report writes.
            let ours = as_read(r);
            assert_eq!(ours, *c);
            let name = format!("plots/table{}_{}.svg", r.spec.table, r.spec.key());
            let svg = std::fs::read_to_string(out.join(&name)).unwrap();
            assert!(row_plot(r, &out) == svg, "{name} differs");
        }
        for t in [1, 2] {
            let svg = std::fs::read_to_string(out.join(format!("plots/table{t}_summary.svg")));
            assert!(summary_plot(t, &rows) == svg.unwrap(), "table {t} summary");
            let md = std::fs::read_to_string(out.join(format!("table{t}.md"))).unwrap();
            let header = md.lines().nth(2).unwrap();
            assert!(
                table_markdown(t, &rows, header) == md,
                "table{t}.md differs"
            );
        }
    }
}
