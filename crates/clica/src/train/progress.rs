//! Progress reporting: the [`Observer`] a run calls, and [`Progress`], the display on
//! stderr.

use clica_records::LogPoint;

/// Receives progress; every method has a no-op default.
pub trait Observer {
    /// Called once before the first step of a phase.
    fn start(&mut self, _total_steps: u64, _what: &str) {}
    /// Called after every step.
    fn step(&mut self, _step: u64, _loss: f64, _elapsed_s: f64) {}
    /// Called at every log point.
    fn log(&mut self, _point: &LogPoint) {}
    /// Called once after the last step of a phase.
    fn finish(&mut self) {}
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}

/// Progress on stderr: a live line with step, loss, R² and ETA on a terminal; one plain line
/// per log point otherwise.
pub struct Progress {
    tty: bool,
    total: u64,
    what: String,
    last_r2: f64,
    last_draw: f64,
}

impl Default for Progress {
    fn default() -> Self {
        use std::io::IsTerminal;
        Progress {
            tty: std::io::stderr().is_terminal(),
            total: 0,
            what: String::new(),
            last_r2: f64::NAN,
            last_draw: -1.0,
        }
    }
}

impl Observer for Progress {
    fn start(&mut self, total: u64, what: &str) {
        self.total = total;
        self.what = what.to_string();
        self.last_draw = -1.0;
    }
    fn step(&mut self, step: u64, loss: f64, elapsed: f64) {
        if !self.tty || (elapsed - self.last_draw < 0.2 && step != self.total) {
            return;
        }
        self.last_draw = elapsed;
        let eta = elapsed / step as f64 * (self.total - step) as f64;
        eprint!(
            "\r{} step {step}/{} ({:.0}%)  loss {loss:.4}  r2 {:.4}  eta {}   ",
            self.what,
            self.total,
            100.0 * step as f64 / self.total as f64,
            self.last_r2,
            fmt_secs(eta)
        );
    }
    fn log(&mut self, p: &LogPoint) {
        self.last_r2 = p.r2;
        if !self.tty {
            let raw = p
                .r2_raw
                .map_or_else(String::new, |r| format!(" (raw weights {r:.4})"));
            eprintln!(
                "{} step {}/{}  loss {:.4}  r2 {:.4}{raw}  mcc {:.4}  lr {:.2e}  {:.1}s",
                self.what, p.step, self.total, p.loss, p.r2, p.mcc, p.lr, p.elapsed_s
            );
        }
    }
    fn finish(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}
