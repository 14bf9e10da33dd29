//! `cargo xtask reproduce`: plan the `clica train` runs of the paper's tables, run them
//! (resumably), and write the tables, the JSON behind them and the figures. The steps both
//! `reproduce` and `ablation` take (building `clica`, a run's arguments, the report header and
//! metadata, atomic writes) live here too.

use crate::lock::Lock;
use crate::manifest::{Manifest, RowSpec};
use crate::options::Options;
use crate::report::{self, Band, RowResult};
use crate::runner::{self, fmt_secs, Job, Outcome};
use clica_records::Summary;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Overrides that make every run tiny: the smoke test checks plumbing, not scores.
const SMOKE: &[&str] = &[
    "train.steps=40",
    "train.batch=64",
    "train.log_every=20",
    "train.warmup_steps=5",
    "eval.samples=256",
    "eval.final_batches=2",
    "eval.supervised_steps=20",
    "mixing.cond_pool=200",
    "encoder.hidden_multipliers=[2, 2]",
];

/// The smoke overrides of a row with its own protocol (the image rows: a conv encoder on
/// rendered images, no MLP keys).
const SMOKE_OWN: &[&str] = &[
    "train.steps=4",
    "train.batch=16",
    "train.log_every=2",
    "train.warmup_steps=1",
    "train.checkpoint_every=2",
    "eval.samples=64",
    "eval.final_batches=1",
    "eval.supervised_steps=2",
    "mixing.size=32",
];

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn protocol_file(protocol: &str, root: &Path) -> Result<PathBuf, String> {
    let p = match protocol {
        "fast" | "paper" => root.join(format!("configs/protocol/{protocol}.toml")),
        other => PathBuf::from(other),
    };
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "--protocol: {} does not exist (use fast, paper or a TOML file)",
            p.display()
        ))
    }
}

/// Takes the lock of the results folder for `cargo xtask <verb>` (released when dropped),
/// so that two invocations never write the same runs and reports. Not with
/// `--print-commands`: that writes nothing there, and the commands it prints run later,
/// under a scheduler, where this process's lock could not cover them.
pub(crate) fn lock_results(o: &Options, verb: &str) -> Result<Option<Lock>, String> {
    if o.print_commands {
        return Ok(None);
    }
    Lock::acquire(&o.out, &format!("cargo xtask {verb}")).map(Some)
}

/// Builds the release `clica` binary and returns its path.
pub(crate) fn build_clica(root: &Path) -> Result<PathBuf, String> {
    eprintln!("==> cargo build --release -p clica");
    let status = crate::cargo()
        .current_dir(root)
        .args(["build", "--release", "-p", "clica"])
        .status()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building clica failed ({status})"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_relative() {
        root.join(target)
    } else {
        target
    };
    let bin = target
        .join("release")
        .join(format!("clica{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built clica but cannot find {}", bin.display()))
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Common arguments of every run: the row config, the protocol (none for a row that carries
/// its own), the protocol's per-row overrides, the seed, the smoke overrides, then the
/// user's (which win).
pub(crate) fn run_args(
    config: &str,
    protocol: Option<&Path>,
    fast: &[String],
    o: &Options,
    seed: u64,
    extra: &[String],
) -> Vec<String> {
    let mut a = vec!["--config".into(), config.into()];
    if let Some(p) = protocol {
        a.push("--config".into());
        a.push(p.display().to_string());
    }
    let is_fast = o.protocol == "fast";
    let sets = fast
        .iter()
        .filter(|_| is_fast)
        .chain(extra)
        .cloned()
        .chain(std::iter::once(format!("seed={seed}")))
        .chain(
            if protocol.is_some() { SMOKE } else { SMOKE_OWN }
                .iter()
                .filter(|_| o.smoke)
                .map(|s| (*s).to_string()),
        )
        .chain(o.sets.iter().cloned());
    for s in sets {
        a.push("--set".into());
        a.push(s);
    }
    a
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn git_commit(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Write to a temporary file and rename it into place, so no reader sees half a file.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One run's scores for progress lines: contrastive, identity and (when run) supervised.
pub(crate) fn describe_summary(metric: &'static str) -> impl Fn(&Summary) -> String + Sync {
    move |s: &Summary| {
        let f = |x: Option<f64>| report::pct(x).map_or("?".into(), |p| format!("{p:.2}"));
        let name = if metric == "r2" { "R²" } else { "MCC" };
        let identity = |m: &str| f(s.identity.as_ref().and_then(|i| i.get(m)));
        let mut t = format!(
            "{name} {} (identity {}",
            f(report::mean_of(s.contrastive.as_ref(), metric)),
            identity(metric)
        );
        if metric == "r2" {
            // An affine fit on at least as many inputs as samples (pixels) interpolates, so the
            // in-sample identity R² is 1 there; the held-out one says what the data give.
            let _ = write!(t, " in-sample, {} held-out", identity("r2_held_out"));
        }
        if s.supervised.is_some() {
            let _ = write!(
                t,
                ", supervised {}",
                f(report::mean_of(s.supervised.as_ref(), metric))
            );
        }
        t.push(')');
        t
    }
}

pub(crate) fn meta(
    o: &Options,
    protocol: &Path,
    root: &Path,
    started: u64,
    wall: f64,
    seeds: u64,
) -> Value {
    json!({
        "protocol": o.protocol,
        "protocol_file": protocol.strip_prefix(root).unwrap_or(protocol).display().to_string(),
        "seeds": (0..seeds).collect::<Vec<_>>(),
        "overrides": o.sets,
        "smoke": o.smoke,
        "jobs": o.jobs,
        "threads_per_run": o.threads(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "git_commit": git_commit(root),
        "started_unix": started,
        "finished_unix": now_unix(),
        "wall_seconds": wall,
        "xtask_version": env!("CARGO_PKG_VERSION"),
    })
}

pub(crate) fn header_line(
    o: &Options,
    seeds: u64,
    wall: f64,
    meta: &Value,
    outcomes: &[Outcome],
) -> String {
    let reused = outcomes
        .iter()
        .filter(|x| matches!(x, Outcome::Done { cached: true, .. }))
        .count();
    let mut h = format!(
        "Protocol `{}`{}, {}, commit `{}`. This invocation: {} of wall time, {} run(s) at a time × \
         {} thread(s), {} of {} run(s) reused from earlier invocations.",
        o.protocol,
        if o.protocol == "fast" {
            " (with the per-row overrides of `configs/reproduce.toml`)"
        } else {
            ""
        },
        if seeds == 1 {
            "seed 0".to_string()
        } else {
            format!("seeds 0..{}", seeds - 1)
        },
        meta["git_commit"].as_str().unwrap_or("unknown"),
        fmt_secs(wall),
        o.jobs,
        o.threads(),
        reused,
        outcomes.len()
    );
    if o.smoke {
        h.push_str(
            "\n\n**Smoke run: tiny steps that check the pipeline; the scores mean nothing.**",
        );
    }
    if !o.sets.is_empty() {
        let _ = write!(h, " Extra overrides: `{}`.", o.sets.join("`, `"));
    }
    h
}

/// Records what the timed runs cost in `meta` and says it in `header`.
pub(crate) fn add_compute(meta: &mut Value, header: &mut String, timed: &[f64], all_runs: usize) {
    let total: f64 = timed.iter().sum();
    meta["run_seconds_total"] = json!(total);
    meta["runs_timed"] = json!(timed.len());
    if !timed.is_empty() {
        let _ = write!(
            header,
            " Compute: the {} timed run(s) of {all_runs} took {} in all, {} per run on average.",
            timed.len(),
            fmt_secs(total),
            fmt_secs(total / timed.len() as f64)
        );
    }
}

pub(crate) fn print_commands(clica: &Path, jobs: &[Job]) {
    for j in jobs {
        let mut line = shell_quote(&clica.display().to_string());
        line.push_str(" train");
        for a in &j.args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        line.push_str(" --out ");
        line.push_str(&shell_quote(&j.dir.display().to_string()));
        println!("{line}");
    }
}

/// `cargo xtask reproduce`.
pub fn reproduce(args: &[String]) -> Result<(), String> {
    let o = Options::parse(args)?;
    let root = root();
    let manifest = Manifest::load(&root.join("configs/reproduce.toml"), &root)?;
    let protocol = protocol_file(&o.protocol, &root)?;
    let seeds = o.seeds.unwrap_or(if o.quick || o.smoke { 1 } else { 3 });
    let selected: Vec<RowSpec> = if o.quick {
        [1u8, 2]
            .iter()
            .filter(|t| o.tables.is_empty() || o.tables.contains(t))
            .filter_map(|&t| manifest.row.iter().find(|r| r.table == t).cloned())
            .collect()
    } else {
        manifest
            .row
            .iter()
            // Table 3 (hours of image training) runs only when asked for by name.
            .filter(|r| {
                if o.tables.is_empty() {
                    r.table <= 2
                } else {
                    o.tables.contains(&r.table)
                }
            })
            .filter(|r| o.rows.is_empty() || o.rows.contains(&r.row))
            .cloned()
            .collect()
    };
    if selected.is_empty() {
        return Err("no rows selected (check --table and --rows)".into());
    }
    let _lock = lock_results(&o, "reproduce")?;
    let clica = build_clica(&root)?;
    let supervised = ["eval.supervised=true".to_string()];
    let mut jobs = Vec::new();
    for r in &selected {
        for seed in 0..seeds {
            jobs.push(Job {
                label: format!("table{} {} seed{seed}", r.table, r.key()),
                args: if r.own_protocol {
                    run_args(&r.config, None, &[], &o, seed, &[])
                } else {
                    run_args(&r.config, Some(&protocol), &r.fast, &o, seed, &supervised)
                },
                dir: o
                    .out
                    .join(format!("runs/table{}/{}/seed{seed}", r.table, r.key())),
            });
        }
    }
    if o.print_commands {
        print_commands(&clica, &jobs);
        return Ok(());
    }
    eprintln!(
        "==> reproduce: {} row(s) × {seeds} seed(s) = {} run(s), protocol {}, {} at a time × {} thread(s); results in {}",
        selected.len(),
        jobs.len(),
        o.protocol,
        o.jobs,
        o.threads(),
        o.out.display()
    );
    let started = now_unix();
    let t0 = Instant::now();
    // Identity and supervised/contrastive scores of one row read with that row's metric.
    let outcomes = runner::run_all(&clica, &jobs, o.jobs, o.threads(), &|s: &Summary| {
        format!(
            "{}; {}",
            describe_summary("r2")(s),
            describe_summary("mcc_pearson")(s)
        )
    });
    let wall = t0.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut k = 0;
    for r in &selected {
        let mut seed_results = Vec::new();
        for seed in 0..seeds {
            let (job, outcome) = (&jobs[k], &outcomes[k]);
            k += 1;
            let summary = match outcome {
                Outcome::Done { summary, .. } => Ok(&**summary),
                Outcome::Failed(e) => Err(e.as_str()),
            };
            seed_results.push(report::seed_result_for(r, seed, &o.out, &job.dir, summary));
        }
        rows.push((r.clone(), seed_results));
    }
    let rows: Vec<RowResult> = report::aggregate(rows);
    let mut meta = meta(&o, &protocol, &root, started, wall, seeds);
    let timed: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.seeds.iter().filter_map(|s| s.run_seconds))
        .collect();
    let all_runs: usize = rows.iter().map(|r| r.seeds.len()).sum();
    let mut header = header_line(&o, seeds, wall, &meta, &outcomes);
    add_compute(&mut meta, &mut header, &timed, all_runs);
    for t in [1u8, 2, 3] {
        if rows.iter().any(|r| r.spec.table == t) {
            let path = o.out.join(format!("table{t}.md"));
            write_file(&path, &report::table_markdown(t, &rows, &header))?;
            write_file(
                &o.out.join(format!("plots/table{t}_summary.svg")),
                &report::summary_plot(t, &rows),
            )?;
            eprintln!("wrote {}", path.display());
        }
    }
    for r in &rows {
        write_file(
            &o.out
                .join(format!("plots/table{}_{}.svg", r.spec.table, r.spec.key())),
            &report::row_plot(r, &o.out),
        )?;
        if let Some(svg) = report::latent_plot(r, &o.out) {
            write_file(
                &o.out.join(format!(
                    "plots/table{}_{}_latents.svg",
                    r.spec.table,
                    r.spec.key()
                )),
                &svg,
            )?;
        }
    }
    let json = json!({ "meta": meta, "rows": rows });
    write_file(
        &o.out.join("results.json"),
        &(serde_json::to_string_pretty(&json).map_err(|e| e.to_string())? + "\n"),
    )?;
    let failed = outcomes
        .iter()
        .filter(|x| matches!(x, Outcome::Failed(_)))
        .count();
    for r in &rows {
        eprintln!(
            "table {} row {:>2}: contrastive {:>14}  paper {:<16} {}",
            r.spec.table,
            r.spec.label(),
            Band::text(r.contrastive),
            r.spec.paper_text,
            r.verdict.mark()
        );
    }
    eprintln!(
        "reproduce: {} run(s) in {}; {failed} failed; tables, results.json and plots/ in {}",
        jobs.len(),
        fmt_secs(wall),
        o.out.display()
    );
    if failed > 0 {
        Err(format!(
            "{failed} run(s) failed; see the tables for their errors"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_give_the_held_out_identity_r2_beside_the_in_sample_one() {
        let s: Summary = serde_json::from_str(
            r#"{"status": "completed", "seed": 0, "generator_fingerprint": "ab", "steps": 10,
            "versions": {"clica": "0.1.0"},
            "identity": {"r2": 1.0, "r2_held_out": 0.1666, "mcc_pearson": 0.3255,
                         "mcc_spearman": 0.2879, "assignment": [0]},
            "contrastive": {"r2": {"mean": 0.7352, "std": 0.001},
                            "r2_held_out": {"mean": 0.7324, "std": 0.002},
                            "mcc_pearson": {"mean": 0.7428, "std": 0.002},
                            "mcc_spearman": {"mean": 0.7445, "std": 0.002}}}"#,
        )
        .unwrap();
        assert_eq!(
            describe_summary("r2")(&s),
            "R² 73.52 (identity 100.00 in-sample, 16.66 held-out)"
        );
        assert_eq!(
            describe_summary("mcc_pearson")(&s),
            "MCC 74.28 (identity 32.55)"
        );
    }

    #[test]
    fn run_arguments_layer_row_protocol_fast_overrides_seed_then_user() {
        let o = Options::of(&["--set", "train.steps=7"]).unwrap();
        let a = run_args(
            "row.toml",
            Some(Path::new("fast.toml")),
            &["loss.tau=0.1".into()],
            &o,
            2,
            &[],
        );
        assert_eq!(
            a.join(" "),
            "--config row.toml --config fast.toml --set loss.tau=0.1 --set seed=2 --set train.steps=7"
        );
        let p = Options::of(&["--protocol", "paper"]).unwrap();
        let a = run_args(
            "row.toml",
            Some(Path::new("paper.toml")),
            &["loss.tau=0.1".into()],
            &p,
            0,
            &[],
        );
        assert!(
            !a.join(" ").contains("tau"),
            "fast-only overrides stay out of the paper protocol"
        );
        // A row with its own protocol: no protocol file.
        let a = run_args("t3.toml", None, &[], &o, 1, &[]);
        assert_eq!(
            a.join(" "),
            "--config t3.toml --set seed=1 --set train.steps=7"
        );
        assert_eq!(
            shell_quote("encoder.hidden_multipliers=[2, 2]"),
            "'encoder.hidden_multipliers=[2, 2]'"
        );
    }
}
