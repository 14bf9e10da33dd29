//! One `cargo xtask reproduce` or `ablation` at a time per results folder.
//!
//! The lock is a file `DIR/.lock` holding the holder's process id and what it is
//! (`1234\ncargo xtask reproduce\n`), created with `create_new` so that exactly one of two
//! racing invocations gets it. A second invocation refuses with one line naming the holder.
//! A lock whose process is gone (killed, or the machine restarted) or whose content names no
//! process is stale: it is taken over with a one-line note. Only one process at a time may
//! remove a stale lock (it holds `DIR/.lock.takeover` meanwhile and judges the lock again
//! first), so two invocations that find the same stale lock never both end up holding the
//! folder. [`Lock`] removes the file when dropped, on success and on every error path; a
//! process killed outright leaves it behind, and the next invocation takes it over.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name inside the folder it guards.
pub const LOCK_FILE: &str = ".lock";

/// Held (for a moment) by the one process that removes a stale lock.
const GUARD_FILE: &str = ".lock.takeover";

/// A held lock on a folder; released (its file removed) on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    content: String,
}

/// Who a lock file names: its process id (`None` when the file names none) and what it is.
fn holder(content: &str) -> (Option<u32>, &str) {
    let mut lines = content.lines();
    let pid = lines.next().and_then(|l| l.trim().parse().ok());
    let what = lines.next().map_or("", str::trim);
    (
        pid,
        if what.is_empty() {
            "another process"
        } else {
            what
        },
    )
}

/// Whether process `pid` is running. On Linux: `/proc/<pid>` exists. Elsewhere on Unix:
/// `kill -0` succeeds. Where neither can tell, every process counts as alive (the lock is
/// never taken from a live holder; a stale one is then removed by hand).
pub fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .map_or(true, |s| s.success())
    }
}

/// Creates `path` holding `content` if it does not exist (`create_new`: of racing
/// processes exactly one does); `Ok(false)` when it exists.
fn create(path: &Path, content: &str) -> Result<bool, String> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut file) => match file.write_all(content.as_bytes()) {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(format!("cannot write {}: {e}", path.display()))
            }
        },
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// The content of `path` once its writer has finished it. Between `create_new` and the
/// write, a racing reader sees an unfinished file (not ending in a newline); it waits a
/// moment for the rest rather than judge a lock being written stale. `None` when the file
/// has gone.
fn read_finished(path: &Path) -> Result<Option<String>, String> {
    let mut text = String::new();
    for _ in 0..20 {
        text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if text.ends_with('\n') {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(text))
}

/// The live process a lock file's content names, if any.
fn live_holder(content: &str) -> Option<(u32, &str)> {
    match holder(content) {
        (Some(pid), what) if alive(pid) => Some((pid, what)),
        _ => None,
    }
}

/// Removes the lock at `path` if it is stale, holding the takeover guard `DIR/.lock.takeover`
/// meanwhile. Only a guard holder removes another process's lock, and it judges the lock
/// again once it holds the guard: of several processes that found the same stale lock, the
/// first removes it and the others find the new holder's lock (or none) and leave it.
fn remove_stale(path: &Path) -> Result<(), String> {
    let guard = path.with_file_name(GUARD_FILE);
    let me = format!("{}\n", std::process::id());
    let mut waits = 0;
    while !create(&guard, &me)? {
        let Some(found) = read_finished(&guard)? else {
            continue;
        };
        match live_holder(&found) {
            // Another process is taking the lock over right now: a moment's work.
            Some(_) if waits < 300 => {
                waits += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Some((pid, _)) => {
                return Err(format!(
                    "cannot take over {}: process {pid} has held {} for 3 s",
                    path.display(),
                    guard.display()
                ))
            }
            None => {
                return Err(format!(
                    "{} was left by a process that stopped while taking over {}; remove it by hand",
                    guard.display(),
                    path.display()
                ))
            }
        }
    }
    let judged = (|| {
        let Some(found) = read_finished(path)? else {
            return Ok(());
        };
        if live_holder(&found).is_some() {
            return Ok(()); // taken meanwhile: the caller finds the new holder
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(format!(
                    "cannot remove the stale lock {}: {e}",
                    path.display()
                ))
            }
            _ => {}
        }
        match holder(&found) {
            (Some(pid), what) => eprintln!(
                "xtask: {} was left by {what} (process {pid}), which is not running; taking it over",
                path.display()
            ),
            (None, _) => eprintln!(
                "xtask: {} names no process ({:?}); taking it over",
                path.display(),
                found.chars().take(40).collect::<String>()
            ),
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&guard);
    judged
}

impl Lock {
    /// Takes the lock on `dir` (created if missing) for `what` (e.g. `cargo xtask
    /// reproduce`), taking over a stale one with a note on stderr.
    ///
    /// # Errors
    /// One line: the folder is in use (naming the holder's process id), or an I/O error.
    pub fn acquire(dir: &Path, what: &str) -> Result<Lock, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let content = format!("{}\n{what}\n", std::process::id());
        // Each round takes the lock, refuses, or removes a stale lock (or sees the lock
        // vanish) and tries again.
        for _ in 0..8 {
            if create(&path, &content)? {
                return Ok(Lock { path, content });
            }
            let Some(found) = read_finished(&path)? else {
                continue;
            };
            if let Some((pid, what)) = live_holder(&found) {
                let mut shown = dir.display().to_string();
                if !shown.ends_with('/') {
                    shown.push('/');
                }
                return Err(format!(
                    "{shown} is in use by {what} (process {pid}); wait for it or stop it"
                ));
            }
            remove_stale(&path)?;
        }
        Err(format!(
            "cannot take {}: other processes keep taking and releasing it",
            path.display()
        ))
    }
}

impl Drop for Lock {
    /// Removes the lock file if it is still this lock's (it always is, unless someone
    /// removed or replaced it by hand).
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|c| c == self.content) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A process id that is certainly not running: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid), "process {pid} still running after wait");
        pid
    }

    #[test]
    fn acquire_refuse_release() {
        let dir = folder("refuse");
        let lock = Lock::acquire(&dir, "cargo xtask reproduce").unwrap();
        let me = std::process::id();
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
            format!("{me}\ncargo xtask reproduce\n")
        );
        assert!(alive(me));
        let e = Lock::acquire(&dir, "cargo xtask ablation").unwrap_err();
        assert_eq!(
            e,
            format!(
                "{}/ is in use by cargo xtask reproduce (process {me}); wait for it or stop it",
                dir.display()
            )
        );
        assert!(!e.contains('\n'));
        assert!(
            dir.join(LOCK_FILE).is_file(),
            "a refusal leaves the holder's lock alone"
        );
        drop(lock);
        assert!(!dir.join(LOCK_FILE).exists(), "released on drop");
        let again = Lock::acquire(&dir, "cargo xtask ablation").unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn released_on_an_error_path() {
        let dir = folder("error");
        let run = || -> Result<(), String> {
            let _lock = Lock::acquire(&dir, "cargo xtask reproduce")?;
            Err("a run failed".into())
        };
        assert_eq!(run().unwrap_err(), "a run failed");
        assert!(!dir.join(LOCK_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over() {
        let dir = folder("stale");
        std::fs::create_dir_all(&dir).unwrap();
        let dead = dead_pid();
        std::fs::write(
            dir.join(LOCK_FILE),
            format!("{dead}\ncargo xtask reproduce\n"),
        )
        .unwrap();
        let lock = Lock::acquire(&dir, "cargo xtask ablation").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
            format!("{}\ncargo xtask ablation\n", std::process::id())
        );
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing left beside the lock: {names:?}");
        drop(lock);
        assert!(!dir.join(LOCK_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_naming_no_process_is_taken_over() {
        for (name, garbage) in [
            ("garbage", "not a process id\n"),
            ("binary", "\u{0}\u{1}\u{2}\n"),
            ("unfinished", "garbage without a newline"),
            ("empty", ""),
        ] {
            let dir = folder(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(LOCK_FILE), garbage).unwrap();
            let lock = Lock::acquire(&dir, "cargo xtask reproduce").unwrap();
            assert!(
                std::fs::read_to_string(dir.join(LOCK_FILE))
                    .unwrap()
                    .starts_with(&format!("{}\n", std::process::id())),
                "{name}"
            );
            drop(lock);
            assert!(!dir.join(LOCK_FILE).exists(), "{name}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_lock_replaced_by_hand_is_left_alone_on_drop() {
        let dir = folder("replaced");
        let lock = Lock::acquire(&dir, "cargo xtask reproduce").unwrap();
        std::fs::write(dir.join(LOCK_FILE), "1\nsomeone else\n").unwrap();
        drop(lock);
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
            "1\nsomeone else\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Of `n` threads racing for `dir`, exactly one gets it; the others are told who has it.
    fn race(dir: &Path, n: usize) {
        let barrier = std::sync::Barrier::new(n);
        let results: Vec<Result<Lock, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Lock::acquire(dir, "cargo xtask reproduce")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(
                    e.contains(" is in use by cargo xtask reproduce (process "),
                    "{e}"
                );
            }
        }
        drop(results);
        assert!(!dir.join(LOCK_FILE).exists());
        assert!(!dir.join(GUARD_FILE).exists());
    }

    #[test]
    fn racing_invocations_get_one_lock_fresh_or_stale() {
        let dir = folder("race");
        for _ in 0..20 {
            race(&dir, 8);
        }
        let dead = dead_pid();
        for _ in 0..20 {
            std::fs::write(
                dir.join(LOCK_FILE),
                format!("{dead}\ncargo xtask reproduce\n"),
            )
            .unwrap();
            race(&dir, 8);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn holders_read_from_lock_files() {
        assert_eq!(
            holder("12\ncargo xtask reproduce\n"),
            (Some(12), "cargo xtask reproduce")
        );
        assert_eq!(holder("12\n"), (Some(12), "another process"));
        assert_eq!(holder(" 12 \n x \n"), (Some(12), "x"));
        assert_eq!(holder("x12\n"), (None, "another process"));
        assert_eq!(holder(""), (None, "another process"));
    }
}
