//! The native backend's training step allocates nothing once its buffers exist.
//! (Its own test binary: the counting allocator sees every thread of the process.)

mod common;

use clica_encoders::{EncoderConfig, MlpEncoder};
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_native_steps_do_not_allocate() {
    for norm in all_normalizations() {
        let cfg = EncoderConfig::paper(4)
            .with_normalization(norm)
            .with_threads(2);
        let mut f = MlpEncoder::new(cfg, &mut rng("alloc")).unwrap();
        let x = randn(300, 4, &mut rng("alloc.x"));
        let g = randn(300, 4, &mut rng("alloc.g"));
        // Warm-up: buffers, rayon's pool and thread-locals come into existence.
        for _ in 0..2 {
            f.forward_train(x.view());
            f.backward_and_step(g.view(), 1e-4);
        }
        // Every pool thread initialises faer's GEMM thread-local on its first product; which
        // threads ran one during the warm-up depends on scheduling (under load one may not
        // have, and its first product in the measured steps allocated once: a flaky
        // failure in CI). A one-block step on every pool thread settles that.
        rayon::broadcast(|_| {
            let cfg = EncoderConfig::paper(4)
                .with_normalization(norm)
                .with_threads(1);
            let mut e = MlpEncoder::new(cfg, &mut rng("alloc.warm")).unwrap();
            e.forward_train(x.view());
            e.backward_and_step(g.view(), 1e-4);
        });
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..3 {
            f.forward_train(x.view());
            f.backward_and_step(g.view(), 1e-4);
        }
        let n = ALLOCS.load(Ordering::SeqCst) - before;
        assert_eq!(n, 0, "{norm:?}: {n} allocations in 3 steady-state steps");
    }
}
