//! Crash-safe file output: results are written to a temporary file, flushed to disk and
//! renamed into place, so a reader never sees a half-written file.
//!
//! # Fault injection (tests only)
//!
//! The environment variable `CLICA_FAULT` lets the reliability tests stop a process at an
//! exact moment of a write, which a timed signal cannot hit reliably. It is read once per
//! process; when it is unset a write pays one atomic load. Nobody should set it outside
//! tests.
//!
//! * `CLICA_FAULT=<point>:<n>` kills the process with SIGKILL at `<point>` of its `n`-th
//!   atomic write (counted from 1); `CLICA_FAULT=<point>:<n>:<file name>` counts only the
//!   writes of files with that name (e.g. `checkpoint.safetensors`). The points are
//!   `before_rename` (the temporary file is written and synced, the target is untouched),
//!   `after_rename` (the target is replaced, its folder not yet synced) and `after_write`
//!   (the write is complete).
//! * `CLICA_FAULT=pause:<n>[:<file name>]` stops the process with SIGSTOP after that write
//!   (it goes on when sent SIGCONT), so a test can act while a run is certainly in progress.
//! * `CLICA_FAULT=trace` prints `clica-fault: write <k> <file name>` on stderr after the
//!   `k`-th atomic write, so a test can count a run's writes before choosing where to stop.
//!
//! The process is stopped by sending itself SIGKILL (through `kill`), like a real crash and
//! without the core dump of an abort; if that cannot be done it aborts. Either way no
//! destructor runs and no buffer is flushed.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Writes `bytes` to `path` atomically: temporary sibling file, `fsync`, rename, `fsync` of
/// the folder.
///
/// # Errors
/// Any I/O error from creating, writing, syncing or renaming.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let name = name.to_string_lossy();
    let fault = fault::arm(&name);
    let tmp = dir.join(temporary_name(&name, std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fault::hit(fault, fault::Point::BeforeRename);
    fs::rename(&tmp, path)?;
    fault::hit(fault, fault::Point::AfterRename);
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    fault::hit(fault, fault::Point::AfterWrite);
    fault::trace(&name);
    Ok(())
}

/// The temporary file [`write_atomic`] writes `name` through in process `pid`.
fn temporary_name(name: &str, pid: u32) -> String {
    format!(".{name}.tmp{pid}")
}

/// Removes the temporary files that [`write_atomic`] left in `dir` when a process died
/// between writing and renaming them (a SIGKILL, a power cut); those of live processes are
/// kept. Returns how many were removed. Meant for a folder its caller holds the
/// [`crate::lock::RunLock`] of.
///
/// # Errors
/// The folder cannot be listed or a stale file cannot be removed.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_pid) else {
            continue;
        };
        if pid != std::process::id() && !crate::lock::process_alive(pid) {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => removed += 1,
            }
        }
    }
    Ok(removed)
}

/// The process id in a [`temporary_name`], if `file` is one.
fn temporary_pid(file: &str) -> Option<u32> {
    let rest = file.strip_prefix('.')?;
    let (name, pid) = rest.rsplit_once(".tmp")?;
    if name.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The `CLICA_FAULT` hook (see the module documentation).
mod fault {
    use super::{AtomicU64, OnceLock, Ordering};

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(super) enum Point {
        BeforeRename,
        AfterRename,
        AfterWrite,
        /// After the write, stopped rather than killed.
        Pause,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Spec {
        Trace,
        Kill {
            point: Point,
            n: u64,
            name: Option<String>,
        },
    }

    fn parse(text: &str) -> Option<Spec> {
        if text == "trace" {
            return Some(Spec::Trace);
        }
        let mut parts = text.splitn(3, ':');
        let point = match parts.next()? {
            "before_rename" => Point::BeforeRename,
            "after_rename" => Point::AfterRename,
            "after_write" => Point::AfterWrite,
            "pause" => Point::Pause,
            _ => return None,
        };
        let n = parts.next()?.parse().ok().filter(|&n| n > 0)?;
        let name = parts.next().map(str::to_string);
        Some(Spec::Kill { point, n, name })
    }

    fn spec() -> Option<&'static Spec> {
        static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
        SPEC.get_or_init(|| {
            let text = std::env::var("CLICA_FAULT").ok()?;
            let spec = parse(&text);
            if spec.is_none() {
                eprintln!("note: ignoring CLICA_FAULT={text:?} (see clica::io)");
            }
            spec
        })
        .as_ref()
    }

    /// Writes counted (all of them when tracing, those of the named file otherwise).
    static COUNT: AtomicU64 = AtomicU64::new(0);

    /// Counts a write of file `name`; returns the point to stop this write at, if any.
    pub(super) fn arm(name: &str) -> Option<Point> {
        match spec()? {
            Spec::Kill {
                point,
                n,
                name: only,
            } if only.as_deref().is_none_or(|o| o == name) => {
                (COUNT.fetch_add(1, Ordering::SeqCst) + 1 == *n).then_some(*point)
            }
            _ => None,
        }
    }

    /// Kills the process if this write was armed at `point`; pauses it at
    /// [`Point::AfterWrite`] if it was armed to pause.
    pub(super) fn hit(armed: Option<Point>, point: Point) {
        let signal = match armed {
            Some(a) if a == point => "-KILL",
            Some(Point::Pause) if point == Point::AfterWrite => "-STOP",
            _ => return,
        };
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .is_ok_and(|s| s.success());
        // After a SIGKILL this is not reached: the signal is delivered before `kill` exits.
        if !sent || signal == "-KILL" {
            std::process::abort();
        }
    }

    /// Reports a completed write of `name` when tracing.
    pub(super) fn trace(name: &str) {
        if let Some(Spec::Trace) = spec() {
            let k = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
            eprintln!("clica-fault: write {k} {name}");
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn specs_parse() {
            assert_eq!(parse("trace"), Some(Spec::Trace));
            assert_eq!(
                parse("before_rename:3"),
                Some(Spec::Kill {
                    point: Point::BeforeRename,
                    n: 3,
                    name: None
                })
            );
            assert_eq!(
                parse("after_rename:1:checkpoint.safetensors"),
                Some(Spec::Kill {
                    point: Point::AfterRename,
                    n: 1,
                    name: Some("checkpoint.safetensors".into())
                })
            );
            assert!(parse("after_write:2").is_some());
            assert!(parse("pause:1:summary.json").is_some());
            for bad in [
                "",
                "before_rename",
                "before_rename:0",
                "later:1",
                "after_write:x",
            ] {
                assert_eq!(parse(bad), None, "{bad}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised() {
        let t = temporary_name("checkpoint.safetensors", 4321);
        assert_eq!(t, ".checkpoint.safetensors.tmp4321");
        assert_eq!(temporary_pid(&t), Some(4321));
        for other in [
            "checkpoint.safetensors",
            ".lock",
            ".x.tmp",
            ".tmp12",
            ".x.tmp12a",
            "x.tmp12",
        ] {
            assert_eq!(temporary_pid(other), None, "{other}");
        }
    }

    #[test]
    fn stale_temporaries_are_removed_and_live_ones_kept() {
        let d = std::env::temp_dir().join(format!("clica-io-{}-stale", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let stale = d.join(temporary_name("summary.json", dead_pid));
        let mine = d.join(temporary_name("summary.json", std::process::id()));
        let kept = d.join("summary.json");
        for f in [&stale, &mine, &kept] {
            fs::write(f, b"{}").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&d).unwrap(), 1);
        assert!(!stale.exists());
        assert!(mine.exists() && kept.exists());
        write_atomic(&kept, b"[]").unwrap();
        assert_eq!(fs::read(&kept).unwrap(), b"[]");
        fs::remove_dir_all(&d).unwrap();
    }
}
