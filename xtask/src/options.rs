//! The flags of `cargo xtask reproduce` and `cargo xtask ablation`: parsing and validation.

use std::path::PathBuf;

const USAGE: &str = "\
usage: cargo xtask reproduce [options]     the paper's Tables 1 and 2 (and 3 with --table 3)
       cargo xtask ablation [options]      contrastive R² against latent dimension and mixing depth

options (both):
  --seeds K          seeds 0..K-1 per row (default: reproduce 3, ablation 1)
  --protocol P       fast | paper, or a path to a protocol TOML (default fast)
  --out DIR          results folder (default results)
  --jobs J           runs at a time (default 1); each gets cores/J threads unless --threads
  --threads T        rayon threads per run
  --set KEY=VALUE    extra override for every run (repeatable)
  --smoke            tiny runs that check the pipeline, not the scores (what CI runs)
  --print-commands   print one `clica train` command per run and exit (for a batch scheduler)
reproduce only:
  --table 1|2|3      only this table (repeatable or comma-separated); Table 3 (3DIdent-like
                     images, 28-41 min per run on 2 cores) runs only when named
  --rows 1,5         only these rows
  --quick            one seed, the first row of each table (the README's main job)
ablation only:
  --dims 5,10        latent dimensions (default from configs/reproduce.toml)
  --layers 1,3       mixing depths (default from configs/reproduce.toml)";

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) tables: Vec<u8>,
    pub(crate) rows: Vec<u32>,
    pub(crate) seeds: Option<u64>,
    pub(crate) protocol: String,
    pub(crate) quick: bool,
    pub(crate) out: PathBuf,
    pub(crate) jobs: usize,
    pub(crate) threads: Option<usize>,
    pub(crate) sets: Vec<String>,
    pub(crate) smoke: bool,
    pub(crate) print_commands: bool,
    pub(crate) dims: Vec<usize>,
    pub(crate) layers: Vec<usize>,
}

fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("{flag}: `{s}` is not a valid number"))
        })
        .collect()
}

/// A count that must be at least 1 (`--seeds`, `--jobs`, `--threads`).
fn positive<T: std::str::FromStr + PartialOrd + From<u8>>(
    flag: &str,
    v: &str,
) -> Result<T, String> {
    v.parse()
        .ok()
        .filter(|k| *k >= T::from(1))
        .ok_or(format!("{flag}: `{v}` is not a positive integer"))
}

impl Options {
    /// Parses the arguments after the verb.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            tables: vec![],
            rows: vec![],
            seeds: None,
            protocol: "fast".into(),
            quick: false,
            out: PathBuf::from("results"),
            jobs: 1,
            threads: None,
            sets: vec![],
            smoke: false,
            print_commands: false,
            dims: vec![],
            layers: vec![],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match a.as_str() {
                "--table" => o.tables.extend(list::<u8>("--table", &value("--table")?)?),
                "--rows" => o.rows.extend(list::<u32>("--rows", &value("--rows")?)?),
                "--seeds" => o.seeds = Some(positive("--seeds", &value("--seeds")?)?),
                "--protocol" => o.protocol = value("--protocol")?,
                "--quick" => o.quick = true,
                "--out" => o.out = PathBuf::from(value("--out")?),
                "--jobs" => o.jobs = positive("--jobs", &value("--jobs")?)?,
                "--threads" => o.threads = Some(positive("--threads", &value("--threads")?)?),
                "--set" => o.sets.push(value("--set")?),
                "--smoke" => o.smoke = true,
                "--print-commands" => o.print_commands = true,
                "--dims" => o.dims = list("--dims", &value("--dims")?)?,
                "--layers" => o.layers = list("--layers", &value("--layers")?)?,
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
            }
        }
        if let Some(t) = o.tables.iter().find(|t| !(1..=3).contains(*t)) {
            return Err(format!("--table: there is no table {t} (1, 2 or 3)"));
        }
        if let Some(s) = o.sets.iter().find(|s| !s.contains('=')) {
            return Err(format!("--set: `{s}` is not KEY=VALUE"));
        }
        if o.out.is_relative() {
            o.out = std::env::current_dir()
                .map_err(|e| e.to_string())?
                .join(&o.out);
        }
        Ok(o)
    }

    /// Rayon threads per run: `--threads`, else the cores shared out over `--jobs`.
    pub(crate) fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / self.jobs).max(1)
        })
    }
}

#[cfg(test)]
impl Options {
    /// Parses string literals (for tests).
    pub(crate) fn of(a: &[&str]) -> Result<Options, String> {
        Options::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let o = Options::of(&[
            "--table",
            "1",
            "--rows",
            "1,5",
            "--seeds",
            "2",
            "--jobs",
            "4",
            "--set",
            "train.steps=5",
        ])
        .unwrap();
        assert_eq!(
            (o.tables, o.rows, o.seeds, o.jobs),
            (vec![1], vec![1, 5], Some(2), 4)
        );
        assert_eq!(o.sets, vec!["train.steps=5"]);
        for (bad, want) in [
            (vec!["--table", "4"], "no table 4"),
            (vec!["--seeds", "0"], "positive"),
            (vec!["--threads", "0"], "positive"),
            (vec!["--jobs", "-1"], "positive"),
            (vec!["--jobs"], "needs a value"),
            (vec!["--rows", "x"], "not a valid number"),
            (vec!["--frobnicate"], "unknown option"),
            (vec!["--set", "oops"], "KEY=VALUE"),
        ] {
            let e = Options::of(&bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
