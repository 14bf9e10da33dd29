//! `cargo xtask ablation`: contrastive R² against latent dimension and mixing depth. Plans
//! one `clica train` run per (dimension, depth, seed), runs them (resumably), and writes
//! `ablation.md`, `ablation.json` and `plots/ablation.svg`.

use crate::manifest::Manifest;
use crate::options::Options;
use crate::report::{self, Band};
use crate::reproduce::{
    add_compute, build_clica, describe_summary, header_line, lock_results, meta, now_unix,
    print_commands, protocol_file, root, run_args, write_file,
};
use crate::runner::{self, fmt_secs, Job, Outcome};
use crate::svg::{self, Series};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Instant;

/// `cargo xtask ablation`.
pub fn ablation(args: &[String]) -> Result<(), String> {
    let o = Options::parse(args)?;
    if o.quick || !o.tables.is_empty() || !o.rows.is_empty() {
        return Err("ablation: --quick, --table and --rows belong to reproduce".into());
    }
    let root = root();
    let manifest = Manifest::load(&root.join("configs/reproduce.toml"), &root)?;
    let spec = manifest.ablation;
    let protocol = protocol_file(&o.protocol, &root)?;
    let seeds = o.seeds.unwrap_or(1);
    let dims = if o.dims.is_empty() {
        spec.dims.clone()
    } else {
        o.dims.clone()
    };
    let layers = if o.layers.is_empty() {
        spec.layers.clone()
    } else {
        o.layers.clone()
    };
    let _lock = lock_results(&o, "ablation")?;
    let clica = build_clica(&root)?;
    let mut jobs = Vec::new();
    let mut cells = Vec::new();
    for &l in &layers {
        for &n in &dims {
            for seed in 0..seeds {
                let extra: Vec<String> = spec
                    .overrides
                    .iter()
                    .cloned()
                    .chain([format!("data.dim={n}"), format!("mixing.layers={l}")])
                    .collect();
                jobs.push(Job {
                    label: format!("ablation n{n} L{l} seed{seed}"),
                    args: run_args(&spec.config, Some(&protocol), &spec.fast, &o, seed, &extra),
                    dir: o.out.join(format!("ablation/runs/n{n}_L{l}/seed{seed}")),
                });
                cells.push((n, l, seed));
            }
        }
    }
    if o.print_commands {
        print_commands(&clica, &jobs);
        return Ok(());
    }
    eprintln!(
        "==> ablation: dims {dims:?} × depths {layers:?} × {seeds} seed(s) = {} run(s); results in {}",
        jobs.len(),
        o.out.display()
    );
    let started = now_unix();
    let t0 = Instant::now();
    let outcomes = runner::run_all(&clica, &jobs, o.jobs, o.threads(), &describe_summary("r2"));
    let wall = t0.elapsed().as_secs_f64();
    let mut table = Vec::new();
    for &l in &layers {
        for &n in &dims {
            let idx: Vec<usize> = (0..cells.len())
                .filter(|&i| cells[i].0 == n && cells[i].1 == l)
                .collect();
            let pick = |key: &str| {
                let v: Vec<f64> = idx
                    .iter()
                    .filter_map(|&i| match &outcomes[i] {
                        Outcome::Done { summary, .. } => report::pct(if key == "identity" {
                            summary.identity.as_ref().and_then(|s| s.get("r2"))
                        } else {
                            report::mean_of(summary.contrastive.as_ref(), key)
                        }),
                        Outcome::Failed(_) => None,
                    })
                    .collect();
                Band::of(&v)
            };
            let errors: Vec<String> = idx
                .iter()
                .filter_map(|&i| match &outcomes[i] {
                    Outcome::Failed(e) => Some(format!("seed {}: {e}", cells[i].2)),
                    Outcome::Done { .. } => None,
                })
                .collect();
            let secs: Vec<f64> = idx
                .iter()
                .filter_map(|&i| match &outcomes[i] {
                    Outcome::Done { summary, .. } => summary.train_seconds,
                    Outcome::Failed(_) => None,
                })
                .collect();
            table.push(json!({
                "dim": n,
                "layers": l,
                "r2": pick("r2"),
                "r2_held_out": pick("r2_held_out"),
                "mcc_pearson": pick("mcc_pearson"),
                "identity_r2": pick("identity"),
                "train_seconds": Band::of(&secs),
                "errors": errors,
                "runs": idx
                    .iter()
                    .map(|&i| {
                        let d = &jobs[i].dir;
                        d.strip_prefix(&o.out).unwrap_or(d).display().to_string()
                    })
                    .collect::<Vec<_>>(),
            }));
        }
    }
    let mut meta = meta(&o, &protocol, &root, started, wall, seeds);
    let timed: Vec<f64> = jobs
        .iter()
        .filter_map(|j| runner::run_seconds(&j.dir))
        .collect();
    let mut header = header_line(&o, seeds, wall, &meta, &outcomes);
    add_compute(&mut meta, &mut header, &timed, jobs.len());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Ablation: contrastive R² (%) against latent dimension n and mixing depth L\n\n\
         Setting: `{}` (sphere, uniform marginal, vMF conditional, sphere InfoNCE){}; identity \
         baseline in brackets. {}\n",
        spec.config,
        if o.protocol == "fast" && !spec.fast.is_empty() {
            format!(" with `{}`", spec.fast.join("`, `"))
        } else {
            String::new()
        },
        header
    );
    let _ = write!(md, "| n |");
    for l in &layers {
        let _ = write!(md, " L = {l} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in &layers {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    let cell = |n: usize, l: usize| {
        table
            .iter()
            .find(|c| c["dim"] == n && c["layers"] == l)
            .expect("every cell was built")
    };
    let txt = |v: &Value| match (v["mean"].as_f64(), v["std"].as_f64(), v["n"].as_u64()) {
        (Some(m), Some(s), Some(k)) if k > 1 => format!("{m:.2} ± {s:.2}"),
        (Some(m), _, _) => format!("{m:.2}"),
        _ => "–".into(),
    };
    for &n in &dims {
        let _ = write!(md, "| {n} |");
        for &l in &layers {
            let c = cell(n, l);
            let _ = write!(md, " **{}** ({}) |", txt(&c["r2"]), txt(&c["identity_r2"]));
        }
        md.push('\n');
    }
    let series: Vec<Series> = layers
        .iter()
        .enumerate()
        .map(|(k, &l)| Series {
            label: format!("L = {l}"),
            points: dims
                .iter()
                .filter_map(|&n| Some((n as f64, cell(n, l)["r2"]["mean"].as_f64()?)))
                .collect(),
            color: Some(k),
            dashed: false,
        })
        .chain(layers.iter().enumerate().map(|(k, &l)| {
            Series {
                color: Some(k),
                dashed: true,
                label: format!("identity, L = {l}"),
                points: dims
                    .iter()
                    .filter_map(|&n| Some((n as f64, cell(n, l)["identity_r2"]["mean"].as_f64()?)))
                    .collect(),
            }
        }))
        .collect();
    let plot = svg::line_plot(
        "Contrastive R² against latent dimension",
        "latent dimension n",
        "R² (%)",
        &series,
        &[],
        (0.0, 100.0),
    );
    write_file(&o.out.join("ablation.md"), &md)?;
    write_file(&o.out.join("plots/ablation.svg"), &plot)?;
    write_file(
        &o.out.join("ablation.json"),
        &(serde_json::to_string_pretty(&json!({ "meta": meta, "cells": table }))
            .map_err(|e| e.to_string())?
            + "\n"),
    )?;
    let failed = outcomes
        .iter()
        .filter(|x| matches!(x, Outcome::Failed(_)))
        .count();
    eprint!("{md}");
    eprintln!(
        "ablation: {} run(s) in {}; {failed} failed; ablation.md, ablation.json and plots/ablation.svg in {}",
        jobs.len(),
        fmt_secs(wall),
        o.out.display()
    );
    if failed > 0 {
        Err(format!("{failed} run(s) failed"))
    } else {
        Ok(())
    }
}
