//! A fixed set of rendered images as a pair source: the paper's 3DIdent protocol.
//!
//! The set is a folder in the reference's layout (`images/{i}.png`, `raw_latents.npy`; what
//! `clica render` writes and what the real 3DIdent download holds). A training pair is an
//! anchor image drawn uniformly from the set and, as its positive, the image whose raw
//! latents are nearest (L2) to a draw z̃ ~ p(z̃ | z) around the anchor's latents, never the
//! anchor itself; a k-d tree finds it. The latents recorded with every observation (and
//! scored against) are the images' own.

use crate::images::{image_path, name_digits, read_png};
use crate::npy;
use crate::{Error, Result};
use clica_core::{Fingerprint, LatentPrior, Observations, PairSource, Sample};
use ndarray::{Array2, ArrayView1, ArrayViewMut2, Axis};
use rand::{Rng, RngCore};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Points per leaf of the k-d tree.
const LEAF: usize = 16;

/// An exact nearest-neighbour index over the rows of a matrix (a k-d tree split at the
/// median of the widest coordinate).
#[derive(Debug, Clone)]
pub struct KdTree {
    points: Array2<f64>,
    /// Point indices, permuted so every node's points are contiguous.
    order: Vec<usize>,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Copy)]
enum Node {
    Leaf {
        start: usize,
        end: usize,
    },
    Split {
        dim: usize,
        value: f64,
        left: usize,
        right: usize,
    },
}

impl KdTree {
    /// Builds the tree over the rows of `points` (finite values).
    pub fn new(points: Array2<f64>) -> Self {
        let mut order: Vec<usize> = (0..points.nrows()).collect();
        let mut nodes = Vec::new();
        let n = order.len();
        build(&points, &mut order, 0, n, &mut nodes);
        KdTree {
            points,
            order,
            nodes,
        }
    }

    /// The index of the row nearest to `q` (squared L2; ties to the lower index), skipping
    /// `exclude`. `None` when no row is left.
    pub fn nearest(&self, q: ArrayView1<'_, f64>, exclude: Option<usize>) -> Option<usize> {
        let mut best = (f64::INFINITY, usize::MAX);
        if !self.nodes.is_empty() {
            self.search(0, q, exclude, &mut best);
        }
        (best.1 != usize::MAX).then_some(best.1)
    }

    fn search(
        &self,
        node: usize,
        q: ArrayView1<'_, f64>,
        exclude: Option<usize>,
        best: &mut (f64, usize),
    ) {
        match self.nodes[node] {
            Node::Leaf { start, end } => {
                for &i in &self.order[start..end] {
                    if Some(i) == exclude {
                        continue;
                    }
                    let d: f64 = self
                        .points
                        .row(i)
                        .iter()
                        .zip(q.iter())
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    if d < best.0 || (d == best.0 && i < best.1) {
                        *best = (d, i);
                    }
                }
            }
            Node::Split {
                dim,
                value,
                left,
                right,
            } => {
                let diff = q[dim] - value;
                let (near, far) = if diff < 0.0 {
                    (left, right)
                } else {
                    (right, left)
                };
                self.search(near, q, exclude, best);
                if diff * diff <= best.0 {
                    self.search(far, q, exclude, best);
                }
            }
        }
    }
}

fn build(
    points: &Array2<f64>,
    order: &mut [usize],
    start: usize,
    end: usize,
    nodes: &mut Vec<Node>,
) -> usize {
    let id = nodes.len();
    if end - start <= LEAF {
        nodes.push(Node::Leaf { start, end });
        return id;
    }
    let slice = &mut order[start..end];
    // Split along the widest coordinate at the median.
    let dims = points.ncols();
    let mut widest = (0, -1.0);
    for d in 0..dims {
        let (lo, hi) = slice
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                let v = points[[i, d]];
                (lo.min(v), hi.max(v))
            });
        if hi - lo > widest.1 {
            widest = (d, hi - lo);
        }
    }
    let dim = widest.0;
    let mid = slice.len() / 2;
    slice.select_nth_unstable_by(mid, |&a, &b| {
        points[[a, dim]]
            .total_cmp(&points[[b, dim]])
            .then(a.cmp(&b))
    });
    let value = points[[slice[mid], dim]];
    nodes.push(Node::Leaf { start: 0, end: 0 }); // placeholder, replaced below
    let left = build(points, order, start, start + mid, nodes);
    let right = build(points, order, start + mid, end, nodes);
    nodes[id] = Node::Split {
        dim,
        value,
        left,
        right,
    };
    id
}

/// Resizes a square RGB image (`from × from`, HWC bytes) down to `to × to` by area
/// averaging: each output pixel is the mean of the input over its footprint, partial input
/// pixels weighted by their overlap (an exact box filter; an integer factor averages whole
/// blocks). Rounded to the nearest byte.
///
/// # Panics
/// If the buffers do not match the sizes or `to` is 0 or above `from`.
pub fn resize_area(src: &[u8], from: usize, to: usize, dst: &mut [u8]) {
    assert!(to > 0 && to <= from, "resize {from} → {to}");
    assert_eq!(src.len(), 3 * from * from, "source size");
    assert_eq!(dst.len(), 3 * to * to, "destination size");
    // Weights of input index i for output index o along one axis: the overlap of
    // [i, i + 1) with [o·s, (o + 1)·s), s = from / to, in f64.
    let s = from as f64 / to as f64;
    let weights: Vec<Vec<(usize, f64)>> = (0..to)
        .map(|o| {
            let (lo, hi) = (o as f64 * s, (o + 1) as f64 * s);
            (lo.floor() as usize..(hi.ceil() as usize).min(from))
                .map(|i| (i, (hi.min(i as f64 + 1.0) - lo.max(i as f64)) / s))
                .filter(|&(_, w)| w > 0.0)
                .collect()
        })
        .collect();
    for (oy, wy) in weights.iter().enumerate() {
        for (ox, wx) in weights.iter().enumerate() {
            let mut acc = [0.0f64; 3];
            for &(iy, ay) in wy {
                for &(ix, ax) in wx {
                    let p = 3 * (iy * from + ix);
                    for c in 0..3 {
                        acc[c] += ay * ax * f64::from(src[p + c]);
                    }
                }
            }
            for c in 0..3 {
                dst[3 * (oy * to + ox) + c] = acc[c].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// A set of same-size RGB images with their raw latents, held in memory as bytes.
#[derive(Debug)]
pub struct ImageSet {
    root: PathBuf,
    /// Raw latents, one row per image.
    pub latents: Array2<f64>,
    /// Image side in pixels.
    pub side: usize,
    /// HWC bytes of every image, image after image.
    pixels: Vec<u8>,
    tree: KdTree,
}

impl ImageSet {
    /// Reads a folder in the reference layout (`raw_latents.npy`, `images/{i}.png` with `i`
    /// zero-padded to ⌈log₁₀ N⌉ digits), decoding the images in parallel and, when `size`
    /// is given and differs from the files', resizing each to `size × size` by area
    /// averaging ([`resize_area`]; e.g. the real 3DIdent's 224 × 224 to 64 × 64).
    ///
    /// # Errors
    /// A missing or malformed file, images of different sizes or not square, non-finite
    /// latents, a `size` of 0 or above the files' size.
    pub fn load(root: &Path, size: Option<usize>) -> Result<Self> {
        let latents_path = root.join("raw_latents.npy");
        let latents = npy::read_f64_2d(&latents_path).map_err(|e| Error::Data(e.to_string()))?;
        let n = latents.nrows();
        if n < 2 {
            return Err(Error::Data(format!(
                "{}: an image set needs at least 2 images, got {n}",
                latents_path.display()
            )));
        }
        if let Some(((r, c), _)) = latents.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::Data(format!(
                "{}: non-finite latent at row {r}, column {c}",
                latents_path.display()
            )));
        }
        let first = image_path(root, 0, n);
        if !first.exists() {
            return Err(Error::Data(format!(
                "{}: missing (the images of a set of {n} are named with {} digits, images/{}.png …)",
                first.display(),
                name_digits(n),
                "0".repeat(name_digits(n))
            )));
        }
        let (w, h, _) = read_png(&first)?;
        if w != h {
            return Err(Error::Data(format!(
                "{}: images must be square, got {w} × {h}",
                first.display()
            )));
        }
        let side = size.unwrap_or(w);
        if side == 0 || side > w {
            return Err(Error::Data(format!(
                "{}: cannot resize {w} × {w} images to {side} × {side} (only down, to at least 1)",
                root.display()
            )));
        }
        let len = 3 * side * side;
        let mut pixels = vec![0u8; n * len];
        pixels
            .par_chunks_mut(len)
            .enumerate()
            .try_for_each(|(i, dst)| -> Result<()> {
                let path = image_path(root, i, n);
                let (wi, hi, rgb) = read_png(&path)?;
                if (wi, hi) != (w, h) {
                    return Err(Error::Data(format!(
                        "{}: {wi} × {hi}, but the set's images are {w} × {h}",
                        path.display()
                    )));
                }
                if side == w {
                    dst.copy_from_slice(&rgb);
                } else {
                    resize_area(&rgb, w, side, dst);
                }
                Ok(())
            })?;
        let tree = KdTree::new(latents.clone());
        Ok(ImageSet {
            root: root.to_path_buf(),
            latents,
            side,
            pixels,
            tree,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.latents.nrows()
    }

    /// Whether the set is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The folder it was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Image `i` as HWC bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = 3 * self.side * self.side;
        &self.pixels[i * len..(i + 1) * len]
    }

    /// The index of the image whose latents are nearest to `z`, other than `exclude`.
    pub fn nearest(&self, z: ArrayView1<'_, f64>, exclude: Option<usize>) -> usize {
        self.tree
            .nearest(z, exclude)
            .expect("a set holds at least 2 images")
    }

    /// Every image as a row of channel-first values in [0, 1] (what encoders take).
    pub fn observations(&self) -> Array2<f32> {
        let len = 3 * self.side * self.side;
        let mut x = Array2::<f32>::zeros((self.len(), len));
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            let out = row
                .as_slice_mut()
                .expect("a fresh array's rows are contiguous");
            self.write_chw(i, out);
        }
        x
    }

    /// Writes image `i` as channel-first values in [0, 1] into `out`.
    fn write_chw(&self, i: usize, out: &mut [f32]) {
        let plane = self.side * self.side;
        for (p, rgb) in self.image(i).chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + p] = f32::from(rgb[c]) / 255.0;
            }
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut fp = Fingerprint::new();
        fp.write_bytes(b"clica-imageset/v1");
        fp.write_u64(self.len() as u64);
        fp.write_u64(self.side as u64);
        for v in &self.latents {
            fp.write_u64(v.to_bits());
        }
        fp.write_bytes(&self.pixels);
        fp
    }
}

/// The fixed-set pair source (see the module documentation).
pub struct ImageSetPairs {
    train: Arc<ImageSet>,
    /// Where evaluation samples come from (the training set when no test set is given).
    test: Option<Arc<ImageSet>>,
    /// Supplies the conditional p(z̃ | z) for the positives.
    prior: Box<dyn LatentPrior>,
}

impl ImageSetPairs {
    /// The source over `train` (and `test` for evaluation samples) with the conditional of
    /// `prior`.
    ///
    /// # Errors
    /// The prior's dimension differs from the latents', or the test set's images or latents
    /// differ in shape from the training set's.
    pub fn new(
        train: ImageSet,
        test: Option<ImageSet>,
        prior: Box<dyn LatentPrior>,
    ) -> Result<Self> {
        if prior.dim() != train.latents.ncols() {
            return Err(Error::Config(format!(
                "data.dim = {} but {} holds latents of dimension {}",
                prior.dim(),
                train.root().display(),
                train.latents.ncols()
            )));
        }
        if let Some(t) = &test {
            if t.side != train.side || t.latents.ncols() != train.latents.ncols() {
                return Err(Error::Config(format!(
                    "the test set {} ({} × {} images, {} latents) does not match the training set ({} × {}, {})",
                    t.root().display(),
                    t.side,
                    t.side,
                    t.latents.ncols(),
                    train.side,
                    train.side,
                    train.latents.ncols()
                )));
            }
        }
        Ok(ImageSetPairs {
            train: Arc::new(train),
            test: test.map(Arc::new),
            prior,
        })
    }

    /// The training set.
    pub fn train_set(&self) -> &ImageSet {
        &self.train
    }

    fn fill(
        &self,
        set: &ImageSet,
        idx: &[usize],
        mut x: ArrayViewMut2<'_, f32>,
        mut z: ArrayViewMut2<'_, f64>,
    ) {
        for (r, &i) in idx.iter().enumerate() {
            set.write_chw(
                i,
                x.row_mut(r)
                    .as_slice_mut()
                    .expect("observation rows are contiguous"),
            );
            z.row_mut(r).assign(&set.latents.row(i));
        }
    }
}

impl PairSource for ImageSetPairs {
    fn observation_shape(&self) -> Vec<usize> {
        vec![3, self.train.side, self.train.side]
    }

    fn latent_dim(&self) -> usize {
        self.train.latents.ncols()
    }

    fn draw_pairs(
        &self,
        rng: &mut dyn RngCore,
        positives: usize,
        mut x: ArrayViewMut2<'_, f32>,
        mut z: ArrayViewMut2<'_, f64>,
    ) {
        let blocks = 1 + positives;
        assert_eq!(x.nrows(), z.nrows(), "x and z must have the same rows");
        assert_eq!(
            x.nrows() % blocks,
            0,
            "rows must be (1 + positives) · anchors"
        );
        let b = x.nrows() / blocks;
        let set = &self.train;
        let anchors: Vec<usize> = (0..b).map(|_| rng.random_range(0..set.len())).collect();
        let anchor_z = Array2::from_shape_fn((b, set.latents.ncols()), |(r, c)| {
            set.latents[[anchors[r], c]]
        });
        let mut draw = Array2::zeros(anchor_z.dim());
        for j in 0..blocks {
            let idx: Vec<usize> = if j == 0 {
                anchors.clone()
            } else {
                self.prior
                    .sample_conditional(rng, anchor_z.view(), draw.view_mut());
                (0..b)
                    .into_par_iter()
                    .map(|r| set.nearest(draw.row(r), Some(anchors[r])))
                    .collect()
            };
            let rows = j * b..(j + 1) * b;
            self.fill(
                set,
                &idx,
                x.slice_axis_mut(Axis(0), rows.clone().into()),
                z.slice_axis_mut(Axis(0), rows.into()),
            );
        }
    }

    fn draw_marginal(
        &self,
        rng: &mut dyn RngCore,
        x: ArrayViewMut2<'_, f32>,
        z: ArrayViewMut2<'_, f64>,
    ) {
        let idx: Vec<usize> = (0..x.nrows())
            .map(|_| rng.random_range(0..self.train.len()))
            .collect();
        self.fill(&self.train, &idx, x, z);
    }

    fn sample(&self, rng: &mut dyn RngCore, n: usize) -> Sample {
        let set = self.test.as_ref().unwrap_or(&self.train);
        // Without replacement while the set is large enough (a partial Fisher–Yates shuffle).
        let mut pool: Vec<usize> = (0..set.len()).collect();
        let idx: Vec<usize> = (0..n)
            .map(|k| {
                if k < pool.len() {
                    let j = rng.random_range(k..pool.len());
                    pool.swap(k, j);
                    pool[k]
                } else {
                    rng.random_range(0..set.len())
                }
            })
            .collect();
        let mut x = Array2::zeros((n, 3 * set.side * set.side));
        let mut z = Array2::zeros((n, set.latents.ncols()));
        self.fill(set, &idx, x.view_mut(), z.view_mut());
        Sample {
            z,
            x: Observations::F32(x),
        }
    }

    fn describe(&self) -> String {
        format!(
            "image set {} ({} images of {}×{}; positives: nearest image to z̃ ~ {}){}",
            self.train.root().display(),
            self.train.len(),
            self.train.side,
            self.train.side,
            self.prior.describe(),
            match &self.test {
                Some(t) => format!("; scored on {} ({} images)", t.root().display(), t.len()),
                None => "; scored on samples of the training set".into(),
            }
        )
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut fp = self.train.fingerprint();
        if let Some(t) = &self.test {
            fp.write_u64(t.fingerprint().value());
        }
        fp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clica_core::RunSeed;

    #[test]
    fn area_resizing_averages_footprints() {
        // An integer factor averages whole 2 × 2 blocks.
        let src: Vec<u8> = (0..3 * 4 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let mut dst = vec![0u8; 3 * 2 * 2];
        resize_area(&src, 4, 2, &mut dst);
        for (oy, ox, c) in [(0, 0, 0), (1, 0, 2), (1, 1, 1)] {
            let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .iter()
                .map(|(dy, dx)| u32::from(src[3 * ((2 * oy + dy) * 4 + 2 * ox + dx) + c]))
                .sum();
            assert_eq!(
                u32::from(dst[3 * (oy * 2 + ox) + c]),
                (f64::from(sum) / 4.0).round() as u32
            );
        }
        // A constant image stays constant at any factor, and the size is kept as is.
        let flat = vec![93u8; 3 * 7 * 7];
        let mut out = vec![0u8; 3 * 3 * 3];
        resize_area(&flat, 7, 3, &mut out);
        assert!(out.iter().all(|&v| v == 93));
        let mut same = vec![0u8; src.len()];
        resize_area(&src, 4, 4, &mut same);
        assert_eq!(same, src);
        // 224 → 64 (a factor of 3.5): the mean is kept to rounding.
        let big: Vec<u8> = (0..3 * 224 * 224).map(|i| ((i / 3) % 224) as u8).collect();
        let mut small = vec![0u8; 3 * 64 * 64];
        resize_area(&big, 224, 64, &mut small);
        let mean = |v: &[u8]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        assert!((mean(&big) - mean(&small)).abs() < 0.5);
    }

    #[test]
    fn the_tree_finds_what_a_linear_scan_finds() {
        let mut rng = RunSeed::new(1).stream("kd");
        for (n, d) in [(1, 3), (17, 2), (500, 10), (3000, 4)] {
            let pts = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0));
            let tree = KdTree::new(pts.clone());
            for _ in 0..200 {
                let q: Vec<f64> = (0..d).map(|_| rng.random_range(-1.2..1.2)).collect();
                let ex = if n > 1 {
                    Some(rng.random_range(0..n))
                } else {
                    None
                };
                let brute = (0..n)
                    .filter(|&i| Some(i) != ex)
                    .map(|i| {
                        (
                            pts.row(i)
                                .iter()
                                .zip(&q)
                                .map(|(a, b)| (a - b) * (a - b))
                                .sum::<f64>(),
                            i,
                        )
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                    .map(|p| p.1);
                assert_eq!(
                    tree.nearest(ArrayView1::from(&q), ex),
                    brute,
                    "n {n}, d {d}"
                );
            }
        }
        // Duplicated points: ties go to the lower index, and excluding one finds its twin.
        let pts =
            Array2::from_shape_vec((4, 2), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
        let tree = KdTree::new(pts);
        assert_eq!(tree.nearest(ArrayView1::from(&[0.1, 0.0]), None), Some(0));
        assert_eq!(
            tree.nearest(ArrayView1::from(&[0.1, 0.0]), Some(0)),
            Some(2)
        );
    }
}
