//! Runs `clica train` jobs: one independent process per (row, seed), `--jobs` at a time,
//! skipping runs that already completed with the same resolved configuration and resuming
//! interrupted ones from their checkpoint.

use clica_records::{Status, Summary};
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// File in a run folder holding the wall time of the `clica` process that produced it.
pub const RUN_TIME_FILE: &str = "xtask_run.json";

/// One `clica train` run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Short label for progress lines, e.g. `table1 row01 seed0`.
    pub label: String,
    /// `clica train` arguments, without `--out`.
    pub args: Vec<String>,
    /// Output folder of the run.
    pub dir: PathBuf,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Completed now or before; holds `summary.json`.
    Done {
        /// The run's summary (boxed: it is large next to an error line).
        summary: Box<Summary>,
        /// True when an earlier completed run was reused.
        cached: bool,
    },
    /// `clica` failed; holds its last error line.
    Failed(String),
}

/// The resolved configuration `clica train --dry-run` prints for `job`.
fn resolved_config(clica: &Path, job: &Job) -> Result<String, String> {
    let out = Command::new(clica)
        .arg("train")
        .args(&job.args)
        .arg("--out")
        .arg(&job.dir)
        .arg("--dry-run")
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", clica.display()))?;
    if !out.status.success() {
        return Err(last_line(&String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

/// Whether the run in `dir` was started from exactly `resolved`: its `config.toml` is the
/// resolved config followed by a `[run]` table.
fn written_from(dir: &Path, resolved: &str) -> bool {
    std::fs::read_to_string(dir.join("config.toml")).is_ok_and(|c| c.starts_with(resolved))
}

/// The wall time xtask recorded for the `clica` process that produced the run in `dir`.
pub fn run_seconds(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(RUN_TIME_FILE)).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["wall_seconds"].as_f64()
}

/// `summary.json` of the completed run in `dir`, or one line saying why there is none
/// (naming the file): missing, not a clica summary, or a run that did not complete.
pub fn read_completed(dir: &Path) -> Result<Summary, String> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let summary: Summary = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a clica summary: {e}", path.display()))?;
    match summary.status {
        Status::Completed => Ok(summary),
        other => Err(format!(
            "{}: the run did not complete (status {}{})",
            path.display(),
            other.name(),
            summary
                .message
                .as_deref()
                .map_or(String::new(), |m| format!(": {m}"))
        )),
    }
}

/// `summary.json` of a completed run in `dir` whose `config.toml` was written from exactly
/// `resolved`, or one line saying why not.
fn completed_or_why(dir: &Path, resolved: &str) -> Result<Summary, String> {
    if !written_from(dir, resolved) {
        return Err(format!(
            "{} was not written from this run's configuration",
            dir.join("config.toml").display()
        ));
    }
    read_completed(dir)
}

/// `summary.json` of a completed run in `dir` whose `config.toml` was written from exactly
/// `resolved`; `None` (rerun it) for anything else, a summary that does not parse included.
pub fn completed_summary(dir: &Path, resolved: &str) -> Option<Summary> {
    completed_or_why(dir, resolved).ok()
}

fn run_one(clica: &Path, job: &Job, threads: usize) -> Outcome {
    let resolved = match resolved_config(clica, job) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    if let Some(summary) = completed_summary(&job.dir, &resolved) {
        return Outcome::Done {
            summary: Box::new(summary),
            cached: true,
        };
    }
    if let Err(e) = std::fs::create_dir_all(&job.dir) {
        return Outcome::Failed(format!("cannot create {}: {e}", job.dir.display()));
    }
    let log_path = job.dir.join("train.log");
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(format!("cannot create {}: {e}", log_path.display())),
    };
    let log_err = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    // An interrupted run of the same configuration continues from its checkpoint; if that
    // fails (say the checkpoint is from another build), the run starts afresh.
    let resumable =
        job.dir.join("checkpoint.safetensors").is_file() && written_from(&job.dir, &resolved);
    let train = |resume: bool, log: std::fs::File, log_err: std::fs::File| {
        let mut cmd = Command::new(clica);
        cmd.arg("train").args(&job.args);
        if resume {
            cmd.arg("--resume").arg(&job.dir);
        } else {
            cmd.arg("--out").arg(&job.dir);
        }
        cmd.env("RAYON_NUM_THREADS", threads.to_string())
            .stdout(log)
            .stderr(log_err)
            .status()
    };
    let mut status = train(resumable, log, log_err);
    let completed = |st: &std::io::Result<std::process::ExitStatus>| {
        matches!(st, Ok(s) if s.success()) && completed_summary(&job.dir, &resolved).is_some()
    };
    if resumable && !completed(&status) {
        let (log, log_err) = match std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)))
        {
            Ok(pair) => pair,
            Err(e) => return Outcome::Failed(format!("cannot reopen {}: {e}", log_path.display())),
        };
        status = train(false, log, log_err);
    }
    match status {
        Ok(s) if s.success() => match completed_or_why(&job.dir, &resolved) {
            Ok(summary) => Outcome::Done {
                summary: Box::new(summary),
                cached: false,
            },
            Err(e) => Outcome::Failed(format!("finished but {e}")),
        },
        Ok(s) => {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            Outcome::Failed(format!(
                "{s}: {} (log: {})",
                last_line(&text),
                log_path.display()
            ))
        }
        Err(e) => Outcome::Failed(format!("cannot start {}: {e}", clica.display())),
    }
}

/// Runs every job, `jobs` at a time, each with `threads` rayon threads; prints one line per
/// finished job with an ETA; returns the outcomes in job order.
pub fn run_all(
    clica: &Path,
    jobs: &[Job],
    parallel: usize,
    threads: usize,
    describe: &(dyn Fn(&Summary) -> String + Sync),
) -> Vec<Outcome> {
    let queue: Arc<Mutex<VecDeque<usize>>> = Arc::new(Mutex::new((0..jobs.len()).collect()));
    let results: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; jobs.len()]));
    let progress = Arc::new(Mutex::new((0usize, 0usize, 0.0f64))); // finished, run now, seconds
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            let (queue, results, progress) = (queue.clone(), results.clone(), progress.clone());
            scope.spawn(move || loop {
                let Some(i) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let t0 = Instant::now();
                let outcome = run_one(clica, &jobs[i], threads);
                let secs = t0.elapsed().as_secs_f64();
                if let Outcome::Done { cached: false, .. } = &outcome {
                    // The process's wall time (contrastive + supervised + scoring), kept
                    // beside the run so reports can state what an uncached run costs.
                    let note = serde_json::json!({ "wall_seconds": secs, "threads": threads });
                    let _ = std::fs::write(jobs[i].dir.join(RUN_TIME_FILE), note.to_string());
                }
                let mut p = progress.lock().expect("progress lock");
                p.0 += 1;
                let what = match &outcome {
                    Outcome::Done {
                        cached: true,
                        summary,
                    } => {
                        format!("cached: {}", describe(summary))
                    }
                    Outcome::Done { summary, .. } => {
                        p.1 += 1;
                        p.2 += secs;
                        format!("{} in {secs:.0} s", describe(summary))
                    }
                    Outcome::Failed(e) => format!("FAILED: {e}"),
                };
                let remaining = jobs.len() - p.0;
                let eta = if p.1 > 0 && remaining > 0 {
                    let per = p.2 / p.1 as f64;
                    format!(
                        ", ETA {}",
                        fmt_secs(per * remaining as f64 / parallel.max(1) as f64)
                    )
                } else {
                    String::new()
                };
                eprintln!(
                    "[{}/{}] {}: {what} (elapsed {}{eta})",
                    p.0,
                    jobs.len(),
                    jobs[i].label,
                    fmt_secs(start.elapsed().as_secs_f64())
                );
                drop(p);
                results.lock().expect("results lock")[i] = Some(outcome);
            });
        }
    });
    let results = Arc::try_unwrap(results)
        .expect("workers finished")
        .into_inner()
        .expect("results lock");
    results
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed("not run".into())))
        .collect()
}

/// `1 h 02 min`, `3 min 05 s`, `42 s`.
pub fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest summary a completed run can have.
    const COMPLETED: &str = r#"{"status": "completed", "seed": 0, "generator_fingerprint": "ab",
        "steps": 10, "versions": {"clica": "0.1.0"}}"#;

    #[test]
    fn completed_run_is_recognised_only_with_the_same_config() {
        let dir = std::env::temp_dir().join(format!("xtask-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let resolved = "seed = 0\n[train]\nsteps = 10\n";
        std::fs::write(
            dir.join("config.toml"),
            format!("{resolved}\n[run]\nseed = 0\ngenerator_fingerprint = \"ab\"\n"),
        )
        .unwrap();
        assert!(
            completed_summary(&dir, resolved).is_none(),
            "no summary yet"
        );
        let file = dir.join("summary.json").display().to_string();
        let e = read_completed(&dir).unwrap_err();
        assert!(e.starts_with("cannot read ") && e.contains(&file), "{e}");
        std::fs::write(
            dir.join("summary.json"),
            COMPLETED.replace("completed\"", "interrupted\", \"message\": \"stopped\""),
        )
        .unwrap();
        assert!(completed_summary(&dir, resolved).is_none(), "not completed");
        assert_eq!(
            read_completed(&dir).unwrap_err(),
            format!("{file}: the run did not complete (status interrupted: stopped)")
        );
        std::fs::write(dir.join("summary.json"), COMPLETED).unwrap();
        let s = completed_summary(&dir, resolved).unwrap();
        assert_eq!((s.status, s.steps), (Status::Completed, 10));
        assert!(
            completed_summary(&dir, "seed = 1\n").is_none(),
            "other config"
        );
        assert_eq!(
            completed_or_why(&dir, "seed = 1\n").unwrap_err(),
            format!(
                "{} was not written from this run's configuration",
                dir.join("config.toml").display()
            )
        );
        for bad in [r#"{"status": "compl"#, r#"{"status": "completed"}"#] {
            std::fs::write(dir.join("summary.json"), bad).unwrap();
            assert!(
                completed_summary(&dir, resolved).is_none(),
                "truncated or incomplete summary {bad}"
            );
            let e = read_completed(&dir).unwrap_err();
            assert!(
                e.starts_with(&format!("{file} is not a clica summary: ")) && !e.contains('\n'),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(42.4), "42 s");
        assert_eq!(fmt_secs(185.0), "3 min 05 s");
        assert_eq!(fmt_secs(3725.0), "1 h 02 min");
    }
}
