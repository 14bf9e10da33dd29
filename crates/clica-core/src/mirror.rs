//! Reflections that fix an anchor and leave a conditional p(z̃ | z) unchanged: the mirror
//! image of an exact conditional draw is an exact draw too, so positives can be drawn in
//! antithetic pairs (z̃, m_z(z̃)) whose errors around the anchor cancel to first order.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// A reflection m_z with m_z(z) = z under which a prior's conditional around z is invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    /// The point reflection through the anchor, m_z(z̃) = 2z − z̃: any conditional z̃ = z + ε
    /// whose noise ε is symmetric (ε and −ε have one law), e.g. Normal, Laplace or GenNorm
    /// noise on the unbounded space.
    Point,
    /// The reflection about the anchor's axis, m_z(z̃) = 2(μ·z̃)μ − z̃ with μ = z/‖z‖: an
    /// orthogonal map fixing μ, so every conditional that depends on z̃ only through μ·z̃ and
    /// ‖z̃‖, or that projects isotropic noise onto a sphere, keeps its law (vMF, the projected
    /// Normal).
    Axis,
}

impl Mirror {
    /// Writes the mirror image of `draws[i]` about `anchors[i]` into `out[i]`, row by row.
    ///
    /// # Panics
    /// If the three arrays differ in shape.
    pub fn apply(
        self,
        anchors: ArrayView2<'_, f64>,
        draws: ArrayView2<'_, f64>,
        mut out: ArrayViewMut2<'_, f64>,
    ) {
        assert_eq!(
            anchors.dim(),
            draws.dim(),
            "anchors and draws differ in shape"
        );
        assert_eq!(
            anchors.dim(),
            out.dim(),
            "anchors and output differ in shape"
        );
        Zip::from(out.rows_mut())
            .and(anchors.rows())
            .and(draws.rows())
            .for_each(|mut o, a, d| match self {
                Mirror::Point => Zip::from(&mut o)
                    .and(&a)
                    .and(&d)
                    .for_each(|o, &a, &d| *o = 2.0 * a - d),
                Mirror::Axis => {
                    let norm2 = a.dot(&a);
                    // (μ·z̃)μ = (a·z̃ / ‖a‖²) a.
                    let c = if norm2 > 0.0 { a.dot(&d) / norm2 } else { 0.0 };
                    Zip::from(&mut o)
                        .and(&a)
                        .and(&d)
                        .for_each(|o, &a, &d| *o = 2.0 * c * a - d);
                }
            });
    }
}

/// A fixed reflection of the latent space, r(z)ₖ = 2cₖ − zₖ on the flipped coordinates and
/// zₖ on the others, that keeps a prior's marginal and commutes with its conditional:
/// p(r(z)) = p(z) and p(r(z̃) | r(z)) = p(z̃ | z). The mirror image of an exact anchor with its
/// positives is then an exact anchor with positives too (antithetic anchors,
/// [`LatentPrior::anchor_reflection`](crate::LatentPrior::anchor_reflection)).
#[derive(Debug, Clone, PartialEq)]
pub struct Reflection {
    centre: Vec<f64>,
    flip: Vec<bool>,
}

impl Reflection {
    /// The point reflection through `centre`, z ↦ 2c − z.
    pub fn through(centre: Vec<f64>) -> Self {
        let flip = vec![true; centre.len()];
        Reflection { centre, flip }
    }

    /// The reflection through the origin that keeps the listed coordinates and negates the
    /// rest (a sign flip, an orthogonal map).
    ///
    /// # Panics
    /// If a kept coordinate is not below `dim`.
    pub fn sign_flip(dim: usize, keep: &[usize]) -> Self {
        let mut flip = vec![true; dim];
        for &k in keep {
            assert!(
                k < dim,
                "kept coordinate {k} out of range for dimension {dim}"
            );
            flip[k] = false;
        }
        Reflection {
            centre: vec![0.0; dim],
            flip,
        }
    }

    /// The dimension it acts on.
    pub fn dim(&self) -> usize {
        self.centre.len()
    }

    /// Writes r(`z[i]`) into `out[i]`, row by row.
    ///
    /// # Panics
    /// If the arrays differ in shape or do not have [`Reflection::dim`] columns.
    pub fn apply(&self, z: ArrayView2<'_, f64>, mut out: ArrayViewMut2<'_, f64>) {
        assert_eq!(z.dim(), out.dim(), "input and output differ in shape");
        assert_eq!(
            z.ncols(),
            self.dim(),
            "the reflection has another dimension"
        );
        Zip::from(out.rows_mut())
            .and(z.rows())
            .for_each(|mut o, z| {
                for k in 0..z.len() {
                    o[k] = if self.flip[k] {
                        2.0 * self.centre[k] - z[k]
                    } else {
                        z[k]
                    };
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn point_reflection_fixes_the_anchor_and_is_an_involution() {
        let a = array![[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]];
        let d = array![[1.5, -1.0, 0.0], [3.0, -4.0, 1.0]];
        let mut o = Array2::zeros((2, 3));
        Mirror::Point.apply(a.view(), d.view(), o.view_mut());
        assert_eq!(o, array![[0.5, -3.0, 1.0], [-3.0, 4.0, -1.0]]);
        let mut back = Array2::zeros((2, 3));
        Mirror::Point.apply(a.view(), o.view(), back.view_mut());
        assert_eq!(back, d);
        Mirror::Point.apply(a.view(), a.view(), o.view_mut());
        assert_eq!(o, a);
    }

    #[test]
    fn axis_reflection_keeps_the_norm_and_the_projection_on_the_axis_and_flips_the_rest() {
        // Anchor of norm 2 (radius 2): the axis is e₁ rotated; every draw keeps ‖z̃‖ and μ·z̃.
        let a = array![[0.0, 2.0, 0.0, 0.0], [1.2, 0.0, -1.6, 0.0]];
        let d = array![[0.6, 1.6, 0.0, 0.8], [-0.4, 1.0, 0.3, 1.7]];
        let mut o = Array2::zeros(a.raw_dim());
        Mirror::Axis.apply(a.view(), d.view(), o.view_mut());
        for i in 0..2 {
            let (a, d, o) = (a.row(i), d.row(i), o.row(i));
            approx::assert_abs_diff_eq!(o.dot(&o), d.dot(&d), epsilon = 1e-12);
            approx::assert_abs_diff_eq!(o.dot(&a), d.dot(&a), epsilon = 1e-12);
            // The part orthogonal to the axis changes sign: (d + o)/2 lies on the axis.
            let mid = (&d + &o) / 2.0;
            let along = a.dot(&mid) / a.dot(&a);
            for k in 0..4 {
                approx::assert_abs_diff_eq!(mid[k], along * a[k], epsilon = 1e-12);
            }
        }
        assert_eq!(o.row(0).to_vec(), vec![-0.6, 1.6, 0.0, -0.8]);
        // An involution, and the anchor is a fixed point.
        let mut back = Array2::zeros(a.raw_dim());
        Mirror::Axis.apply(a.view(), o.view(), back.view_mut());
        for (x, y) in back.iter().zip(d.iter()) {
            approx::assert_abs_diff_eq!(x, y, epsilon = 1e-12);
        }
        Mirror::Axis.apply(a.view(), a.view(), o.view_mut());
        assert_eq!(o, a);
    }

    #[test]
    fn reflections_fix_their_centre_and_are_involutions() {
        let z = array![[0.25, 1.0, -2.0], [3.0, 0.0, 0.5]];
        let mut o = Array2::zeros((2, 3));
        Reflection::through(vec![0.5, 0.5, 0.5]).apply(z.view(), o.view_mut());
        assert_eq!(o, array![[0.75, 0.0, 3.0], [-2.0, 1.0, 0.5]]);
        let flip = Reflection::sign_flip(3, &[0]);
        flip.apply(z.view(), o.view_mut());
        assert_eq!(o, array![[0.25, -1.0, 2.0], [3.0, 0.0, -0.5]]);
        let mut back = Array2::zeros((2, 3));
        flip.apply(o.view(), back.view_mut());
        assert_eq!(back, z);
        let c = array![[0.5, 0.5, 0.5]];
        let mut oc = Array2::zeros((1, 3));
        Reflection::through(vec![0.5; 3]).apply(c.view(), oc.view_mut());
        assert_eq!(oc, c);
    }

    #[test]
    #[should_panic(expected = "another dimension")]
    fn a_reflection_checks_its_dimension() {
        let z = Array2::<f64>::zeros((2, 3));
        let mut o = Array2::<f64>::zeros((2, 3));
        Reflection::through(vec![0.0; 2]).apply(z.view(), o.view_mut());
    }

    #[test]
    #[should_panic(expected = "differ in shape")]
    fn shapes_are_checked() {
        let a = Array2::<f64>::zeros((2, 3));
        let d = Array2::<f64>::zeros((3, 3));
        let mut o = Array2::<f64>::zeros((2, 3));
        Mirror::Point.apply(a.view(), d.view(), o.view_mut());
    }
}
