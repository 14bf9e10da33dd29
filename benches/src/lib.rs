//! Criterion benchmarks of clica; see `benches/`.
#![forbid(unsafe_code)]
