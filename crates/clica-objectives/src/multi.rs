//! Several positives per anchor: the alignment part of an InfoNCE loss averaged over M
//! positives of each anchor, its normaliser left to the wrapped loss.
//!
//! For anchor i with positives h̃_i1 … h̃_iM (each an exact draw from the conditional), the
//! InfoNCE loss of the first positive is `c(h_i, h̃_i1) + log Z_i`, where `c` is the loss's
//! pair term (−h·h̃/τ for the sphere loss, ‖h − h̃‖_p^p/τ for the Lp losses) and Z_i its
//! normaliser over the negatives. [`ExtraPositives`] replaces `c(h_i, h̃_i1)` by the mean
//! `(1/M) Σ_m c(h_i, h̃_im)`: it returns (and adds the gradients of)
//!
//! `A = (1/B) Σ_i [ (1/M) Σ_m c(h_i, h̃_im) − c(h_i, h̃_i1) ]`,
//!
//! to be added to the wrapped loss's value and gradients. Each `c(h_i, h̃_im)` has the same
//! expectation as `c(h_i, h̃_i1)`, so the population objective (alignment minus
//! log-partition), and with it its minimiser, is unchanged; only the variance of its
//! alignment estimate falls, at the cost of M − 1 more encoder passes per anchor and
//! `O(B·M·d)` here. The normaliser (O(B²)) is not touched: the wrapped loss keeps the first
//! positive in its denominator as before, a share of ≈ 1/B of it. This is the multi-positive
//! InfoNCE of supervised contrastive learning (Khosla et al. 2020, L_out) with one class per
//! anchor.
//!
//! The term is the same in both directions of [`crate::Symmetric`] (c is symmetric in its
//! arguments), whose mean of the two directions therefore carries it with weight 1, as here.
//!
//! # Example
//!
//! ```
//! use clica_objectives::{ContrastiveLoss, ExtraPositives, PairTerm, SelfTerm, SphereInfoNce};
//! use ndarray::Array2;
//!
//! let (b, d) = (8, 3);
//! let unit = |k: usize| Array2::from_shape_fn((b, d), |(i, j)| ((i * 7 + j * 3 + k) as f64).sin());
//! let normalise = |mut a: Array2<f64>| {
//!     for mut r in a.rows_mut() {
//!         let n = r.dot(&r).sqrt();
//!         r.mapv_inplace(|v| v / n);
//!     }
//!     a
//! };
//! let (h, p1, extra) = (normalise(unit(0)), normalise(unit(1)), normalise(unit(2)));
//! let loss = SphereInfoNce::new(1.0, SelfTerm::Keep)?;
//! let two = ExtraPositives::new(PairTerm::Dot { tau: 1.0 }, 2)?;
//! let (mut gh, mut gp, mut ge) = (h.clone() * 0.0, h.clone() * 0.0, h.clone() * 0.0);
//! let base = loss.loss_and_grad(h.view(), p1.view(), gh.view_mut(), gp.view_mut());
//! let add = two.add_loss_and_grad(h.view(), p1.view(), extra.view(),
//!     gh.view_mut(), gp.view_mut(), ge.view_mut());
//! // The alignment term is now the mean over both positives: -(h·p1 + h·p2)/2 per row.
//! let align = |a: &Array2<f64>| -(&h * a).sum() / b as f64;
//! assert!((add - (0.5 * (align(&p1) + align(&extra)) - align(&p1))).abs() < 1e-12);
//! assert!(base.is_finite());
//! # Ok::<(), clica_objectives::Error>(())
//! ```

use crate::{positive_finite, Real};
use clica_core::{Error, Result};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Rows per parallel task of [`ExtraPositives::add_loss_and_grad`].
const ROWS: usize = 256;

/// The pair term `c(h, h̃)` of a loss's alignment part (what one positive pair contributes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PairTerm {
    /// `−h·h̃/τ`: the sphere InfoNCE (model conditional vMF).
    Dot {
        /// Temperature τ (> 0).
        tau: f64,
    },
    /// `‖h − h̃‖_p^p/τ`: the Lp InfoNCE (Laplace p = 1, Normal p = 2, GenNorm p = 3), both
    /// forms.
    Lp {
        /// The exponent p (≥ 1).
        p: f64,
        /// Temperature τ (> 0).
        tau: f64,
    },
}

impl PairTerm {
    fn validate(&self) -> Result<()> {
        match *self {
            PairTerm::Dot { tau } => positive_finite("tau", tau),
            PairTerm::Lp { p, tau } => {
                positive_finite("tau", tau)?;
                if p.is_finite() && p >= 1.0 {
                    Ok(())
                } else {
                    Err(Error::param(
                        "p",
                        format!("must be finite and ≥ 1, got {p}"),
                    ))
                }
            }
        }
    }

    /// `c(h, h̃)`, accumulated in f64.
    fn value<F: Real>(&self, h: &[F], t: &[F]) -> f64 {
        match *self {
            PairTerm::Dot { tau } => {
                -h.iter()
                    .zip(t)
                    .map(|(&a, &b)| a.to_f64_lossless() * b.to_f64_lossless())
                    .sum::<f64>()
                    / tau
            }
            PairTerm::Lp { p, tau } => {
                h.iter()
                    .zip(t)
                    .map(|(&a, &b)| (a.to_f64_lossless() - b.to_f64_lossless()).abs().powf(p))
                    .sum::<f64>()
                    / tau
            }
        }
    }

    /// Adds `w·∂c/∂h` to `gh` and `w·∂c/∂h̃` to `gt`.
    fn add_grad<F: Real>(&self, h: &[F], t: &[F], w: f64, gh: &mut [F], gt: &mut [F]) {
        match *self {
            PairTerm::Dot { tau } => {
                let k = w / tau;
                for j in 0..h.len() {
                    let (a, b) = (h[j].to_f64_lossless(), t[j].to_f64_lossless());
                    gh[j] = gh[j] + F::from_f64(-k * b);
                    gt[j] = gt[j] + F::from_f64(-k * a);
                }
            }
            PairTerm::Lp { p, tau } => {
                let k = w * p / tau;
                for j in 0..h.len() {
                    let diff = h[j].to_f64_lossless() - t[j].to_f64_lossless();
                    // d/dx |x|^p = p·|x|^(p−1)·sign(x); 0 at x = 0 (also for p = 1, the
                    // subgradient the Lp kernels use).
                    let g = if diff == 0.0 {
                        0.0
                    } else {
                        k * diff.abs().powf(p - 1.0) * diff.signum()
                    };
                    gh[j] = gh[j] + F::from_f64(g);
                    gt[j] = gt[j] + F::from_f64(-g);
                }
            }
        }
    }
}

/// The alignment part of a loss averaged over `positives` positives per anchor (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtraPositives {
    term: PairTerm,
    positives: usize,
}

impl ExtraPositives {
    /// The average over `positives` (≥ 2) positives of the pair term `term`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`]: `positives` below 2 (one positive needs no correction),
    /// or the term's τ or p out of range.
    pub fn new(term: PairTerm, positives: usize) -> Result<Self> {
        term.validate()?;
        if positives < 2 {
            return Err(Error::param(
                "positives",
                format!("the correction needs at least 2 positives per anchor, got {positives}"),
            ));
        }
        Ok(ExtraPositives { term, positives })
    }

    /// Positives per anchor, M.
    pub fn positives(&self) -> usize {
        self.positives
    }

    /// The pair term.
    pub fn term(&self) -> PairTerm {
        self.term
    }

    /// `A` of the module docs for anchors `h` (B × d), their first positives `first` (B × d)
    /// and the others `extra` ((M − 1)·B × d: block k, rows k·B..(k+1)·B, holds positive
    /// k + 2 of every anchor). Its gradients are **added** to `grad_h`, `grad_first` (which
    /// hold the wrapped loss's) and written into `grad_extra` (overwritten).
    ///
    /// # Panics
    /// If the shapes do not match (hot-loop shape assertions).
    pub fn add_loss_and_grad<F: Real>(
        &self,
        h: ArrayView2<'_, F>,
        first: ArrayView2<'_, F>,
        extra: ArrayView2<'_, F>,
        grad_h: ArrayViewMut2<'_, F>,
        grad_first: ArrayViewMut2<'_, F>,
        grad_extra: ArrayViewMut2<'_, F>,
    ) -> F {
        self.correction(h, first, extra)
            .add_into(grad_h, grad_first, grad_extra)
    }

    /// The correction of [`add_loss_and_grad`](Self::add_loss_and_grad), computed without the
    /// wrapped loss's gradients, so that it can run beside the wrapped loss; its
    /// [`Correction::add_into`] then gives exactly what `add_loss_and_grad` gives.
    ///
    /// # Panics
    /// If the shapes do not match (hot-loop shape assertions).
    pub fn correction<F: Real>(
        &self,
        h: ArrayView2<'_, F>,
        first: ArrayView2<'_, F>,
        extra: ArrayView2<'_, F>,
    ) -> Correction<F> {
        let (b, d) = h.dim();
        let m = self.positives;
        assert!(b > 0, "ExtraPositives: empty batch");
        assert_eq!(
            first.dim(),
            (b, d),
            "ExtraPositives: first positives' shape"
        );
        assert_eq!(
            extra.dim(),
            ((m - 1) * b, d),
            "ExtraPositives: extra positives' shape"
        );
        if d == 0 {
            // Every pair term of an empty row is 0.
            return Correction {
                value: F::zero(),
                gh: Array2::zeros((b, d)),
                gf: Array2::zeros((b, d)),
                ge: Array2::zeros(extra.dim()),
            };
        }
        let inv_b = 1.0 / b as f64;
        let inv_m = 1.0 / m as f64;
        // Row-wise: each anchor's correction touches its own rows only. Contiguous rows are
        // required by the slice access; owned copies are taken otherwise.
        let (h, first, extra) = (
            h.as_standard_layout(),
            first.as_standard_layout(),
            extra.as_standard_layout(),
        );
        let (hs, fs, es) = (
            h.as_slice().expect("standard layout"),
            first.as_slice().expect("standard layout"),
            extra.as_slice().expect("standard layout"),
        );
        fn rows_of<'a, F: Sync>(a: &'a [F], d: usize) -> impl Fn(usize) -> &'a [F] + Sync {
            move |i| &a[i * d..(i + 1) * d]
        }
        let (hrow, frow, erow) = (rows_of(hs, d), rows_of(fs, d), rows_of(es, d));
        // Anchors in parallel blocks: each one's weighted terms (first positive, then the
        // others; summed below in anchor order), its gradient and its first positive's.
        let mut terms = vec![0.0f64; b * m];
        let mut gh = vec![F::zero(); b * d];
        let mut gf = vec![F::zero(); b * d];
        gh.par_chunks_mut(ROWS * d)
            .zip(gf.par_chunks_mut(ROWS * d))
            .zip(terms.par_chunks_mut(ROWS * m))
            .enumerate()
            .for_each(|(blk, ((gh, gf), terms))| {
                let mut unused = vec![F::zero(); d];
                for (r, ((gh, gf), t)) in gh
                    .chunks_exact_mut(d)
                    .zip(gf.chunks_exact_mut(d))
                    .zip(terms.chunks_exact_mut(m))
                    .enumerate()
                {
                    let i = blk * ROWS + r;
                    let (hi, f) = (hrow(i), frow(i));
                    // The first positive: (1/M − 1)·c.
                    t[0] = (inv_m - 1.0) * self.term.value(hi, f);
                    self.term.add_grad(hi, f, (inv_m - 1.0) * inv_b, gh, gf);
                    // The others: (1/M)·c each.
                    for k in 0..m - 1 {
                        let e = erow(k * b + i);
                        t[k + 1] = inv_m * self.term.value(hi, e);
                        unused.fill(F::zero());
                        self.term.add_grad(hi, e, inv_m * inv_b, gh, &mut unused);
                    }
                }
            });
        // The other positives' gradient rows (row k·B + i: positive k + 2 of anchor i), in a
        // pass of their own: they lie B rows apart, so the anchor blocks above cannot own them.
        // Each pass computes the pair's other half into `unused` (d values per pair).
        let mut ge = vec![F::zero(); (m - 1) * b * d];
        ge.par_chunks_mut(ROWS * d)
            .enumerate()
            .for_each(|(blk, ge)| {
                let mut unused = vec![F::zero(); d];
                for (r, ge) in ge.chunks_exact_mut(d).enumerate() {
                    let at = blk * ROWS + r;
                    unused.fill(F::zero());
                    self.term
                        .add_grad(hrow(at % b), erow(at), inv_m * inv_b, &mut unused, ge);
                }
            });
        let total = terms.iter().fold(0.0f64, |acc, &t| acc + t);
        let rows = |v: Vec<F>| {
            let n = v.len() / d;
            Array2::from_shape_vec((n, d), v).expect("buffer matches its rows")
        };
        Correction {
            value: F::from_f64(total * inv_b),
            gh: rows(gh),
            gf: rows(gf),
            ge: rows(ge),
        }
    }
}

/// The extra positives' correction of one batch, computed by [`ExtraPositives::correction`]
/// and not yet added to the wrapped loss's gradients.
#[derive(Debug, Clone)]
pub struct Correction<F> {
    value: F,
    /// Gradients with respect to the anchors and the first positives (B × d) and the other
    /// positives ((M − 1)·B × d).
    gh: Array2<F>,
    gf: Array2<F>,
    ge: Array2<F>,
}

impl<F: Real> Correction<F> {
    /// Adds the correction's gradients to `grad_h` and `grad_first` (which hold the wrapped
    /// loss's), writes `grad_extra` (overwritten) and returns the correction's loss term.
    ///
    /// # Panics
    /// If the shapes are not those of the batch the correction was computed for.
    pub fn add_into(
        self,
        mut grad_h: ArrayViewMut2<'_, F>,
        mut grad_first: ArrayViewMut2<'_, F>,
        mut grad_extra: ArrayViewMut2<'_, F>,
    ) -> F {
        assert_eq!(
            grad_h.dim(),
            self.gh.dim(),
            "ExtraPositives: grad_h's shape"
        );
        assert_eq!(
            grad_first.dim(),
            self.gf.dim(),
            "ExtraPositives: grad_first's shape"
        );
        assert_eq!(
            grad_extra.dim(),
            self.ge.dim(),
            "ExtraPositives: grad_extra's shape"
        );
        grad_h.zip_mut_with(&self.gh, |g, &v| *g = *g + v);
        grad_first.zip_mut_with(&self.gf, |g, &v| *g = *g + v);
        grad_extra.assign(&self.ge);
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContrastiveLoss, LpForm, LpInfoNce, SelfTerm, SphereInfoNce, Symmetric};
    use ndarray::{concatenate, s, Array2, Axis};

    fn data(rows: usize, d: usize, k: u64) -> Array2<f64> {
        // Deterministic, irregular values in (−1, 1).
        Array2::from_shape_fn((rows, d), |(i, j)| {
            (((i as u64 * 31 + j as u64 * 17 + k * 101) as f64) * 0.618_033_988_75).fract() * 2.0
                - 1.0
        })
    }

    /// The multi-positive loss written out: the wrapped loss of the first positive with its
    /// pair term replaced by the mean over all M, directly from the definition.
    fn reference(
        loss: &dyn ContrastiveLoss<f64>,
        term: PairTerm,
        h: &Array2<f64>,
        all: &Array2<f64>,
        m: usize,
    ) -> f64 {
        let b = h.nrows();
        let first = all.slice(s![0..b, ..]);
        let mut v = loss.loss(h.view(), first);
        for i in 0..b {
            let hi = h.row(i).to_vec();
            let c = |r: usize| term.value(&hi, &all.row(r).to_vec());
            let mean: f64 = (0..m).map(|k| c(k * b + i)).sum::<f64>() / m as f64;
            v += (mean - c(i)) / b as f64;
        }
        v
    }

    fn check(loss: &dyn ContrastiveLoss<f64>, term: PairTerm, m: usize) {
        let (b, d) = (6, 4);
        let h = data(b, d, 1);
        let all = data(m * b, d, 2);
        let extra = ExtraPositives::new(term, m).unwrap();
        let run = |h: &Array2<f64>, all: &Array2<f64>| {
            let (mut gh, mut ga) = (Array2::zeros((b, d)), Array2::zeros((m * b, d)));
            let (g1, ge) = ga.view_mut().split_at(Axis(0), b);
            let mut g1 = g1.to_owned();
            let base = loss.loss_and_grad(
                h.view(),
                all.slice(s![0..b, ..]),
                gh.view_mut(),
                g1.view_mut(),
            );
            let mut ge = ge.to_owned();
            let add = extra.add_loss_and_grad(
                h.view(),
                all.slice(s![0..b, ..]),
                all.slice(s![b.., ..]),
                gh.view_mut(),
                g1.view_mut(),
                ge.view_mut(),
            );
            ga = concatenate![Axis(0), g1, ge];
            (base + add, gh, ga)
        };
        let (v, gh, ga) = run(&h, &all);
        let r = reference(loss, term, &h, &all, m);
        assert!((v - r).abs() < 1e-12, "{v} against {r}");
        // Central finite differences of the reference, in every coordinate of h and of
        // every positive.
        let eps = 1e-6;
        for (which, n) in [(0, b), (1, m * b)] {
            for i in 0..n {
                for j in 0..d {
                    let bump = |delta: f64| {
                        let (mut h2, mut a2) = (h.clone(), all.clone());
                        if which == 0 {
                            h2[(i, j)] += delta;
                        } else {
                            a2[(i, j)] += delta;
                        }
                        reference(loss, term, &h2, &a2, m)
                    };
                    let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
                    let g = if which == 0 { gh[(i, j)] } else { ga[(i, j)] };
                    assert!(
                        (fd - g).abs() < 1e-6,
                        "{} ({which}, {i}, {j}): fd {fd} against {g}",
                        loss.name()
                    );
                }
            }
        }
    }

    #[test]
    fn parallel_row_blocks_give_the_bits_of_one_anchor_at_a_time() {
        // Several blocks of ROWS anchors and a partial one, against the anchor-by-anchor
        // order of operations written out here.
        let (b, d, m) = (2 * ROWS + 9, 3, 3);
        let h = data(b, d, 7).mapv(|v| v as f32);
        let all = data(m * b, d, 8).mapv(|v| v as f32);
        for term in [
            PairTerm::Dot { tau: 0.3 },
            PairTerm::Lp { p: 1.0, tau: 0.3 },
        ] {
            let extra = ExtraPositives::new(term, m).unwrap();
            let (first, others) = all.view().split_at(Axis(0), b);
            let start = |rows: usize| Array2::from_elem((rows, d), 0.25f32);
            let (mut gh, mut gf, mut ge) = (start(b), start(b), start((m - 1) * b));
            let v = extra.add_loss_and_grad(
                h.view(),
                first,
                others,
                gh.view_mut(),
                gf.view_mut(),
                ge.view_mut(),
            );
            let (mut wh, mut wf, mut we) = (start(b), start(b), start((m - 1) * b));
            let (inv_b, inv_m) = (1.0 / b as f64, 1.0 / m as f64);
            let mut total = 0.0f64;
            for i in 0..b {
                let hi = h.row(i).to_vec();
                let (mut gh_row, mut gt_row) = (vec![0.0f32; d], vec![0.0f32; d]);
                let f = first.row(i).to_vec();
                total += (inv_m - 1.0) * term.value(&hi, &f);
                term.add_grad(&hi, &f, (inv_m - 1.0) * inv_b, &mut gh_row, &mut gt_row);
                for j in 0..d {
                    wf[(i, j)] += gt_row[j];
                }
                for k in 0..m - 1 {
                    let e = others.row(k * b + i).to_vec();
                    total += inv_m * term.value(&hi, &e);
                    gt_row.fill(0.0);
                    term.add_grad(&hi, &e, inv_m * inv_b, &mut gh_row, &mut gt_row);
                    for j in 0..d {
                        we[(k * b + i, j)] = gt_row[j];
                    }
                }
                for j in 0..d {
                    wh[(i, j)] += gh_row[j];
                }
            }
            assert_eq!(v.to_bits(), ((total * inv_b) as f32).to_bits());
            assert_eq!((gh, gf, ge), (wh, wf, we));
        }
    }

    #[test]
    fn matches_the_written_out_loss_and_its_finite_differences() {
        let sphere = SphereInfoNce::new(0.5, SelfTerm::Keep).unwrap();
        check(&sphere, PairTerm::Dot { tau: 0.5 }, 2);
        check(&Symmetric::new(sphere), PairTerm::Dot { tau: 0.5 }, 3);
        for p in [1u32, 2, 3] {
            for form in [LpForm::SimClr, LpForm::Plain] {
                let lp = LpInfoNce::new(p, 0.7, form, SelfTerm::Keep).unwrap();
                check(
                    &lp,
                    PairTerm::Lp {
                        p: f64::from(p),
                        tau: 0.7,
                    },
                    2,
                );
            }
        }
    }

    #[test]
    fn equal_positives_change_nothing() {
        // With every positive equal to the first, the correction is exactly zero.
        let (b, d, m) = (5, 3, 4);
        let h = data(b, d, 3);
        let first = data(b, d, 4);
        let extra = concatenate![Axis(0), first, first, first];
        let x = ExtraPositives::new(PairTerm::Dot { tau: 1.0 }, m).unwrap();
        let (mut gh, mut g1, mut ge) = (
            Array2::zeros((b, d)),
            Array2::zeros((b, d)),
            Array2::ones((3 * b, d)),
        );
        let v = x.add_loss_and_grad(
            h.view(),
            first.view(),
            extra.view(),
            gh.view_mut(),
            g1.view_mut(),
            ge.view_mut(),
        );
        assert!(v.abs() < 1e-15);
        assert!(gh.iter().all(|g| g.abs() < 1e-15));
        // The first positive's gradient and the others' sum to zero per anchor.
        for i in 0..b {
            for j in 0..d {
                let s = g1[(i, j)] + (0..3).map(|k| ge[(k * b + i, j)]).sum::<f64>();
                assert!(s.abs() < 1e-15);
            }
        }
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        let e = ExtraPositives::new(PairTerm::Dot { tau: 1.0 }, 1).unwrap_err();
        assert!(e.to_string().contains("positives"), "{e}");
        let e = ExtraPositives::new(PairTerm::Dot { tau: 0.0 }, 2).unwrap_err();
        assert!(e.to_string().contains("tau"), "{e}");
        let e = ExtraPositives::new(PairTerm::Lp { p: 0.5, tau: 1.0 }, 2).unwrap_err();
        assert!(e.to_string().contains('p'), "{e}");
    }

    #[test]
    fn f32_agrees_with_f64() {
        let (b, d, m) = (16, 10, 3);
        let h = data(b, d, 5);
        let all = data(m * b, d, 6);
        let x = ExtraPositives::new(PairTerm::Dot { tau: 1.0 }, m).unwrap();
        let h32 = h.mapv(|v| v as f32);
        let all32 = all.mapv(|v| v as f32);
        let (mut gh, mut g1, mut ge) = (
            Array2::<f32>::zeros((b, d)),
            Array2::<f32>::zeros((b, d)),
            Array2::<f32>::zeros(((m - 1) * b, d)),
        );
        let v32 = x.add_loss_and_grad(
            h32.view(),
            all32.slice(s![0..b, ..]),
            all32.slice(s![b.., ..]),
            gh.view_mut(),
            g1.view_mut(),
            ge.view_mut(),
        );
        let (mut gh6, mut g16, mut ge6) = (
            Array2::<f64>::zeros((b, d)),
            Array2::<f64>::zeros((b, d)),
            Array2::<f64>::zeros(((m - 1) * b, d)),
        );
        let v64 = x.add_loss_and_grad(
            h.view(),
            all.slice(s![0..b, ..]),
            all.slice(s![b.., ..]),
            gh6.view_mut(),
            g16.view_mut(),
            ge6.view_mut(),
        );
        assert!((f64::from(v32) - v64).abs() < 1e-6);
        for (a, b) in gh.iter().zip(&gh6) {
            assert!((f64::from(*a) - b).abs() < 1e-6);
        }
    }
}
