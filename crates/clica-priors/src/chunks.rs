//! Deterministic, thread-count-independent parallel batch filling.

use clica_core::{chunk_rng, ClicaRng};
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Rows per chunk. Chunk `i` always covers rows `[i·CHUNK, (i+1)·CHUNK)` and uses
/// `chunk_rng(base, i)`, so the output does not depend on the number of threads.
pub(crate) const CHUNK_ROWS: usize = 256;

/// Calls `f(rng_i, out_i, anchors_i)` for every row chunk `i` of `out` (and of `anchors`, if
/// given), in parallel when there is more than one chunk.
pub(crate) fn for_each_chunk<F>(
    base: u64,
    mut out: ArrayViewMut2<'_, f64>,
    anchors: Option<ArrayView2<'_, f64>>,
    f: F,
) where
    F: Fn(&mut ClicaRng, ArrayViewMut2<'_, f64>, Option<ArrayView2<'_, f64>>) + Sync,
{
    let outs: Vec<ArrayViewMut2<'_, f64>> = out.axis_chunks_iter_mut(Axis(0), CHUNK_ROWS).collect();
    let ancs: Vec<Option<ArrayView2<'_, f64>>> = match &anchors {
        Some(a) => a.axis_chunks_iter(Axis(0), CHUNK_ROWS).map(Some).collect(),
        None => vec![None; outs.len()],
    };
    debug_assert_eq!(outs.len(), ancs.len());
    let run = |(i, (o, a)): (usize, (ArrayViewMut2<'_, f64>, Option<ArrayView2<'_, f64>>))| {
        let mut rng = chunk_rng(base, i as u64);
        f(&mut rng, o, a);
    };
    if outs.len() <= 1 {
        outs.into_iter().zip(ancs).enumerate().for_each(run);
    } else {
        outs.into_par_iter()
            .zip(ancs.into_par_iter())
            .enumerate()
            .for_each(run);
    }
}
