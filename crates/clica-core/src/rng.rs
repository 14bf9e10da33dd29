//! Seeded, portable random-number streams.
//!
//! All randomness in clica flows from one [`RunSeed`]. Each consumer asks for a *named*
//! stream (`"prior.marginal"`, `"generator"`, `"eval"`, …); the stream's state is derived
//! from the seed and the name by FNV-1a hashing and SplitMix64 expansion, so adding a new
//! consumer never shifts the numbers another consumer sees. The generator is
//! Xoshiro256++ (`rand_xoshiro`), whose output is specified and stable across platforms
//! and crate versions, unlike `StdRng`.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The portable generator used everywhere in clica.
pub type ClicaRng = Xoshiro256PlusPlus;

/// SplitMix64 step: a bijective 64-bit mixer, used to expand seeds.
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_from_u64(mut s: u64) -> ClicaRng {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
    }
    ClicaRng::from_seed(bytes)
}

/// The seed of one run, from which every named stream is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunSeed(u64);

impl RunSeed {
    /// Wraps a user seed.
    pub fn new(seed: u64) -> Self {
        RunSeed(seed)
    }

    /// The raw seed.
    pub fn value(self) -> u64 {
        self.0
    }

    /// The named stream `name` of this seed. Same seed and name ⇒ same stream, on every platform.
    pub fn stream(self, name: &str) -> ClicaRng {
        let mut fp = Fingerprint::new();
        fp.write_u64(self.0);
        fp.write_bytes(name.as_bytes());
        rng_from_u64(fp.value())
    }

    /// A child seed for a named sub-component (e.g. one seed of a multi-seed sweep).
    pub fn child(self, name: &str) -> RunSeed {
        let mut fp = Fingerprint::new();
        fp.write_u64(self.0);
        fp.write_bytes(b"child:");
        fp.write_bytes(name.as_bytes());
        RunSeed(fp.value())
    }
}

/// The generator for chunk `index` of a batch whose base seed is `base`.
///
/// Batch samplers draw one `base: u64` from the caller's generator, split the batch into
/// fixed-size chunks and give chunk `i` the generator `chunk_rng(base, i)`. The result is
/// then independent of how many threads process the chunks.
pub fn chunk_rng(base: u64, index: u64) -> ClicaRng {
    let mut s = base ^ 0xD1B5_4A32_D192_ED03;
    let a = splitmix64(&mut s);
    rng_from_u64(a ^ index.wrapping_mul(0xA24B_AED4_963E_E407))
}

/// A stable 64-bit FNV-1a fingerprint, used to identify generator weights, configs and
/// derived seeds. Stable across platforms and releases (unlike `std`'s `DefaultHasher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// An empty fingerprint.
    pub fn new() -> Self {
        Fingerprint(Self::OFFSET)
    }

    /// Feeds raw bytes.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds a `u64` (little-endian bytes).
    pub fn write_u64(&mut self, v: u64) {
        self.write_bytes(&v.to_le_bytes());
    }

    /// Feeds `f64`s by their exact bit patterns (little-endian).
    pub fn write_f64s(&mut self, vs: &[f64]) {
        for v in vs {
            self.write_bytes(&v.to_bits().to_le_bytes());
        }
    }

    /// The 64-bit value.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The value as 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        // Test vectors from the FNV reference (draft-eastlake-fnv): "" and "a", "foobar".
        assert_eq!(Fingerprint::new().value(), 0xcbf29ce484222325);
        let mut f = Fingerprint::new();
        f.write_bytes(b"a");
        assert_eq!(f.value(), 0xaf63dc4c8601ec8c);
        let mut f = Fingerprint::new();
        f.write_bytes(b"foobar");
        assert_eq!(f.value(), 0x85944171f73967e8);
    }

    #[test]
    fn splitmix64_matches_reference_sequence() {
        // Reference outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
        let mut s = 1234567u64;
        let got: Vec<u64> = (0..3).map(|_| splitmix64(&mut s)).collect();
        assert_eq!(
            got,
            vec![
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let s = RunSeed::new(7);
        let a: Vec<u64> = (0..4).map(|_| s.stream("x").random()).collect();
        assert!(a.iter().all(|&v| v == a[0]));
        let mut x = s.stream("x");
        let mut y = s.stream("y");
        let xs: Vec<u64> = (0..8).map(|_| x.random()).collect();
        let ys: Vec<u64> = (0..8).map(|_| y.random()).collect();
        assert_ne!(xs, ys);
        assert_ne!(s.child("a"), s.child("b"));
        assert_ne!(
            chunk_rng(1, 0).random::<u64>(),
            chunk_rng(1, 1).random::<u64>()
        );
    }

    #[test]
    fn value_stability_of_first_draws() {
        // Guards reproducibility: if this changes, every recorded result changes.
        let v: u64 = RunSeed::new(0).stream("stability").random();
        let w: u64 = chunk_rng(0, 0).random();
        assert_eq!(
            (v, w),
            (10483874565909087218, 8948061833940708669),
            "pinned first draws changed"
        );
    }
}
