//! Exact optimal assignment (Kuhn–Munkres by shortest augmenting paths with potentials).

use clica_core::{check, Error, Result};
use ndarray::{Array2, ArrayView2};

/// Exact maximum-weight assignment of the rows of `weights` to distinct columns
/// (`rows ≤ cols`).
///
/// Returns `(assignment, total)` where `assignment[row]` is the column given to `row` and
/// `total = Σ_row weights[row, assignment[row]]` is the largest such sum. The algorithm is the
/// shortest-augmenting-path form of the Hungarian method with dual potentials (Jonker–Volgenant /
/// Crouse), `O(rows² · cols)`, the method behind SciPy's `linear_sum_assignment`, whose
/// tie-breaking it follows. An empty (0-row) matrix gives `(vec![], 0.0)`.
///
/// # Errors
/// [`Error::Shape`] if `rows > cols`; [`Error::NonFinite`] (naming `"weights"`) for NaN or ±∞
/// entries; [`Error::Numerical`] if the optimal total overflows `f64`.
pub fn hungarian_max(weights: ArrayView2<'_, f64>) -> Result<(Vec<usize>, f64)> {
    let (nr, nc) = weights.dim();
    if nr > nc {
        return Err(Error::Shape(format!(
            "weights has {nr} rows but only {nc} columns; hungarian_max needs rows ≤ cols"
        )));
    }
    check::finite("weights", weights)?;
    if nr == 0 {
        return Ok((Vec::new(), 0.0));
    }
    // Minimise the negated weights. Very large weights are first scaled by an exact power of
    // two so that sums of potentials cannot overflow; this does not change the optimum.
    let max_abs = weights.iter().fold(0.0_f64, |m, w| m.max(w.abs()));
    let scale = if max_abs > 1e100 {
        (-(max_abs.log2().ceil())).exp2()
    } else {
        1.0
    };
    let cost = weights.mapv(|w| -w * scale);
    let assignment = solve_min(&cost)?;
    let total = assignment
        .iter()
        .enumerate()
        .map(|(r, &c)| weights[[r, c]])
        .sum::<f64>();
    if !total.is_finite() {
        return Err(Error::Numerical(format!(
            "the optimal total weight overflows ({total})"
        )));
    }
    Ok((assignment, total))
}

const NONE: usize = usize::MAX;

/// Minimum-cost assignment of every row (`nr ≤ nc`, finite costs).
fn solve_min(cost: &Array2<f64>) -> Result<Vec<usize>> {
    let (nr, nc) = cost.dim();
    let mut u = vec![0.0_f64; nr]; // row potentials
    let mut v = vec![0.0_f64; nc]; // column potentials
    let mut col_of_row = vec![NONE; nr];
    let mut row_of_col = vec![NONE; nc];
    let mut path = vec![NONE; nc]; // predecessor row of each column on the shortest-path tree
    let mut dist = vec![f64::INFINITY; nc];
    let mut row_seen = vec![false; nr];
    let mut col_seen = vec![false; nc];
    let mut todo: Vec<usize> = Vec::with_capacity(nc);

    for start in 0..nr {
        // Dijkstra-like search for the shortest augmenting path from `start` to a free column.
        dist.fill(f64::INFINITY);
        row_seen.fill(false);
        col_seen.fill(false);
        todo.clear();
        todo.extend((0..nc).rev()); // scanned from the back, like SciPy, for identical ties
        let mut min_val = 0.0_f64;
        let mut row = start;
        let sink = loop {
            row_seen[row] = true;
            let mut best = f64::INFINITY;
            let mut best_at = NONE;
            for (at, &col) in todo.iter().enumerate() {
                let reduced = min_val + cost[[row, col]] - u[row] - v[col];
                if reduced < dist[col] {
                    path[col] = row;
                    dist[col] = reduced;
                }
                if dist[col] < best || (dist[col] == best && row_of_col[col] == NONE) {
                    best = dist[col];
                    best_at = at;
                }
            }
            if !best.is_finite() || best_at == NONE {
                return Err(Error::Numerical(
                    "assignment search diverged (weights too large or too spread out)".into(),
                ));
            }
            min_val = best;
            let col = todo.swap_remove(best_at);
            col_seen[col] = true;
            if row_of_col[col] == NONE {
                break col;
            }
            row = row_of_col[col];
        };

        // Update the dual potentials.
        u[start] += min_val;
        for r in 0..nr {
            if row_seen[r] && r != start {
                u[r] += min_val - dist[col_of_row[r]];
            }
        }
        for c in 0..nc {
            if col_seen[c] {
                v[c] -= min_val - dist[c];
            }
        }

        // Augment along the path ending in `sink`.
        let mut col = sink;
        loop {
            let r = path[col];
            row_of_col[col] = r;
            let prev = std::mem::replace(&mut col_of_row[r], col);
            if r == start {
                break;
            }
            col = prev;
        }
    }
    Ok(col_of_row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn small_cases() {
        let w = array![[1.0, 2.0], [3.0, 1.0]];
        assert_eq!(hungarian_max(w.view()).unwrap(), (vec![1, 0], 5.0));
        let w = array![[1.0, 5.0, 2.0]];
        assert_eq!(hungarian_max(w.view()).unwrap(), (vec![1], 5.0));
        let w = Array2::<f64>::zeros((0, 3));
        assert_eq!(hungarian_max(w.view()).unwrap(), (vec![], 0.0));
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let w = array![[1e300, -1e300], [-1e300, 1e300]];
        let (a, _) = hungarian_max(w.view()).unwrap();
        assert_eq!(a, vec![0, 1]);
    }
}
