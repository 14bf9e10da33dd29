//! Condition numbers, random unit-column matrices, the condition-number threshold and the
//! deterministic parallel search for well-conditioned weight matrices.

use crate::{Error, Result};
use clica_core::chunk_rng;
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{self, ComputeSvdVectors};
use faer::{Mat, Par};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, RngCore};
use rayon::prelude::*;

/// Number of candidate matrices drawn from one chunk generator
/// ([`clica_core::chunk_rng`]). Part of the value-stability contract: changing it changes
/// every generator built from a seed.
pub const CHUNK_SIZE: usize = 128;

/// The weight search gives up after `SEARCH_CAP_FACTOR × cond_pool_size` candidates per layer
/// (rounded up to whole chunks).
///
/// With the default ratio 0 the threshold is the pool's minimum, and a candidate beats it with
/// probability u ≈ E/N (N the pool size, E ~ Exp(1) over seeds), so a cap of c·N candidates
/// fails one layer's search with probability about 1/(1 + c) over seeds: ≈ 1% for c = 100,
/// ≈ 0.1% for c = 1000. Most candidates are rejected by a cheap bound (about 1–2 µs each), so
/// the cap costs at most tens of seconds at N = 25,000 in the rare failing case.
pub const SEARCH_CAP_FACTOR: usize = 1000;

/// Matrices with a condition number above this are treated as singular.
pub const MAX_INVERTIBLE_COND: f64 = 1e12;

/// Reusable scratch space for singular values of `n × n` matrices.
pub(crate) struct CondWorkspace {
    n: usize,
    mat: Mat<f64>,
    s: Diag<f64>,
    buf: MemBuffer,
    lu: Vec<f64>,
    perm: Vec<usize>,
    u: Vec<f64>,
    v: Vec<f64>,
}

impl CondWorkspace {
    pub(crate) fn new(n: usize) -> Self {
        let req = svd::svd_scratch::<f64>(
            n,
            n,
            ComputeSvdVectors::No,
            ComputeSvdVectors::No,
            Par::Seq,
            Default::default(),
        );
        CondWorkspace {
            n,
            mat: Mat::zeros(n, n),
            s: Diag::zeros(n),
            buf: MemBuffer::new(req),
            lu: vec![0.0; n * n],
            perm: vec![0; n],
            u: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// A cheap, certified lower bound on σ_max / σ_min of `m` (row-major `n × n`).
    ///
    /// For any nonzero vectors u, v: ‖Wu‖/‖u‖ ≤ σ_max and ‖Wv‖/‖v‖ ≥ σ_min, so their ratio
    /// bounds the condition number from below whatever u and v are. u comes from two power
    /// iterations on WᵀW, v from two inverse iterations (via an LU factorisation with partial
    /// pivoting); both are only heuristics for good vectors, the bound holds regardless (up to
    /// rounding in two norms). Returns `∞` for an exactly singular matrix and `0` when
    /// no useful bound was found.
    fn cond_lower_bound(&mut self, m: &[f64]) -> f64 {
        let n = self.n;
        // σ_max ≥ ‖W u‖/‖u‖ with u from power iteration on WᵀW.
        for (i, x) in self.u.iter_mut().enumerate() {
            *x = 1.0 + 0.1 * i as f64;
        }
        let mut smax_lb = 0.0f64;
        for _ in 0..2 {
            // v = W u
            let un = norm(&self.u);
            for i in 0..n {
                self.v[i] = dot(&m[i * n..(i + 1) * n], &self.u);
            }
            smax_lb = smax_lb.max(norm(&self.v) / un);
            // u = Wᵀ v
            for j in 0..n {
                self.u[j] = (0..n).map(|i| m[i * n + j] * self.v[i]).sum();
            }
            let s = norm(&self.u);
            if s.is_nan() || s <= 0.0 {
                return 0.0;
            }
            self.u.iter_mut().for_each(|x| *x /= s);
        }
        // LU with partial pivoting: P W = L U, stored in self.lu (row i of LU is row perm[i]).
        self.lu.copy_from_slice(m);
        for (i, p) in self.perm.iter_mut().enumerate() {
            *p = i;
        }
        for k in 0..n {
            let mut piv = k;
            let mut best = self.lu[k * n + k].abs();
            for i in k + 1..n {
                let a = self.lu[i * n + k].abs();
                if a > best {
                    best = a;
                    piv = i;
                }
            }
            if best == 0.0 {
                return f64::INFINITY;
            }
            if piv != k {
                for j in 0..n {
                    self.lu.swap(k * n + j, piv * n + j);
                }
                self.perm.swap(k, piv);
            }
            let d = self.lu[k * n + k];
            for i in k + 1..n {
                let f = self.lu[i * n + k] / d;
                self.lu[i * n + k] = f;
                for j in k + 1..n {
                    self.lu[i * n + j] -= f * self.lu[k * n + j];
                }
            }
        }
        // v ← (WᵀW)⁻¹ v twice, starting from a fixed vector.
        for (i, x) in self.v.iter_mut().enumerate() {
            *x = if i % 2 == 0 { 1.0 } else { -1.0 } * (1.0 + 0.07 * i as f64);
        }
        for _ in 0..2 {
            // Solve Wᵀ y = v: Wᵀ = Uᵀ Lᵀ P, so Uᵀ a = v, Lᵀ b = a, y = Pᵀ b.
            let lu = &self.lu;
            let a = &mut self.u;
            for j in 0..n {
                let mut t = self.v[j];
                for i in 0..j {
                    t -= lu[i * n + j] * a[i];
                }
                a[j] = t / lu[j * n + j];
            }
            for j in (0..n).rev() {
                let mut t = a[j];
                for i in j + 1..n {
                    t -= lu[i * n + j] * a[i];
                }
                a[j] = t;
            }
            for (&p, &ai) in self.perm.iter().zip(a.iter()) {
                self.v[p] = ai;
            }
            // Solve W x = y: L c = P y, U x = c.
            for (ai, &p) in a.iter_mut().zip(&self.perm) {
                *ai = self.v[p];
            }
            for i in 0..n {
                let mut t = a[i];
                for j in 0..i {
                    t -= lu[i * n + j] * a[j];
                }
                a[i] = t;
            }
            for i in (0..n).rev() {
                let mut t = a[i];
                for j in i + 1..n {
                    t -= lu[i * n + j] * a[j];
                }
                a[i] = t / lu[i * n + i];
            }
            let s = norm(a);
            if !(s.is_finite() && s > 0.0) {
                return 0.0;
            }
            for (vi, &ai) in self.v.iter_mut().zip(a.iter()) {
                *vi = ai / s;
            }
        }
        // σ_min ≤ ‖W v‖ / ‖v‖ (‖v‖ = 1 up to rounding).
        let vn = norm(&self.v);
        let wv = (0..n)
            .map(|i| dot(&m[i * n..(i + 1) * n], &self.v).powi(2))
            .sum::<f64>()
            .sqrt();
        let smin_ub = wv / vn;
        if smin_ub > 0.0 {
            smax_lb / smin_ub
        } else {
            0.0
        }
    }

    /// σ_max / σ_min of `m` (row-major `n × n`, all finite). `∞` when σ_min = 0.
    fn cond_of_row_major(&mut self, m: &[f64]) -> Result<f64> {
        let n = self.n;
        debug_assert_eq!(m.len(), n * n);
        for i in 0..n {
            for j in 0..n {
                self.mat[(i, j)] = m[i * n + j];
            }
        }
        svd::svd(
            self.mat.as_ref(),
            self.s.as_mut(),
            None,
            None,
            Par::Seq,
            MemStack::new(&mut self.buf),
            Default::default(),
        )
        .map_err(|e| Error::Numerical(format!("SVD did not converge: {e:?}")))?;
        let s = self.s.column_vector();
        let (mut smax, mut smin) = (0.0f64, f64::INFINITY);
        for k in 0..n {
            smax = smax.max(s[k]);
            smin = smin.min(s[k]);
        }
        Ok(ratio(smax, smin))
    }
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[inline]
fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn ratio(smax: f64, smin: f64) -> f64 {
    if smin > 0.0 {
        smax / smin
    } else {
        f64::INFINITY
    }
}

/// The 2-norm condition number σ_max / σ_min of `m` (any shape; singular values from faer's
/// SVD). Returns `f64::INFINITY` when the smallest singular value is zero, like NumPy.
///
/// # Errors
/// - [`Error::Shape`] if `m` has no entries.
/// - [`Error::NonFinite`] if `m` contains NaN or ±∞.
/// - [`Error::Numerical`] if the SVD does not converge.
pub fn condition_number(m: ArrayView2<'_, f64>) -> Result<f64> {
    if m.is_empty() {
        return Err(Error::Shape("condition number of an empty matrix".into()));
    }
    clica_core::check::finite("matrix", m)?;
    let a = Mat::<f64>::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)]);
    let s = a
        .singular_values()
        .map_err(|e| Error::Numerical(format!("SVD did not converge: {e:?}")))?;
    let smax = s.iter().copied().fold(0.0f64, f64::max);
    let smin = s.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(ratio(smax, smin))
}

/// Fills `out` (row-major `n × n`) with entries Uniform(−1, 1) (drawn row by row as
/// `2u − 1`, `u` the standard `[0, 1)` float) and scales each column to unit L2 norm.
/// Returns `false` if some column is exactly zero (the matrix must be redrawn).
fn draw_unit_columns(n: usize, rng: &mut dyn RngCore, out: &mut [f64]) -> bool {
    for v in out.iter_mut() {
        *v = 2.0 * rng.random::<f64>() - 1.0;
    }
    let mut ok = true;
    for j in 0..n {
        let norm = (0..n).map(|i| out[i * n + j].powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            for i in 0..n {
                out[i * n + j] /= norm;
            }
        } else {
            ok = false;
        }
    }
    ok
}

/// One random `n × n` matrix with entries Uniform(−1, 1) and every column scaled to unit
/// L2 norm (NumPy: `W / sqrt((W**2).sum(0))`). The raw draw order is row-major.
///
/// In the (probability-zero) case of an all-zero column that column is left at zero.
///
/// # Panics
/// If `n == 0`.
pub fn random_unit_column_matrix(n: usize, rng: &mut dyn RngCore) -> Array2<f64> {
    assert!(n > 0, "matrix dimension must be ≥ 1");
    let mut buf = vec![0.0; n * n];
    draw_unit_columns(n, rng, &mut buf);
    Array2::from_shape_vec((n, n), buf).expect("n*n buffer")
}

/// A candidate is rejected without an SVD only if its cheap lower bound exceeds
/// `prefilter_limit(t)`, slightly above the limit `t`. The margin covers rounding in the bound
/// and in the SVD, whose smallest singular value carries a relative error of order
/// `n·ε·cond`.
#[inline]
fn prefilter_limit(t: f64) -> f64 {
    t * (1.0 + 1e-6 + 1e-10 * t)
}

/// What [`scan_chunk`] computes.
#[derive(Clone, Copy)]
enum Scan {
    /// Every condition number, in order (one SVD per candidate).
    All,
    /// Only the smallest condition number of the chunk. Candidates whose certified lower
    /// bound exceeds the running minimum skip the SVD, so the minimum is still exact.
    Min,
    /// Stop at the first candidate with condition number `≤ t`. Candidates whose certified
    /// lower bound exceeds `t` skip the SVD, so the accepted candidate is still exact.
    FirstAtMost(f64),
}

/// Result of [`scan_chunk`].
enum ScanOut {
    All(Vec<f64>),
    Min(f64),
    /// Position in the chunk, condition number and entries of the accepted candidate.
    Found(Option<(usize, f64, Vec<f64>)>),
}

/// Scans the `count` candidates of chunk `chunk` (generator `chunk_rng(base, chunk)`) in
/// order. A candidate with an exactly zero column (probability zero) counts as singular (`∞`).
fn scan_chunk(
    n: usize,
    base: u64,
    chunk: usize,
    count: usize,
    ws: &mut CondWorkspace,
    mode: Scan,
) -> Result<ScanOut> {
    let mut rng = chunk_rng(base, chunk as u64);
    let mut buf = vec![0.0; n * n];
    let mut all = Vec::with_capacity(if matches!(mode, Scan::All) { count } else { 0 });
    let mut min = f64::INFINITY;
    for pos in 0..count {
        let nonzero = draw_unit_columns(n, &mut rng, &mut buf);
        match mode {
            Scan::All => all.push(if nonzero {
                ws.cond_of_row_major(&buf)?
            } else {
                f64::INFINITY
            }),
            Scan::Min => {
                if !nonzero || (min.is_finite() && ws.cond_lower_bound(&buf) > prefilter_limit(min))
                {
                    continue;
                }
                min = min.min(ws.cond_of_row_major(&buf)?);
            }
            Scan::FirstAtMost(t) => {
                if !nonzero || ws.cond_lower_bound(&buf) > prefilter_limit(t) {
                    continue;
                }
                let c = ws.cond_of_row_major(&buf)?;
                if c <= t {
                    return Ok(ScanOut::Found(Some((pos, c, buf))));
                }
            }
        }
    }
    Ok(match mode {
        Scan::All => ScanOut::All(all),
        Scan::Min => ScanOut::Min(min),
        Scan::FirstAtMost(_) => ScanOut::Found(None),
    })
}

fn check_pool_args(dim: usize, pool_size: usize) -> Result<()> {
    if dim == 0 {
        return Err(Error::param("dim", "must be ≥ 1"));
    }
    if pool_size == 0 {
        return Err(Error::param("cond_pool_size", "must be ≥ 1"));
    }
    Ok(())
}

/// Runs `mode` over the `pool_size` candidates of a pool with base seed `base`, in parallel.
fn scan_pool(dim: usize, pool_size: usize, base: u64, mode: Scan) -> Result<Vec<ScanOut>> {
    let chunks = pool_size.div_ceil(CHUNK_SIZE);
    (0..chunks)
        .into_par_iter()
        .map_init(
            || CondWorkspace::new(dim),
            |ws, c| {
                let count = CHUNK_SIZE.min(pool_size - c * CHUNK_SIZE);
                scan_chunk(dim, base, c, count, ws, mode)
            },
        )
        .collect()
}

/// The condition numbers of a pool of `pool_size` random unit-column matrices
/// ([`random_unit_column_matrix`]), in draw order.
///
/// One `u64` base seed is drawn from `rng`; matrix `k` comes from chunk `k / CHUNK_SIZE`
/// with generator `chunk_rng(base, k / CHUNK_SIZE)`. Chunks run in parallel on the current
/// rayon pool; the result does not depend on the number of threads. A matrix with an exactly
/// zero column (probability zero) counts as singular (`∞`).
///
/// # Errors
/// [`Error::InvalidParameter`] if `dim == 0` or `pool_size == 0`; [`Error::Numerical`] if an
/// SVD fails.
pub fn cond_pool(dim: usize, pool_size: usize, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
    check_pool_args(dim, pool_size)?;
    let base = rng.next_u64();
    let mut out = Vec::with_capacity(pool_size);
    for part in scan_pool(dim, pool_size, base, Scan::All)? {
        if let ScanOut::All(v) = part {
            out.extend(v);
        }
    }
    Ok(out)
}

/// The `ratio` quantile of `values` with linear interpolation between order statistics
/// (NumPy's default `np.percentile(values, 100 * ratio)`): with the sorted values `a` and
/// `h = ratio · (len − 1)`, the result is `a[⌊h⌋] + (h − ⌊h⌋)·(a[⌊h⌋+1] − a[⌊h⌋])`.
///
/// `+∞` entries sort last; NaN is rejected.
///
/// # Errors
/// [`Error::InvalidParameter`] if `values` is empty, contains NaN, or `ratio ∉ [0, 1]`.
pub fn quantile_linear(values: &[f64], ratio: f64) -> Result<f64> {
    if values.is_empty() {
        return Err(Error::param("values", "quantile of an empty list"));
    }
    if !(0.0..=1.0).contains(&ratio) {
        return Err(Error::param(
            "cond_ratio",
            format!("must be in [0, 1], got {ratio}"),
        ));
    }
    if values.iter().any(|v| v.is_nan()) {
        return Err(Error::param("values", "contains NaN"));
    }
    let mut a = values.to_vec();
    a.sort_by(f64::total_cmp);
    let h = ratio * (a.len() - 1) as f64;
    let lo = h.floor() as usize;
    let frac = h - lo as f64;
    if lo + 1 >= a.len() || frac == 0.0 {
        return Ok(a[lo.min(a.len() - 1)]);
    }
    let (x0, x1) = (a[lo], a[lo + 1]);
    if x1.is_infinite() {
        return Ok(f64::INFINITY);
    }
    Ok(x0 + frac * (x1 - x0))
}

/// The condition-number threshold for weight matrices: the `ratio` quantile
/// ([`quantile_linear`]) of [`cond_pool`]`(dim, pool_size, rng)`. `ratio = 0` is the pool's
/// minimum, `ratio = 1` its maximum.
///
/// For `ratio = 0` the minimum is found without an SVD of every pool matrix (a cheap,
/// certified lower bound rules most of them out); the value is the same as
/// `cond_pool(..)`'s minimum, and `rng` advances the same way.
///
/// # Errors
/// [`Error::InvalidParameter`] for `dim == 0`, `pool_size == 0` or `ratio ∉ [0, 1]`;
/// [`Error::Numerical`] if an SVD fails.
pub fn cond_threshold(
    dim: usize,
    pool_size: usize,
    ratio: f64,
    rng: &mut dyn RngCore,
) -> Result<f64> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(Error::param(
            "cond_ratio",
            format!("must be in [0, 1], got {ratio}"),
        ));
    }
    if ratio == 0.0 {
        // Only the minimum is needed: most candidates can skip the SVD.
        check_pool_args(dim, pool_size)?;
        let base = rng.next_u64();
        let min = scan_pool(dim, pool_size, base, Scan::Min)?
            .into_iter()
            .map(|p| match p {
                ScanOut::Min(m) => m,
                _ => unreachable!("Scan::Min yields ScanOut::Min"),
            })
            .fold(f64::INFINITY, f64::min);
        return Ok(min);
    }
    let pool = cond_pool(dim, pool_size, rng)?;
    quantile_linear(&pool, ratio)
}

/// Outcome of [`search_weight`].
#[derive(Debug, Clone)]
pub(crate) struct SearchResult {
    pub(crate) weight: Array2<f64>,
    pub(crate) cond: f64,
    /// Index of the accepted candidate (= number of rejected candidates before it).
    pub(crate) index: usize,
}

/// Draws candidates `k = 0, 1, …` (candidate `k` from chunk `k / CHUNK_SIZE`, generator
/// `chunk_rng(base, chunk)`) and returns the first with condition number
/// `≤ min(threshold, MAX_INVERTIBLE_COND)`. Chunks are evaluated in parallel waves; since
/// every chunk before the accepted one is evaluated in full, the result is independent of the
/// wave size and the number of threads.
pub(crate) fn search_weight(
    dim: usize,
    threshold: f64,
    base: u64,
    max_candidates: usize,
) -> Result<SearchResult> {
    let limit = threshold.min(MAX_INVERTIBLE_COND);
    let max_chunks = max_candidates.div_ceil(CHUNK_SIZE).max(1);
    let wave = (2 * rayon::current_num_threads()).max(2);
    let mut start = 0;
    while start < max_chunks {
        let end = (start + wave).min(max_chunks);
        let hits: Vec<Option<(usize, f64, Vec<f64>)>> = (start..end)
            .into_par_iter()
            .map_init(
                || CondWorkspace::new(dim),
                |ws, c| match scan_chunk(dim, base, c, CHUNK_SIZE, ws, Scan::FirstAtMost(limit))? {
                    ScanOut::Found(hit) => {
                        Ok(hit.map(|(pos, cond, m)| (c * CHUNK_SIZE + pos, cond, m)))
                    }
                    _ => unreachable!("Scan::FirstAtMost yields ScanOut::Found"),
                },
            )
            .collect::<Result<_>>()?;
        if let Some((index, cond, m)) = hits.into_iter().flatten().next() {
            let weight = Array2::from_shape_vec((dim, dim), m).expect("n*n buffer");
            return Ok(SearchResult {
                weight,
                cond,
                index,
            });
        }
        start = end;
    }
    Err(Error::Numerical(format!(
        "no {dim}×{dim} weight matrix with condition number ≤ {threshold} among {} candidates",
        max_chunks * CHUNK_SIZE
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clica_core::RunSeed;

    #[test]
    fn cheap_bound_never_exceeds_the_condition_number() {
        let mut rng = RunSeed::new(0).stream("bound");
        for n in 1..=12 {
            let mut ws = CondWorkspace::new(n);
            let mut buf = vec![0.0; n * n];
            for k in 0..300 {
                draw_unit_columns(n, &mut rng, &mut buf);
                if k % 3 == 1 && n > 1 {
                    // Make it ill-conditioned: column 1 ≈ column 0.
                    let eps = [1e-3, 1e-7, 1e-11][k % 9 / 3];
                    for i in 0..n {
                        buf[i * n + 1] = buf[i * n] + eps * buf[i * n + 1];
                    }
                }
                let lb = ws.cond_lower_bound(&buf);
                let c = ws.cond_of_row_major(&buf).unwrap();
                assert!(lb <= prefilter_limit(c), "n={n}: bound {lb} > cond {c}");
                let view = ArrayView2::from_shape((n, n), &buf).unwrap();
                let direct = condition_number(view).unwrap();
                assert!(
                    (direct - c).abs() <= 1e-12 * c,
                    "workspace and direct SVD differ"
                );
            }
        }
    }

    #[test]
    fn filtered_search_matches_brute_force() {
        for (n, t, base) in [(4, 3.0, 1u64), (6, 6.0, 2), (10, 12.0, 3), (10, 6.0, 4)] {
            let found = search_weight(n, t, base, 100_000).unwrap();
            // Brute force: every condition number, chunk by chunk, first one ≤ t.
            let mut ws = CondWorkspace::new(n);
            let mut first = None;
            'outer: for c in 0.. {
                let ScanOut::All(conds) =
                    scan_chunk(n, base, c, CHUNK_SIZE, &mut ws, Scan::All).unwrap()
                else {
                    unreachable!()
                };
                for (pos, v) in conds.into_iter().enumerate() {
                    if v <= t {
                        first = Some((c * CHUNK_SIZE + pos, v));
                        break 'outer;
                    }
                }
            }
            let (index, cond) = first.unwrap();
            assert_eq!(found.index, index, "n={n} t={t}");
            assert_eq!(found.cond, cond);
            assert_eq!(condition_number(found.weight.view()).unwrap(), cond);
        }
    }
}
