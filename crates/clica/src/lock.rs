//! One process per run folder: `clica train` holds a [`RunLock`] on its folder, so a second
//! invocation on the same folder (a second `--out`, a `--resume` while the run goes on)
//! refuses instead of interleaving its writes with the first one's.
//!
//! The lock is the file `.lock` in the folder, holding the holder's process id. It comes into
//! being atomically with its content (a hard link to a fully written temporary file, which
//! fails if `.lock` exists), so nobody ever reads a half-written lock. A lock whose process
//! no longer runs (killed, crashed) or whose content is not a process id is stale: it is
//! taken over, with a one-line note on stderr. Dropping the [`RunLock`] removes the file.
//!
//! Whether a process runs is read from `/proc/<pid>` on Linux (a zombie counts as gone) and
//! asked of `kill -0` where there is no `/proc`. The lock is therefore only as good as process
//! ids are: it protects a folder against processes of the same machine (and the same pid
//! namespace), and a lock left by a killed run is held again if its process id has been given
//! to another process since; the refusal names that process, so it can be checked.

use crate::{Error, Result};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a run folder.
pub const FILE: &str = ".lock";

/// A held lock on a run folder; released (the file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of folder `dir` (which must exist) for this process.
    ///
    /// # Errors
    /// [`Error::Locked`] when a live process holds it, naming its process id;
    /// [`Error::Io`] when the lock file cannot be written or read.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(FILE);
        let me = std::process::id();
        let tmp = dir.join(format!("{FILE}.{me}.tmp"));
        write_synced(&tmp, format!("{me}\n").as_bytes()).map_err(|e| Error::io(&tmp, e))?;
        let taken = take(dir, &path, &tmp);
        let _ = fs::remove_file(&tmp);
        taken.map(|()| RunLock { path })
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only this process's own lock: never remove one that was taken over meanwhile.
        if holder(&self.path).ok().flatten() == Some(Holder::Pid(std::process::id())) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What a lock file says.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Holder {
    Pid(u32),
    /// Not a process id (the text, shortened).
    Garbage(String),
}

/// Reads the holder of lock file `path`; `None` if there is no such file.
fn holder(path: &Path) -> std::io::Result<Option<Holder>> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            Ok(Some(match text.parse() {
                Ok(pid) if pid > 0 => Holder::Pid(pid),
                _ => Holder::Garbage(text.chars().take(40).collect()),
            }))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Links `tmp` (this process's lock content) as `path`, taking over stale locks.
fn take(dir: &Path, path: &Path, tmp: &Path) -> Result<()> {
    let io = |e| Error::io(path, e);
    // Each round either takes the lock, refuses, or removes a stale lock; a few rounds only
    // when other processes take and release it at the same moment.
    for _ in 0..100 {
        match fs::hard_link(tmp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let Some(found) = holder(path).map_err(io)? else {
            continue; // released meanwhile
        };
        let why = match &found {
            Holder::Pid(pid) if process_alive(*pid) => {
                return Err(Error::Locked(format!(
                    "{} is in use by another clica process (pid {pid}); wait for it to finish or stop it",
                    dir.display()
                )))
            }
            Holder::Pid(pid) => format!("process {pid} is no longer running"),
            Holder::Garbage(text) => format!("it holds {text:?}, not a process id"),
        };
        if remove_if_still(path, &found, dir).map_err(io)? {
            eprintln!(
                "note: taking over the stale lock {} ({why})",
                path.display()
            );
        }
    }
    Err(io(std::io::Error::other(
        "the lock keeps changing hands; try again",
    )))
}

/// Removes lock `path` if it still says `found`. It is first moved aside (an atomic rename),
/// so that a process taking the lock at the same moment keeps its fresh lock: if what was
/// moved is not the stale lock, it is put back. Returns whether the stale lock was removed.
fn remove_if_still(path: &Path, found: &Holder, dir: &Path) -> std::io::Result<bool> {
    let aside = dir.join(format!("{FILE}.{}.stale", std::process::id()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if holder(&aside)?.as_ref() == Some(found) {
        fs::remove_file(&aside)?;
        return Ok(true);
    }
    // Someone else's fresh lock: back into place, unless a third process holds the name now.
    let back = fs::hard_link(&aside, path);
    fs::remove_file(&aside)?;
    match back {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
        _ => Ok(false),
    }
}

/// Takes the lock of run folder `dir` (which must exist) and then removes the temporary files
/// a killed process left there ([`crate::io::remove_stale_temporaries`]): what a caller does
/// before it trains into `dir` or resumes the run there (`clica train`, the Python
/// package's `clica.train`). The lock is held until the returned [`RunLock`] is dropped.
///
/// # Errors
/// As [`RunLock::acquire`]; [`Error::Io`] naming `dir` when it cannot be cleaned up.
pub fn lock_run_folder(dir: &Path) -> Result<RunLock> {
    let lock = RunLock::acquire(dir)?;
    crate::io::remove_stale_temporaries(dir).map_err(|e| {
        Error::io(
            dir,
            std::io::Error::new(e.kind(), format!("cannot clean up the run folder: {e}")),
        )
    })?;
    Ok(lock)
}

/// Whether process `pid` is running.
#[must_use]
pub fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") && Path::new("/proc/self/stat").exists() {
        // The state is the field after the command's closing parenthesis; Z and X are
        // processes that have exited.
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !matches!(
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next()),
                Some("Z" | "X" | "x")
            ),
            Err(_) => false,
        }
    } else if cfg!(unix) {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .map_or(true, |s| s.success())
    } else {
        // No way to ask: assume it runs (the refusal names it, so it can be checked).
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("clica-lock-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// The folder holds nothing but what the test put there (no temporary files left).
    fn files(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn acquire_writes_the_pid_and_drop_releases() {
        let d = tmpdir("acquire");
        let lock = RunLock::acquire(&d).unwrap();
        assert_eq!(lock.path(), d.join(FILE));
        let text = fs::read_to_string(d.join(FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        assert_eq!(files(&d), [FILE]);
        drop(lock);
        assert!(files(&d).is_empty());
        // And it can be taken again.
        drop(RunLock::acquire(&d).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_held_lock_is_refused_in_one_line_naming_the_pid() {
        let d = tmpdir("refuse");
        let lock = RunLock::acquire(&d).unwrap();
        let err = RunLock::acquire(&d).unwrap_err();
        assert!(matches!(err, Error::Locked(_)), "{err:?}");
        let msg = err.to_string();
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&d.display().to_string()), "{msg}");
        // The refused attempt left the holder's lock alone.
        assert_eq!(files(&d), [FILE]);
        drop(lock);
        // A lock of another live process is refused the same way.
        fs::write(d.join(FILE), "1\n").unwrap();
        assert!(process_alive(1));
        let msg = RunLock::acquire(&d).unwrap_err().to_string();
        assert!(msg.contains("(pid 1)"), "{msg}");
        fs::remove_dir_all(&d).unwrap();
    }

    /// A lock file holding `content` is taken over, and released again.
    fn assert_taken_over(d: &Path, content: &str) {
        fs::write(d.join(FILE), content).unwrap();
        let lock = RunLock::acquire(d).unwrap();
        assert_eq!(
            holder(lock.path()).unwrap(),
            Some(Holder::Pid(std::process::id())),
            "{content:?}"
        );
        assert_eq!(files(d), [FILE], "{content:?}");
        drop(lock);
        assert!(files(d).is_empty(), "{content:?}");
    }

    #[test]
    fn a_lock_of_a_dead_process_is_taken_over() {
        let d = tmpdir("stale");
        let pid = dead_pid();
        assert!(!process_alive(pid));
        assert_taken_over(&d, &format!("{pid}\n"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_lock_without_a_pid_is_taken_over() {
        let d = tmpdir("garbage");
        for garbage in ["", "not a pid\n", "0", "-5", "\u{0}\u{ff}"] {
            assert_taken_over(&d, garbage);
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn drop_leaves_a_lock_taken_over_by_another_process() {
        let d = tmpdir("drop-other");
        let lock = RunLock::acquire(&d).unwrap();
        fs::write(d.join(FILE), "1\n").unwrap();
        drop(lock);
        assert_eq!(holder(&d.join(FILE)).unwrap(), Some(Holder::Pid(1)));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_folder_is_an_io_error() {
        let d = tmpdir("missing").join("nope");
        let err = RunLock::acquire(&d).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(dead_pid()));
    }
}
