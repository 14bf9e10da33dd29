//! `configs/reproduce.toml`: which rows the paper reports, with which config file, and what
//! each row is checked against.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every row of Tables 1 and 2.
    pub row: Vec<RowSpec>,
    /// The dimension × depth ablation.
    pub ablation: AblationSpec,
}

/// One row of a paper table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// 1 (R²), 2 (MCC) or 3 (MCC; the 3DIdent-like image rows, opt-in).
    pub table: u8,
    /// Row number within the table (1-based).
    pub row: u32,
    /// The row's `clica train` config, relative to the repository root.
    pub config: String,
    /// Human-readable setting.
    pub setting: String,
    /// The paper's contrastive figure in %, when it gives a number.
    #[serde(default)]
    pub paper: Option<f64>,
    /// The paper's figure as the paper states it.
    pub paper_text: String,
    /// The paper's identity baseline in %, where given.
    #[serde(default)]
    pub paper_identity: Option<f64>,
    /// The paper's supervised baseline in %, where given.
    #[serde(default)]
    pub paper_supervised: Option<f64>,
    /// The paper's contrastive R² in %, for a row of an MCC table where the paper gives one
    /// beside the MCC (Table 3): the report then shows clica's R² beside its MCC, so a reader
    /// sees the pattern the paper's controls are about (R² high, MCC lower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_r2: Option<f64>,
    /// How the row is checked.
    pub check: Check,
    /// `--set` overrides used under the fast protocol only.
    #[serde(default)]
    pub fast: Vec<String>,
    /// A second protocol for a row already listed: the same row file with other `fast`
    /// overrides, reported beside the main entry (the paper's τ = 1 next to the tuned τ). Its
    /// folders and figures carry it as a suffix: `row09-tau1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The variant in words, for the report (required with `variant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_text: Option<String>,
    /// A second band, on the contrastive MCC (Pearson, %): ✓ only when the mean over seeds
    /// lies in it too. Used where the table's score cannot see what the row is about (a
    /// rotation, invisible to R²).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc_band: Option<[f64; 2]>,
    /// The row file carries its own training protocol (the image rows: a conv encoder, its
    /// own batch and steps): no protocol file is layered over it, `fast` must be empty, and
    /// no supervised baseline is added (a row file asks for one itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_protocol: bool,
}

impl RowSpec {
    /// The row's name in folders and figure files: `row09`, or `row09-tau1` for a variant.
    pub fn key(&self) -> String {
        match &self.variant {
            Some(v) => format!("row{:02}-{v}", self.row),
            None => format!("row{:02}", self.row),
        }
    }

    /// The row's label in tables: `9`, or `9 (τ = 1)` for a variant.
    pub fn label(&self) -> String {
        match (&self.variant, &self.variant_text) {
            (Some(_), Some(t)) => format!("{} ({t})", self.row),
            (Some(v), None) => format!("{} ({v})", self.row),
            _ => self.row.to_string(),
        }
    }
}

/// A row's band check; exactly one field is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// ✓ when |ours − paper| ≤ this many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<f64>,
    /// ✓ when ours lies in [lo, hi].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// Control row: ✓ when ours is at least this many points below row `than` of the same
    /// table (its identifiable sibling: same model and loss, identifiable data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// Control row whose score the theory expects at its sibling's level: ✓ when ours is at
    /// most this many points below row `than` (a rotation, say, which R² cannot see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_below: Option<f64>,
    /// The row a control is compared with (required with `below` or `not_below`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub than: Option<u32>,
}

/// The ablation grid.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AblationSpec {
    /// Base config.
    pub config: String,
    /// Latent dimensions.
    pub dims: Vec<usize>,
    /// Mixing depths.
    pub layers: Vec<usize>,
    /// Overrides under the fast protocol.
    #[serde(default)]
    pub fast: Vec<String>,
    /// Overrides always applied.
    #[serde(default)]
    pub overrides: Vec<String>,
}

/// Outcome of a band check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Inside the band.
    Pass,
    /// Outside the band.
    Fail,
    /// Cannot be decided (no score, or a control without identifiable rows in the run).
    NotApplicable,
}

impl Verdict {
    /// ✓, ✗ or –.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::NotApplicable => "–",
        }
    }
}

impl Check {
    /// Whether this is a control row.
    pub fn is_control(&self) -> bool {
        self.below.is_some() || self.not_below.is_some()
    }

    /// The verdict for `ours` (%), given the paper's figure and, for a control, the mean of
    /// the row it is compared with in this run.
    pub fn verdict(
        &self,
        ours: Option<f64>,
        paper: Option<f64>,
        lowest_other: Option<f64>,
    ) -> Verdict {
        let Some(ours) = ours.filter(|v| v.is_finite()) else {
            return Verdict::NotApplicable;
        };
        let pass = if let Some(d) = self.within {
            match paper {
                Some(p) => (ours - p).abs() <= d,
                None => return Verdict::NotApplicable,
            }
        } else if let Some([lo, hi]) = self.range {
            (lo..=hi).contains(&ours)
        } else if let Some(m) = self.below {
            match lowest_other {
                Some(low) => ours <= low - m,
                None => return Verdict::NotApplicable,
            }
        } else if let Some(m) = self.not_below {
            match lowest_other {
                Some(sib) => ours >= sib - m,
                None => return Verdict::NotApplicable,
            }
        } else {
            return Verdict::NotApplicable;
        };
        if pass {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// The band in words, for the report.
    pub fn describe(&self) -> String {
        if let Some(d) = self.within {
            format!("within {d} pt of the paper")
        } else if let Some([lo, hi]) = self.range {
            format!("in [{lo}, {hi}]")
        } else if let Some(m) = self.below {
            format!(
                "≥ {m} pt below row {}",
                self.than.map_or("?".into(), |t| t.to_string())
            )
        } else if let Some(m) = self.not_below {
            format!(
                "≤ {m} pt below row {}",
                self.than.map_or("?".into(), |t| t.to_string())
            )
        } else {
            "none".into()
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest at `path`, checking that every config file exists
    /// under `root`.
    pub fn load(path: &Path, root: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let m: Manifest = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        m.validate(root)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(m)
    }

    fn validate(&self, root: &Path) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.row {
            let id = format!("table {} row {}", r.table, r.label());
            if !(1..=3).contains(&r.table) {
                return Err(format!("{id}: table must be 1, 2 or 3"));
            }
            if r.own_protocol && !r.fast.is_empty() {
                return Err(format!(
                    "{id}: a row with its own protocol takes no `fast` overrides"
                ));
            }
            if r.paper_r2.is_some() && r.table == 1 {
                return Err(format!(
                    "{id}: `paper_r2` is for the MCC tables (Table 1's score is R² already)"
                ));
            }
            if !seen.insert((r.table, r.row, r.variant.clone())) {
                return Err(format!("{id} is listed twice"));
            }
            if let Some(v) = &r.variant {
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "{id}: variant `{v}` must be a non-empty name of letters, digits and _"
                    ));
                }
                if r.variant_text.is_none() {
                    return Err(format!("{id}: a variant needs `variant_text`"));
                }
                if !self
                    .row
                    .iter()
                    .any(|o| o.table == r.table && o.row == r.row && o.variant.is_none())
                {
                    return Err(format!("{id}: a variant needs its main row listed too"));
                }
            }
            let set = [
                r.check.within.is_some(),
                r.check.range.is_some(),
                r.check.below.is_some(),
                r.check.not_below.is_some(),
            ];
            if set.iter().filter(|&&b| b).count() != 1 {
                return Err(format!(
                    "{id}: check needs exactly one of within, range, below, not_below"
                ));
            }
            if r.check.is_control() != r.check.than.is_some() {
                return Err(format!(
                    "{id}: `than` goes with `below` or `not_below`, and only with them"
                ));
            }
            if let Some([lo, hi]) = r.mcc_band {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(format!("{id}: `mcc_band` must be [lo, hi] with lo ≤ hi"));
                }
            }
            if let Some(t) = r.check.than {
                if !self.row.iter().any(|o| {
                    o.table == r.table && o.row == t && o.variant.is_none() && !o.check.is_control()
                }) {
                    return Err(format!(
                        "{id}: `than = {t}` is not an identifiable row of table {}",
                        r.table
                    ));
                }
            }
            if r.check.within.is_some() && r.paper.is_none() {
                return Err(format!("{id}: a `within` check needs a paper figure"));
            }
            if !root.join(&r.config).is_file() {
                return Err(format!("{id}: config {} does not exist", r.config));
            }
        }
        if !root.join(&self.ablation.config).is_file() {
            return Err(format!(
                "ablation: config {} does not exist",
                self.ablation.config
            ));
        }
        if self.ablation.dims.is_empty() || self.ablation.layers.is_empty() {
            return Err("ablation: dims and layers must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn shipped_manifest_is_valid_and_complete() {
        let m = Manifest::load(&root().join("configs/reproduce.toml"), &root()).unwrap();
        let main = |t: u8| {
            m.row
                .iter()
                .filter(|r| r.table == t && r.variant.is_none())
                .count()
        };
        assert_eq!((main(1), main(2), main(3)), (12, 6, 4));
        assert!(m.row.iter().all(|r| r.own_protocol == (r.table == 3)));
        // Rows 9 and 10 of Table 1 run at a tuned τ (0.1 and 0.03) and also at the paper's τ = 1;
        // rows 11 and 12 already run at τ = 1.
        let tau1: Vec<u32> = m
            .row
            .iter()
            .filter(|r| r.variant.as_deref() == Some("tau1"))
            .map(|r| r.row)
            .collect();
        assert_eq!(tau1, vec![9, 10]);
        for r in m.row.iter().filter(|r| r.variant.is_some()) {
            assert!(
                !r.fast.iter().any(|f| f.starts_with("loss.tau")),
                "{}",
                r.key()
            );
        }
        // Every shipped row config is in the manifest.
        for t in [1, 2, 3] {
            for entry in std::fs::read_dir(root().join(format!("configs/table{t}"))).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if !name.ends_with(".toml") {
                    continue;
                }
                let path = format!("configs/table{t}/{name}");
                assert!(
                    m.row.iter().any(|r| r.config == path),
                    "{path} not in the manifest"
                );
            }
        }
        assert_eq!(m.row.iter().filter(|r| r.check.is_control()).count(), 4);
    }

    #[test]
    fn checks_decide_as_documented() {
        let within = Check {
            within: Some(1.0),
            ..Check::default()
        };
        assert_eq!(within.verdict(Some(99.0), Some(99.42), None), Verdict::Pass);
        assert_eq!(within.verdict(Some(98.0), Some(99.42), None), Verdict::Fail);
        assert_eq!(
            within.verdict(None, Some(99.42), None),
            Verdict::NotApplicable
        );
        assert_eq!(
            within.verdict(Some(f64::NAN), Some(99.42), None),
            Verdict::NotApplicable
        );
        let range = Check {
            range: Some([97.0, 100.0]),
            ..Check::default()
        };
        assert_eq!(range.verdict(Some(97.0), None, None), Verdict::Pass);
        assert_eq!(range.verdict(Some(96.9), None, None), Verdict::Fail);
        let below = Check {
            below: Some(10.0),
            than: Some(1),
            ..Check::default()
        };
        assert_eq!(below.verdict(Some(70.0), None, Some(85.0)), Verdict::Pass);
        assert_eq!(below.verdict(Some(80.0), None, Some(85.0)), Verdict::Fail);
        assert_eq!(
            below.verdict(Some(80.0), None, None),
            Verdict::NotApplicable
        );
        let not_below = Check {
            not_below: Some(3.0),
            than: Some(11),
            ..Check::default()
        };
        assert!(not_below.is_control());
        assert_eq!(
            not_below.verdict(Some(90.0), None, Some(92.5)),
            Verdict::Pass
        );
        assert_eq!(
            not_below.verdict(Some(95.0), None, Some(92.5)),
            Verdict::Pass
        );
        assert_eq!(
            not_below.verdict(Some(89.0), None, Some(92.5)),
            Verdict::Fail
        );
        assert_eq!(
            not_below.verdict(Some(89.0), None, None),
            Verdict::NotApplicable
        );
    }

    #[test]
    fn bad_manifests_are_rejected() {
        let dir = std::env::temp_dir().join(format!("xtask-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = r#"
[[row]]
table = 1
row = 1
config = "configs/table1/row01.toml"
setting = "s"
paper = 99.0
paper_text = "99"
check = CHECK
[ablation]
config = "configs/table1/row02.toml"
dims = [5]
layers = [1]
"#;
        for (check, want) in [
            ("{ within = 1.0, below = 2.0 }", "exactly one"),
            ("{}", "exactly one"),
            ("{ wthin = 1.0 }", "unknown field"),
            ("{ not_below = 1.0 }", "`than` goes with"),
            ("{ within = 1.0, than = 1 }", "`than` goes with"),
            (
                "{ within = 1.0 }\npaper_r2 = 99.0",
                "`paper_r2` is for the MCC tables",
            ),
        ] {
            let p = dir.join("m.toml");
            std::fs::write(&p, base.replace("CHECK", check)).unwrap();
            let e = Manifest::load(&p, &root()).unwrap_err();
            assert!(e.contains(want), "{check}: {e}");
        }
        let p = dir.join("m.toml");
        std::fs::write(
            &p,
            base.replace("CHECK", "{ within = 1.0 }")
                .replace("row01", "row99"),
        )
        .unwrap();
        assert!(Manifest::load(&p, &root())
            .unwrap_err()
            .contains("does not exist"));
        // A variant needs its text and its main row; a row is listed once per variant.
        let (row, tail) = base.split_at(base.find("[ablation]").unwrap());
        let row = row.replace("CHECK", "{ within = 1.0 }");
        for (text, main, want) in [
            ("", true, "needs `variant_text`"),
            ("variant_text = \"τ = 1\"", false, "main row listed"),
            ("variant_text = \"τ = 1\"", true, ""),
        ] {
            let head = if main { row.as_str() } else { "" };
            let text = format!("{head}{row}variant = \"tau1\"\n{text}\n{tail}");
            std::fs::write(&p, text).unwrap();
            match Manifest::load(&p, &root()) {
                Ok(m) => {
                    assert!(want.is_empty(), "accepted, wanted {want}");
                    assert_eq!(m.row[1].key(), "row01-tau1");
                    assert_eq!(m.row[1].label(), "1 (τ = 1)");
                }
                Err(e) => assert!(!want.is_empty() && e.contains(want), "{e}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
