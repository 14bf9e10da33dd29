//! TOML layering: files merged in order, `--set key=value` overrides, the tagged tables'
//! `kind` rules, reading the merged tree with errors that name the key the user wrote, and
//! flattening a configuration into dotted keys.
//!
//! A tagged table (one with a `kind`, e.g. `data.space`) that a later layer or an override
//! gives another `kind` is replaced as a whole, so the fields of the earlier variant cannot
//! make the new one fail; a tagged table without a `kind` takes the default's.

use crate::Error as CliError;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use toml::{Table, Value};

/// One step of a path into a TOML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path into a TOML tree, written `data.parts[1].space.radius`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeyPath(pub(super) Vec<Seg>);

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl KeyPath {
    fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, s| match (s, v) {
        (Seg::Key(k), Value::Table(t)) => t.get(k),
        (Seg::Index(i), Value::Array(a)) => a.get(*i),
        _ => None,
    })
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match (s, v) {
        (Seg::Key(k), Value::Table(t)) => t.get_mut(k),
        (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

/// The `kind` of a table: its own, or else the one the defaults give the table at `path`.
/// `defaults` holds one element in each array, standing for every element.
fn kind_of<'a>(t: &'a Table, path: &KeyPath, defaults: &'a Value) -> Option<&'a str> {
    if let Some(k) = t.get("kind") {
        return k.as_str();
    }
    let steps: Vec<Seg> = path
        .0
        .iter()
        .map(|s| match s {
            Seg::Index(_) => Seg::Index(0),
            key => key.clone(),
        })
        .collect();
    get(defaults, &steps)?.get("kind")?.as_str()
}

/// The resolved tree of `layers` merged in order and `overrides` applied, every tagged table
/// given its `kind`.
///
/// # Errors
/// A layer that is not TOML or is in the earlier flat format, a malformed override.
pub(super) fn resolve(
    layers: &[(&str, &str)],
    overrides: &[String],
    defaults: &Value,
) -> Result<Table, CliError> {
    let mut tree = Table::new();
    for (name, text) in layers {
        let layer: Table = toml::from_str(text).map_err(|e| {
            CliError::Config(format!(
                "{name} is not valid TOML: {}",
                one_line(&e.to_string())
            ))
        })?;
        if let Some(key) = flat_format_key(&layer) {
            return Err(flat_format(name, &key));
        }
        merge(&mut tree, layer, &KeyPath::default(), defaults);
    }
    for o in overrides {
        apply_override(&mut tree, o, defaults)?;
    }
    let mut root = Value::Table(tree);
    fill_kinds(&mut root, &KeyPath::default(), defaults);
    match root {
        Value::Table(t) => Ok(t),
        _ => unreachable!("the root stays a table"),
    }
}

/// Merges `from` into `into` (at `path`), key by key; a table whose `kind` changes is
/// replaced, other tables are merged, everything else is replaced.
fn merge(into: &mut Table, from: Table, path: &KeyPath, defaults: &Value) {
    for (k, v) in from {
        let at = path.key(&k);
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => {
                let changes = b.get("kind").is_some_and(|new| {
                    Some(new.as_str().unwrap_or_default()) != kind_of(a, &at, defaults)
                });
                if changes {
                    *a = b;
                } else {
                    merge(a, b, &at, defaults);
                }
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Gives every table that lacks a `kind` the default's, where the default has one.
fn fill_kinds(v: &mut Value, path: &KeyPath, defaults: &Value) {
    match v {
        Value::Table(t) => {
            if !t.contains_key("kind") {
                if let Some(k) = kind_of(t, path, defaults) {
                    t.insert("kind".into(), Value::String(k.to_string()));
                }
            }
            for (k, v) in t.iter_mut() {
                fill_kinds(v, &path.key(k), defaults);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                fill_kinds(v, &path.index(i), defaults);
            }
        }
        _ => {}
    }
}

/// Applies one `key=value` override: dotted keys (an array element by its index,
/// `data.parts.1.dim` or `data.parts[1].dim`), a TOML value or else a bare word as a string.
/// Setting `kind` to another value clears the table; a table value is merged like a layer.
fn apply_override(tree: &mut Table, item: &str, defaults: &Value) -> Result<(), CliError> {
    let bad = |why: String| CliError::Config(format!("override `{item}`{why}"));
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| bad(" is not of the form key=value".into()))?;
    let key = key.trim().replace('[', ".").replace(']', "");
    let raw = raw.trim();
    if key.is_empty() {
        return Err(bad(" has an empty key".into()));
    }
    // Parse the value as TOML; a bare word (e.g. `box`) is a string.
    let value: Value = match toml::from_str::<Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad(" has an empty key".into()));
    }
    let mut single = Table::new();
    let mut cur = &mut single;
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .entry((*p).to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("just inserted");
    }
    cur.insert(parts[parts.len() - 1].to_string(), value.clone());
    if let Some(flat) = flat_format_key(&single) {
        return Err(flat_format(&format!("override `{item}`"), &flat));
    }

    let mut root = Value::Table(std::mem::take(tree));
    let r = set(&mut root, &parts, value, defaults).map_err(bad);
    *tree = match root {
        Value::Table(t) => t,
        _ => unreachable!("the root stays a table"),
    };
    r
}

fn set(root: &mut Value, parts: &[&str], value: Value, defaults: &Value) -> Result<(), String> {
    let mut path = KeyPath::default();
    let mut cur = root;
    let (last, parents) = parts.split_last().expect("non-empty");
    for p in parents {
        cur = match cur {
            Value::Table(t) => {
                path = path.key(p);
                t.entry((*p).to_string())
                    .or_insert_with(|| Value::Table(Table::new()))
            }
            Value::Array(a) => {
                let i = index(p, a.len(), &path)?;
                path = path.index(i);
                &mut a[i]
            }
            _ => return Err(format!(": `{path}` is not a section")),
        };
    }
    match cur {
        Value::Table(t) if *last == "kind" => {
            if value.as_str().is_none() || value.as_str() != kind_of(t, &path, defaults) {
                t.clear();
            }
            t.insert("kind".into(), value);
        }
        Value::Table(t) => {
            let mut one = Table::new();
            one.insert((*last).to_string(), value);
            merge(t, one, &path, defaults);
        }
        Value::Array(a) => {
            let i = index(last, a.len(), &path)?;
            a[i] = value;
        }
        _ => return Err(format!(": `{path}` is not a section")),
    }
    Ok(())
}

fn index(p: &str, len: usize, path: &KeyPath) -> Result<usize, String> {
    match p.parse::<usize>() {
        Ok(i) if i < len => Ok(i),
        _ => Err(format!(
            ": `{path}` is a list of {len}, without an element `{p}`"
        )),
    }
}

/// The first key of `layer` that only the earlier flat format had, written as in the file.
fn flat_format_key(layer: &Table) -> Option<String> {
    let section = |name: &str| layer.get(name).and_then(Value::as_table);
    if let Some(data) = section("data") {
        for k in ["space", "marginal", "conditional"] {
            if let Some(v @ Value::String(_)) = data.get(k) {
                return Some(format!("data.{k} = {v}"));
            }
        }
        for k in [
            "radius",
            "low",
            "high",
            "marginal_scale",
            "concentration",
            "beta",
        ] {
            if data.contains_key(k) {
                return Some(format!("data.{k}"));
            }
        }
    }
    if let Some(encoder) = section("encoder") {
        if let Some(v @ Value::String(_)) = encoder.get("normalization") {
            return Some(format!("encoder.normalization = {v}"));
        }
        if encoder.contains_key("radius") {
            return Some("encoder.radius".into());
        }
    }
    None
}

fn flat_format(name: &str, key: &str) -> CliError {
    CliError::Config(format!(
        "{name} is in the earlier flat format (`{key}`): rerun with a current preset, or \
         write the parameters into tagged tables: data.space = {{ kind = \"box\", low = 0.0, \
         high = 1.0 }} (data.radius is data.space.radius), data.marginal = {{ kind = \
         \"normal\", sigma = 1.0 }} (data.marginal_scale is its sigma or scale), \
         data.conditional = {{ kind = \"vmf\", kappa = 1.0 }} (data.concentration is its \
         kappa, sigma or scale; data.beta its beta), encoder.normalization = {{ kind = \
         \"sphere\", radius = 1.0 }} (encoder.radius is its radius or init_radius); as \
         overrides: data.space.kind=box, data.conditional.kappa=10, \
         encoder.normalization.kind=none"
    ))
}

/// Reads `tree` as a `T`; an error names the key the user wrote (serde loses the path inside
/// tagged tables, so it is found again by reading the offending table one key at a time).
pub(super) fn read<T: DeserializeOwned + serde::Serialize>(tree: &Table) -> Result<T, CliError> {
    let root = Value::Table(tree.clone());
    let value: T = match attempt::<T>(&root) {
        Ok(v) => v,
        Err((path, msg)) => {
            let shown = locate::<T>(&root, path, &msg);
            return Err(CliError::Config(format!("`{shown}`: {msg}")));
        }
    };
    // A variant without parameters (`unbounded`, `uniform`, `none`) ignores other keys in
    // serde; reject them like any unknown key.
    let back = Value::try_from(&value).map_err(|e| CliError::Config(e.to_string()))?;
    if let Some((path, key, kind)) = extra_key(&root, &back, &KeyPath::default()) {
        return Err(CliError::Config(format!(
            "`{}`: unknown field `{key}`: kind `{kind}` has no parameters",
            path.key(&key)
        )));
    }
    Ok(value)
}

fn attempt<T: DeserializeOwned>(root: &Value) -> Result<T, (KeyPath, String)> {
    serde_path_to_error::deserialize(root.clone()).map_err(|e| {
        let segs = e
            .path()
            .iter()
            .map_while(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        // The TOML reader names the table it was in on a line of its own (`in `data``);
        // the path says it better.
        let text = e.inner().to_string();
        let text: Vec<&str> = text.lines().filter(|l| !l.starts_with("in `")).collect();
        (KeyPath(segs), one_line(&text.join("\n")))
    })
}

/// The deepest path below `path` whose value alone reproduces the error `msg` (still
/// reported at `path` or below it). Each step keeps one key of a table (with its `kind`,
/// which is tried first) or one element of an array of tables, and descends where the error
/// stays; it stops at a value that is wrong as a whole (the error stays with it emptied).
fn locate<T: DeserializeOwned>(root: &Value, path: KeyPath, msg: &str) -> KeyPath {
    // `work` is the tree reduced so far and `at` the path in it; `shown` is the same path in
    // the user's tree (array elements keep their index there).
    let mut work = root.clone();
    let mut at = path.clone();
    let mut shown = path.clone();
    let stays =
        |w: &Value| matches!(attempt::<T>(w), Err((p, m)) if m == msg && p.0.starts_with(&path.0));
    let with = |work: &Value, at: &KeyPath, reduced: Value| {
        let mut w = work.clone();
        if let Some(v) = get_mut(&mut w, &at.0) {
            *v = reduced;
        }
        w
    };
    loop {
        let (empty, candidates): (Value, Vec<(Seg, Value, Seg)>) = match get(&work, &at.0) {
            Some(Value::Table(t)) => {
                let kind = t.get("kind");
                let keep = |k: &String, v: &Value| {
                    let mut one = Table::new();
                    if let Some(kind) = kind {
                        one.insert("kind".into(), kind.clone());
                    }
                    one.insert(k.clone(), v.clone());
                    (Seg::Key(k.clone()), Value::Table(one), Seg::Key(k.clone()))
                };
                let first = t.get_key_value("kind").map(|(k, v)| keep(k, v));
                let rest = t
                    .iter()
                    .filter(|(k, _)| *k != "kind")
                    .map(|(k, v)| keep(k, v));
                (
                    Value::Table(Table::new()),
                    first.into_iter().chain(rest).collect(),
                )
            }
            // Into the elements of an array of tables only: an error on a list of numbers
            // is about one number or the list, and the message says which.
            Some(Value::Array(a)) if a.iter().all(Value::is_table) => (
                Value::Array(Vec::new()),
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (Seg::Index(i), Value::Array(vec![v.clone()]), Seg::Index(0)))
                    .collect(),
            ),
            _ => break,
        };
        if stays(&with(&work, &at, empty)) {
            break;
        }
        let found = candidates.into_iter().find_map(|(s, reduced, a)| {
            let w = with(&work, &at, reduced);
            stays(&w).then_some((s, a, w))
        });
        match found {
            Some((s, a, w)) => {
                shown.0.push(s);
                at.0.push(a);
                work = w;
            }
            None => break,
        }
    }
    shown
}

/// A key of `input` in a tagged table whose variant, as read back in `output`, has no
/// parameters: (the table's path, the key, the kind).
fn extra_key(input: &Value, output: &Value, path: &KeyPath) -> Option<(KeyPath, String, String)> {
    match (input, output) {
        (Value::Table(i), Value::Table(o)) => {
            if let (Some(kind), true) = (o.get("kind").and_then(Value::as_str), o.len() == 1) {
                if let Some(k) = i.keys().find(|k| *k != "kind") {
                    return Some((path.clone(), k.clone(), kind.to_string()));
                }
            }
            i.iter()
                .find_map(|(k, v)| extra_key(v, o.get(k)?, &path.key(k)))
        }
        (Value::Array(i), Value::Array(o)) => i
            .iter()
            .zip(o)
            .enumerate()
            .find_map(|(n, (i, o))| extra_key(i, o, &path.index(n))),
        _ => None,
    }
}

/// The error text of a TOML or serde error on one line (without the source excerpt).
pub(super) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && *l != "^")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every leaf of `v` under its dotted key (`data.space.kind`, `data.parts[0].dim`), written as
/// TOML; arrays of tables are entered element by element, other arrays are leaves.
pub(super) fn flatten(prefix: &KeyPath, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                flatten(&prefix.key(k), v, out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_table) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&prefix.index(i), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}
