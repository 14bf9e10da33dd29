//! A run killed at any moment resumes to the same results, and a run folder holds one
//! process at a time.
//!
//! The kill sweep stops a short run (the default configuration, 60 contrastive and 40
//! supervised steps, a checkpoint every 3 steps, metrics every 5) at 20 moments spread over
//! both phases, the boundary between them and the end, each by SIGKILL at an exact point of
//! an atomic write (the test-only `CLICA_FAULT` hook of `clica::io`): with a checkpoint, a
//! metrics file, the encoder or the summary written to its temporary file but not renamed,
//! renamed but its folder not synced, or just complete. After each kill `clica train
//! --resume` (twice where the first resume is killed too) finishes the run, and its results
//! equal an uninterrupted run's bit for bit, with nothing left over in the folder. A second
//! test sends real SIGKILLs at moments the test does not choose exactly.
//!
//! No test here measures time: moments are chosen by counting writes, and processes are
//! waited for however long they take.
#![cfg(unix)]

mod common;

use common::{assert_ok, assert_one_line_error, assert_same_results, clica, s};
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The default configuration made short; only `train.*` and `eval.*` keys.
const SETS: &[&str] = &[
    "train.steps=60",
    "train.batch=64",
    "train.log_every=5",
    "train.checkpoint_every=3",
    "eval.supervised=true",
    "eval.supervised_steps=40",
    "eval.samples=256",
    "eval.final_batches=2",
];

const CHECKPOINT: &str = "checkpoint.safetensors";
const SIGKILL: i32 = 9;

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("sweep", name)
}

/// `clica train` on `out` with `fault` as `CLICA_FAULT` (none: unset).
fn train_cmd(out: &Path, fault: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clica"));
    c.arg("train");
    for set in SETS {
        c.args(["--set", set]);
    }
    c.args(["--out", s(out)]);
    with_fault(c, fault)
}

/// `clica train --resume dir` with `fault` as `CLICA_FAULT`.
fn resume_cmd(dir: &Path, fault: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clica"));
    c.args(["train", "--resume", s(dir)]);
    with_fault(c, fault)
}

fn with_fault(mut c: Command, fault: Option<&str>) -> Command {
    match fault {
        Some(f) => c.env("CLICA_FAULT", f),
        None => c.env_remove("CLICA_FAULT"),
    };
    c.stdin(Stdio::null());
    c
}

/// Runs `c` to its end; returns its process id and output.
fn run(mut c: Command) -> (u32, Output) {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clica");
    let pid = child.id();
    (pid, child.wait_with_output().expect("wait for clica"))
}

fn assert_killed(out: &Output, what: &str) {
    assert_eq!(
        out.status.signal(),
        Some(SIGKILL),
        "{what}: expected a SIGKILL, got {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files of folder `d`, sorted by name.
fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The uninterrupted reference run and the files it wrote, in order (`writes[k - 1]` is the
/// file of the `k`-th atomic write).
struct Reference {
    dir: PathBuf,
    writes: Vec<String>,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tmpdir("reference");
        let (_, out) = run(train_cmd(&dir, Some("trace")));
        assert_ok(&out);
        let writes: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("clica-fault: write "))
            .enumerate()
            .map(|(i, l)| {
                let (k, name) = l.split_once(' ').unwrap();
                assert_eq!(k.parse::<usize>().unwrap(), i + 1, "{l}");
                name.to_string()
            })
            .collect();
        assert!(!writes.is_empty(), "no trace of the writes");
        assert!(!listing(&dir).contains(&".lock".to_string()));
        Reference { dir, writes }
    })
}

/// One place to kill a run.
struct Moment {
    what: &'static str,
    /// `CLICA_FAULT` of the run: `<point>:<k>`, the `k`-th write of the run.
    fault: String,
    /// The file of that write.
    file: String,
    /// `CLICA_FAULT` of the first resume, if it is to be killed too.
    resume_fault: Option<&'static str>,
}

/// The 20 moments, from the reference run's writes.
fn moments(writes: &[String]) -> Vec<Moment> {
    let of = |file: &str| -> Vec<usize> {
        (1..=writes.len())
            .filter(|&k| writes[k - 1] == file)
            .collect()
    };
    let first = |file: &str| *of(file).first().unwrap_or_else(|| panic!("no {file}"));
    let (enc, summary) = (first("encoder.safetensors"), first("summary.json"));
    let ck = of(CHECKPOINT);
    let ck_c: Vec<usize> = ck.iter().copied().filter(|&k| k < enc).collect();
    let ck_s: Vec<usize> = ck
        .iter()
        .copied()
        .filter(|&k| k > enc && k < summary)
        .collect();
    let (m, ms) = (of("metrics.jsonl"), of("metrics_supervised.jsonl"));
    assert!(
        ck_c.len() >= 8 && ck_s.len() >= 4 && m.len() >= 5 && ms.len() >= 4,
        "too few writes to spread the moments over: {writes:?}"
    );
    let metrics_after = |k: usize| *m.iter().find(|&&j| j > k).unwrap();
    let (c, sv) = (ck_c.len(), ck_s.len());
    let list: [(&str, &str, usize, Option<&'static str>); 20] = [
        ("contrastive: the first checkpoint just written", "after_write", ck_c[0], None),
        ("contrastive: a checkpoint in its temporary file", "before_rename", ck_c[1], None),
        ("contrastive: a checkpoint renamed, its folder not synced", "after_rename", ck_c[2], None),
        ("contrastive: metrics logged past the checkpoint", "after_write", metrics_after(ck_c[2]), None),
        ("contrastive: the metrics file in its temporary file", "before_rename", m[4], None),
        ("contrastive: a checkpoint renamed, mid-phase", "after_rename", ck_c[c / 2 - 2], None),
        (
            "contrastive: a checkpoint in its temporary file, then the resume killed at its 3rd checkpoint's rename",
            "before_rename",
            ck_c[c / 2],
            Some("after_rename:3:checkpoint.safetensors"),
        ),
        ("contrastive: a checkpoint just written, late in the phase", "after_write", ck_c[3 * c / 4], None),
        ("boundary: the phase's last checkpoint in its temporary file", "before_rename", ck_c[c - 1], None),
        ("boundary: the phase's last checkpoint renamed", "after_rename", ck_c[c - 1], None),
        ("boundary: the encoder in its temporary file", "before_rename", enc, None),
        ("boundary: the encoder renamed", "after_rename", enc, None),
        ("supervised: its first metrics just written", "after_write", ms[0], None),
        ("supervised: the first checkpoint in its temporary file", "before_rename", ck_s[0], None),
        ("supervised: the first checkpoint just written", "after_write", ck_s[0], None),
        (
            "supervised: a checkpoint renamed, then the resume killed writing the summary",
            "after_rename",
            ck_s[sv / 2],
            Some("before_rename:1:summary.json"),
        ),
        ("supervised: the metrics file in its temporary file", "before_rename", ms[3], None),
        ("end: the phase's last checkpoint renamed", "after_rename", ck_s[sv - 1], None),
        ("end: the summary in its temporary file", "before_rename", summary, None),
        ("end: the last write (the run's final checkpoint) renamed", "after_rename", writes.len(), None),
    ];
    list.into_iter()
        .map(|(what, point, k, resume_fault)| Moment {
            what,
            fault: format!("{point}:{k}"),
            file: writes[k - 1].clone(),
            resume_fault,
        })
        .collect()
}

/// After a kill: the killed process's lock left behind, no torn metrics line, and, for a
/// kill before a rename, the temporary file of that write.
fn check_killed_folder(d: &Path, pid: u32, before_rename: Option<&str>) {
    let lock = std::fs::read_to_string(d.join(".lock")).expect("the killed run's lock");
    assert_eq!(lock.trim(), pid.to_string());
    check_files(d);
    if let Some(file) = before_rename {
        assert!(
            d.join(format!(".{file}.tmp{pid}")).exists(),
            "the temporary file of {file}: {:?}",
            listing(d)
        );
    }
}

/// Every metrics line that was written parses (none is torn).
fn check_files(d: &Path) {
    for f in ["metrics.jsonl", "metrics_supervised.jsonl"] {
        if d.join(f).exists() {
            common::metrics(&d.join(f)); // every line parses
        }
    }
}

/// Resumes until the run completes (the first resume killed with `resume_fault` if given)
/// and compares with the reference.
fn resume_to_the_end(d: &Path, resume_fault: Option<&str>) {
    let faults = resume_fault.into_iter().map(Some).chain([None]);
    for fault in faults {
        let stale_lock = d.join(".lock").exists();
        let (pid, out) = run(resume_cmd(d, fault));
        let err = String::from_utf8_lossy(&out.stderr);
        if stale_lock {
            assert!(err.contains("taking over the stale lock"), "{err}");
        }
        if fault.is_some() {
            assert_killed(&out, "the resume");
            check_killed_folder(d, pid, None);
        } else {
            assert_ok(&out);
        }
    }
    let r = reference();
    assert_same_results(d, &r.dir);
    assert_eq!(listing(d), listing(&r.dir), "files left over");
}

fn run_moment(i: usize, m: &Moment) {
    let d = tmpdir(&format!("moment{i:02}"));
    let (pid, out) = run(train_cmd(&d, Some(&m.fault)));
    assert_killed(&out, "the run");
    let before = m
        .fault
        .starts_with("before_rename")
        .then_some(m.file.as_str());
    check_killed_folder(&d, pid, before);
    resume_to_the_end(&d, m.resume_fault);
    std::fs::remove_dir_all(&d).unwrap();
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

#[test]
fn killed_at_20_moments_each_run_resumes_to_bit_identical_results() {
    let r = reference();
    let moments = moments(&r.writes);
    assert_eq!(moments.len(), 20);
    let start = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    // Several at once: much of a run is spent waiting for fsync.
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(m) = moments.get(i) else { break };
                let r = std::panic::catch_unwind(|| run_moment(i, m));
                let line = format!(
                    "moment {:2} ({}, write of {}): {}",
                    i + 1,
                    m.fault,
                    m.file,
                    m.what
                );
                match r {
                    Ok(()) => eprintln!("ok    {line}"),
                    Err(e) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{line}: {}", panic_text(e.as_ref()))),
                }
            });
        }
    });
    eprintln!(
        "{} moments of {} writes in {:.1}s",
        moments.len(),
        r.writes.len(),
        start.elapsed().as_secs_f64()
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_run_killed_before_its_first_checkpoint_is_refused_by_resume_and_starts_again() {
    let r = reference();
    let first_ck = r.writes.iter().position(|w| w == CHECKPOINT).unwrap() + 1;
    let d = tmpdir("before-first-checkpoint");
    let (_, out) = run(train_cmd(&d, Some(&format!("before_rename:{first_ck}"))));
    assert_killed(&out, "the run");
    let (_, out) = run(resume_cmd(&d, None));
    assert_one_line_error(&out, &["no checkpoint"]);
    // The same `--out` again starts from scratch (taking over the stale lock).
    let (_, out) = run(train_cmd(&d, None));
    assert_ok(&out);
    assert_same_results(&d, &r.dir);
    assert_eq!(listing(&d), listing(&r.dir), "files left over");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Starts a traced run and sends it SIGKILL as soon as its `k`-th write is reported (the run
/// goes on meanwhile, so the kill lands a little later, wherever that is). Returns false if
/// the run had completed before the kill.
fn kill_after_write(d: &Path, k: usize) -> bool {
    let mut child = train_cmd(d, Some("trace"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("clica-fault: write {k} ");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().starts_with(&prefix)),
        "the run ended before write {k}"
    );
    let pid = child.id();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    for _ in lines {} // let it write to a closed pipe no more
    let status = child.wait().unwrap();
    if status.success() {
        return false;
    }
    assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");
    // Its lock, unless the kill came in the instant between releasing it and exiting.
    if let Ok(lock) = std::fs::read_to_string(d.join(".lock")) {
        assert_eq!(lock.trim(), pid.to_string());
    }
    check_files(d);
    true
}

#[test]
fn real_sigkills_in_both_phases_resume_to_bit_identical_results() {
    let r = reference();
    let ck: Vec<usize> = (1..=r.writes.len())
        .filter(|&k| r.writes[k - 1] == CHECKPOINT)
        .collect();
    let enc = r
        .writes
        .iter()
        .position(|w| w == "encoder.safetensors")
        .unwrap()
        + 1;
    let sup = ck.iter().position(|&k| k > enc).unwrap();
    // After the second checkpoint, mid-way through the contrastive phase and early in the
    // supervised one.
    for (i, k) in [ck[1], ck[sup / 2], ck[sup + 1]].into_iter().enumerate() {
        let d = tmpdir(&format!("real{i}"));
        // A kill that comes after the run's end (a very busy machine) is tried again.
        assert!(
            (0..5).any(|_| kill_after_write(&d, k)),
            "the run always completed before the kill"
        );
        resume_to_the_end(&d, None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// The state of process `pid` (`R`, `S`, `T` for stopped, …).
fn process_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Every file of folder `d` with its bytes.
fn snapshot(d: &Path) -> Vec<(String, Vec<u8>)> {
    listing(d)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(d.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_second_train_on_a_folder_in_use_is_refused_naming_the_pid() {
    let r = reference();
    let d = tmpdir("locked");
    // The run stops itself (SIGSTOP) after its second checkpoint: certainly in progress.
    let k = (1..=r.writes.len())
        .filter(|&k| r.writes[k - 1] == CHECKPOINT)
        .nth(1)
        .unwrap();
    let mut first = train_cmd(&d, Some(&format!("pause:{k}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    let since = std::time::Instant::now();
    while process_state(pid).as_deref() != Some("T") {
        assert!(first.try_wait().unwrap().is_none(), "the run ended");
        // A safety net against a hang, not a time limit on the run.
        assert!(since.elapsed().as_secs() < 600, "the run never paused");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before = snapshot(&d);
    let lock = std::fs::read_to_string(d.join(".lock")).unwrap();
    assert_eq!(lock.trim(), pid.to_string());

    let holder = format!("pid {pid}");
    let needles = [holder.as_str(), "in use", s(&d)];
    let mut second = vec!["train"];
    for set in SETS {
        second.extend(["--set", set]);
    }
    second.extend(["--out", s(&d)]);
    assert_one_line_error(&clica(&second), &needles);
    assert_one_line_error(&clica(&["train", "--resume", s(&d)]), &needles);
    assert!(
        snapshot(&d) == before,
        "the refused runs wrote to the folder"
    );

    Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert_same_results(&d, &r.dir);
    assert_eq!(listing(&d), listing(&r.dir), "the lock is released");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `clica train` with the sweep's settings plus `extra`, on `out`.
fn train_with_cmd(out: &Path, extra: &[&str], fault: Option<&str>) -> Command {
    let mut c = train_cmd(out, None);
    // `--out` came last in `train_cmd`; later `--set`s still apply.
    for set in extra {
        c.args(["--set", set]);
    }
    with_fault(c, fault)
}

#[test]
fn a_run_with_averaged_weights_resumes_to_bit_identical_results_and_is_scored_with_them() {
    let ema = ["train.ema=0.9"];
    let plain = tmpdir("ema-plain");
    let full = tmpdir("ema-full");
    let killed = tmpdir("ema-killed");
    assert_ok(&run(train_with_cmd(&full, &ema, None)).1);
    // Killed just after its 5th checkpoint (contrastive step 15 of 60), then resumed.
    let (_, out) = run(train_with_cmd(
        &killed,
        &ema,
        Some("after_write:5:checkpoint.safetensors"),
    ));
    assert_killed(&out, "the averaged run");
    assert_ok(&run(resume_cmd(&killed, None)).1);
    assert_same_results(&killed, &full);
    // The average is what is scored and saved: the plain run differs.
    assert_ok(&run(train_cmd(&plain, None)).1);
    let score =
        |d: &Path| common::json(&d.join("summary.json"))["contrastive"]["r2"]["mean"].clone();
    assert_ne!(score(&plain), score(&full));
    let weights = |d: &Path| std::fs::read(d.join("encoder.safetensors")).unwrap();
    assert_ne!(weights(&plain), weights(&full));
    // Every logged point of the averaged run also scores its raw weights on the same
    // samples: the plain run trains the same weights and draws the same samples, so its R²
    // is that raw score, bit for bit; the plain run writes no raw score of its own.
    let points = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (averaged, raw) = (points(&full), points(&plain));
    assert_eq!(averaged.len(), raw.len());
    assert!(!averaged.is_empty());
    for (a, r) in averaged.iter().zip(&raw) {
        assert_eq!(a["step"], r["step"]);
        assert_eq!(a["r2_raw"], r["r2"], "step {}", a["step"]);
        assert!(r.get("r2_raw").is_none());
    }
    assert!(averaged.iter().zip(&raw).any(|(a, r)| a["r2"] != r["r2"]));
}
