//! `cargo xtask`: the project's task runner. No numerics here: it shells out to cargo.
//!
//! * `cargo xtask ci` — what CI runs: format check, clippy with warnings as errors (without
//!   and with the optional dfdx backend), the dependency-layering check, rustdoc with
//!   warnings as errors, the dfdx backend's tests, the Python package's pytest suite (as
//!   `python` below), then the whole test suite in release, ending with one summary line
//!   `tests: N passed, N failed, N skipped` that counts the Rust and the Python tests.
//! * `cargo xtask python` — only the Python package: builds `crates/clica-py` into the
//!   virtual environment `target/py-venv` and runs its pytest suite.
//! * `cargo xtask layering` — only the dependency-layering check.
//! * `cargo xtask reproduce` — the paper's Tables 1 and 2: one `clica train` process per row
//!   and seed, resumable, then the tables, `results.json` and SVG figures (see `--help`).
//! * `cargo xtask ablation` — contrastive R² against latent dimension and mixing depth.
//!
//! xtask never computes a score: it launches the release `clica` binary and aggregates the
//! JSON it writes (means and standard deviations over seeds, band checks, plots).
#![forbid(unsafe_code)]

mod ablation;
mod lock;
mod manifest;
mod options;
mod report;
mod reproduce;
mod runner;
mod svg;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// Crates that must build without the autodiff stack, and without each other.
const DATA_CRATES: &[&str] = &[
    "clica-core",
    "clica-priors",
    "clica-generators",
    "clica-eval",
    "clica-objectives",
    "clica-optim",
    "clica-records",
    "clica-render",
];
/// The record types are read by tools that must link no numerics: serde is all they may use.
const RECORDS_CRATE: &str = "clica-records";
const RECORDS_DEPS: &[&str] = &["serde"];
/// clica-encoders carries the (optional) dfdx backend, so it is off limits as a whole.
const FORBIDDEN_FOR_DATA: &[&str] = &["dfdx", "clica-encoders"];
/// The workspace features that build the dfdx backend (off by default).
const DFDX_FEATURES: &str = "clica-encoders/dfdx,clica/dfdx";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("layering") => layering(),
        Some("reproduce") => reproduce::reproduce(&args[1..]),
        Some("ablation") => ablation::ablation(&args[1..]),
        Some("smoke") => smoke(),
        Some("python") => python().and_then(|c| c.verdict("pytest")),
        _ => {
            eprintln!("usage: cargo xtask <ci|layering|reproduce|ablation|smoke|python> (reproduce --help for its options)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn step(title: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("\n==> {title}");
    let status = cmd
        .status()
        .map_err(|e| format!("{title}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title} failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "cargo clippy -D warnings, with the dfdx backend",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            DFDX_FEATURES,
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    layering()?;
    step(
        "cargo doc (warnings are errors)",
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    smoke()?;
    step(
        "cargo test --release -p clica-encoders --features dfdx",
        cargo().args([
            "test",
            "--release",
            "-p",
            "clica-encoders",
            "--features",
            "dfdx",
        ]),
    )?;
    step(
        "cargo test --release -p clica --features dfdx --test cli dfdx",
        cargo().args([
            "test",
            "--release",
            "-p",
            "clica",
            "--features",
            "dfdx",
            "--test",
            "cli",
            "dfdx",
        ]),
    )?;
    // Counted into the final summary line; a failing Python test fails CI there.
    let python = python()?;
    tests(python)
}

/// Test counts, as the final summary line reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl Counts {
    /// `Ok` when something ran and nothing failed.
    fn verdict(self, what: &str) -> Result<(), String> {
        println!(
            "{what}: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        if self.failed == 0 && self.passed > 0 {
            Ok(())
        } else {
            Err(format!("{what} failed"))
        }
    }
}

/// The versions CI installs into the Python environment (from the package registry).
const PYTHON_PACKAGES: &[&str] = &["maturin==1.16.0", "numpy==2.4.6", "pytest==9.2.0"];

/// The Python package: creates the virtual environment `target/py-venv` (with the `python3`
/// on PATH, or `$CLICA_PYTHON`) if missing, installs [`PYTHON_PACKAGES`] into it, builds and
/// installs `crates/clica-py` with `pip install` (maturin as the PEP 517 backend), and runs
/// its pytest suite against the release `clica` binary (`CLICA_BIN`). Setup failures are
/// errors; test failures are counted.
fn python() -> Result<Counts, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    let venv = root.join("target/py-venv");
    let bin = venv.join("bin");
    let py = bin.join("python");
    if !py.exists() {
        let python3 = std::env::var("CLICA_PYTHON").unwrap_or_else(|_| "python3".into());
        step(
            &format!("{python3} -m venv target/py-venv"),
            Command::new(&python3).args(["-m", "venv"]).arg(&venv),
        )?;
    }
    // pip's build step finds maturin on PATH.
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&paths)))
            .map_err(|e| e.to_string())?;
    let in_venv = |args: &[&str]| {
        let mut c = Command::new(&py);
        c.args(args)
            .current_dir(&root)
            .env("PATH", &path)
            .env("VIRTUAL_ENV", &venv);
        c
    };
    let pip = ["-m", "pip", "install", "-q", "--disable-pip-version-check"];
    step(
        &format!("pip install {}", PYTHON_PACKAGES.join(" ")),
        &mut in_venv(&[&pip[..], PYTHON_PACKAGES].concat()),
    )?;
    step(
        "cargo build --release -p clica (the binary the Python tests compare with)",
        cargo().args(["build", "--release", "-p", "clica"]),
    )?;
    step(
        "pip install ./crates/clica-py",
        &mut in_venv(
            &[
                &pip[..],
                &["--no-build-isolation", "--force-reinstall", "--no-deps"],
                &["./crates/clica-py"],
            ]
            .concat(),
        ),
    )?;
    let junit = venv.join("junit.xml");
    let _ = std::fs::remove_file(&junit);
    eprintln!("\n==> pytest crates/clica-py/tests");
    let status = in_venv(&[
        "-m",
        "pytest",
        "crates/clica-py/tests",
        "-q",
        "-p",
        "no:cacheprovider",
    ])
    .arg(format!("--junitxml={}", junit.display()))
    .env("CLICA_BIN", root.join("target/release/clica"))
    .status()
    .map_err(|e| format!("cannot start pytest: {e}"))?;
    let xml = std::fs::read_to_string(&junit)
        .map_err(|e| format!("pytest wrote no report {} ({status}): {e}", junit.display()))?;
    let counts = junit_counts(&xml)?;
    if !status.success() && counts.failed == 0 {
        return Err(format!("pytest failed ({status}) without a failing test"));
    }
    Ok(counts)
}

/// The counts of a pytest JUnit XML report: its `<testsuite>` element's `tests`,
/// `failures`, `errors` and `skipped` attributes (errors count as failures).
fn junit_counts(xml: &str) -> Result<Counts, String> {
    let start = xml
        .find("<testsuite ")
        .ok_or("the pytest report has no <testsuite>")?;
    let end = xml[start..].find('>').ok_or("truncated pytest report")?;
    let tag = &xml[start..start + end];
    let attr = |name: &str| -> Result<u64, String> {
        let key = format!(" {name}=\"");
        let at = tag
            .find(&key)
            .ok_or_else(|| format!("the pytest report has no `{name}`"))?
            + key.len();
        tag[at..]
            .split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("the pytest report's `{name}` is not a count"))
    };
    let failed = attr("failures")? + attr("errors")?;
    let skipped = attr("skipped")?;
    Ok(Counts {
        passed: attr("tests")?.saturating_sub(failed + skipped),
        failed,
        skipped,
    })
}

/// The end-to-end smoke test of `reproduce` and `ablation` with tiny runs: every output file
/// appears, and a second invocation reuses the completed runs instead of rerunning them.
fn smoke() -> Result<(), String> {
    eprintln!(
        "\n==> reproduce and ablation smoke test (tiny runs; checks the pipeline, not scores)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    let out = root.join("target/xtask-smoke");
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    let out_s = out.display().to_string();
    let args: Vec<String> = [
        "--smoke", "--table", "1,2,3", "--rows", "1,6,12", "--jobs", "2", "--out", &out_s,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    reproduce::reproduce(&args)?;
    let summary = out.join("runs/table1/row01/seed0/summary.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let first = modified(&summary).ok_or("smoke: no summary.json for table 1 row 1")?;
    reproduce::reproduce(&args)?;
    if modified(&summary) != Some(first) {
        return Err("smoke: a completed run was rerun instead of reused".into());
    }
    let ablation: Vec<String> = [
        "--smoke", "--dims", "3,4", "--layers", "1,2", "--out", &out_s,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ablation::ablation(&ablation)?;
    for f in [
        "table1.md",
        "table2.md",
        "results.json",
        "plots/table1_summary.svg",
        "plots/table2_summary.svg",
        "plots/table1_row01.svg",
        "plots/table2_row06.svg",
        "table3.md",
        "plots/table3_row01.svg",
        "ablation.md",
        "ablation.json",
        "plots/ablation.svg",
    ] {
        let p = out.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            return Err(format!("smoke: {} is missing or empty", p.display()));
        }
    }
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("smoke: results.json: {e}"))?;
    let rows = results["rows"].as_array().map_or(0, Vec::len);
    // Table 1 rows 1, 6, 12; Table 2 rows 1, 6; Table 3 row 1.
    if rows != 6 {
        return Err(format!("smoke: results.json has {rows} rows, expected 6"));
    }
    eprintln!("smoke ok: 6 rows (Tables 1, 2 and 3) and a 2 × 2 ablation end to end; completed runs are reused");
    Ok(())
}

/// `cargo tree -q -e normal --all-features -p krate` followed by `extra`.
fn tree(krate: &str, extra: &[&str]) -> Command {
    let mut c = cargo();
    c.args(["tree", "-q", "-e", "normal", "--all-features", "-p", krate])
        .args(extra);
    c
}

/// `cargo tree -e normal -p A --all-features -i B` succeeds exactly when A depends on B
/// (normal edges) with every feature of A on, optional dependencies included.
fn depends_on(krate: &str, dep: &str) -> bool {
    tree(krate, &["-i", dep])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The names of `krate`'s direct normal dependencies, every feature on.
fn direct_deps(krate: &str) -> Result<Vec<String>, String> {
    let out = tree(krate, &["--depth", "1", "--prefix", "none"])
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The first line is the crate itself; each other line is `name vX.Y.Z [(path)]`.
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect())
}

fn layering() -> Result<(), String> {
    eprintln!("\n==> dependency layering");
    // The check must be able to fail: first make sure the crates and the tool are there.
    if !depends_on("clica", "clica-core") {
        return Err(
            "layering check is broken: `cargo tree` does not see clica -> clica-core".into(),
        );
    }
    // dfdx is optional (off by default): the check must see it where its feature is on.
    if !depends_on("clica-encoders", "dfdx") {
        return Err(
            "layering check is broken: `cargo tree --all-features` does not see clica-encoders -> dfdx"
                .into(),
        );
    }
    let mut bad = Vec::new();
    for &krate in DATA_CRATES {
        for &dep in FORBIDDEN_FOR_DATA {
            if depends_on(krate, dep) {
                bad.push(format!("{krate} depends on {dep} (the data and scoring crates must build without autodiff)"));
            }
        }
        for &other in DATA_CRATES {
            if other != krate && other != "clica-core" && depends_on(krate, other) {
                bad.push(format!(
                    "{krate} depends on {other} (algorithm crates depend only on clica-core)"
                ));
            }
        }
    }
    match direct_deps(RECORDS_CRATE) {
        Ok(deps) if deps.is_empty() => bad.push(format!(
            "layering check is broken: `cargo tree` lists no dependency of {RECORDS_CRATE}"
        )),
        Ok(deps) => {
            for d in deps.iter().filter(|d| !RECORDS_DEPS.contains(&d.as_str())) {
                bad.push(format!(
                    "{RECORDS_CRATE} depends on {d} (it may depend on {RECORDS_DEPS:?} only)"
                ));
            }
        }
        Err(e) => bad.push(e),
    }
    if bad.is_empty() {
        eprintln!(
            "layering ok: {} checked against {:?} and each other; {RECORDS_CRATE} depends on {RECORDS_DEPS:?} only",
            DATA_CRATES.join(", "),
            FORBIDDEN_FOR_DATA
        );
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// Runs the workspace tests in release, echoing output, and ends with one summary line that
/// adds `python`'s counts.
fn tests(python: Counts) -> Result<(), String> {
    eprintln!("\n==> cargo test --workspace --release");
    let mut child = cargo()
        .args(["test", "--workspace", "--release", "--no-fail-fast"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start cargo test: {e}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    let stdout = child.stdout.take().ok_or("no stdout from cargo test")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut it = part.split_whitespace().rev();
                let (word, num) = (it.next(), it.next());
                let n: u64 = num.and_then(|n| n.parse().ok()).unwrap_or(0);
                match word {
                    Some("passed") => passed += n,
                    Some("failed") => failed += n,
                    Some("ignored") => ignored += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let rust_passed = passed;
    let (passed, failed, ignored) = (
        passed + python.passed,
        failed + python.failed,
        ignored + python.skipped,
    );
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    if status.success() && failed == 0 && rust_passed > 0 && python.passed > 0 {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_counts_read_pytest_reports() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="3" tests="40" time="1.2" timestamp="x" hostname="h"><testcase classname="a" name="b" time="0.1" /></testsuite></testsuites>"#;
        assert_eq!(
            junit_counts(xml).unwrap(),
            Counts {
                passed: 34,
                failed: 3,
                skipped: 3
            }
        );
        assert!(junit_counts("<testsuites></testsuites>").is_err());
        assert!(
            junit_counts(r#"<testsuite tests="x" errors="0" failures="0" skipped="0">"#).is_err()
        );
    }
}
