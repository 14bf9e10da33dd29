//! Criterion benchmarks of clica; see `benches/`.
