//! Element-wise passes over flat parameter-sized buffers (the gradient reduction).
//! Adam itself lives in `clica-optim` and works over named tensors.

use rayon::prelude::*;

/// Elements per parallel piece of the gradient reduction.
const PIECE: usize = 1 << 15;

/// `acc += Σ others`, element-wise, in parallel pieces.
pub(crate) fn reduce_into(acc: &mut [f32], others: &[Vec<f32>]) {
    if others.is_empty() {
        return;
    }
    acc.par_chunks_mut(PIECE).enumerate().for_each(|(i, a)| {
        let off = i * PIECE;
        let len = a.len();
        for o in others {
            for (x, y) in a.iter_mut().zip(&o[off..off + len]) {
                *x += *y;
            }
        }
    });
}
