//! The documents and key choices of the workloads, all from seeded generators so that every
//! engine gets exactly the same ids, bodies and access sequence.
//!
//! A document is `{"_id": <32 chars>, "v": <integer>, "data": <130 chars>}`: a random 24-byte
//! id in base64url (redb's benchmark uses random 24-byte keys) and a body of about 150 bytes
//! (redb's values are 150 random bytes). Its JSON encoding is about 190 bytes.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Value};

/// Bytes of randomness in an `_id`.
pub const ID_BYTES: usize = 24;
/// Characters of the `data` field.
pub const DATA_CHARS: usize = 130;
/// YCSB's Zipfian constant.
pub const ZIPF_EXPONENT: f64 = 0.99;

/// The generator every workload draws from; `seed` tells apart the streams of one run.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `bytes` in unpadded base64url (RFC 4648 section 5).
pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A random `_id`: 24 random bytes in base64url, 32 file-name-safe characters.
pub fn random_id(rng: &mut SmallRng) -> String {
    let mut bytes = [0u8; ID_BYTES];
    rng.fill(&mut bytes[..]);
    base64url(&bytes)
}

/// `n` random ids (a collision among 192-bit random ids is not a practical concern).
pub fn random_ids(rng: &mut SmallRng, n: usize) -> Vec<String> {
    (0..n).map(|_| random_id(rng)).collect()
}

/// A random `data` field.
pub fn random_data(rng: &mut SmallRng) -> String {
    (0..DATA_CHARS)
        .map(|_| char::from(BASE64URL[rng.random_range(0..64)]))
        .collect()
}

/// The document stored under `id`.
pub fn document(id: &str, version: u64, data: &str) -> Value {
    json!({"_id": id, "v": version, "data": data})
}

/// A batch of `(id, document)` pairs, one fresh random body each, for `ids`.
pub fn documents(rng: &mut SmallRng, ids: &[String], version: u64) -> Vec<(String, Value)> {
    ids.iter()
        .map(|id| (id.clone(), document(id, version, &random_data(rng))))
        .collect()
}

/// A small pool of bodies that the updates of the timed mixes reuse, so that the cost of
/// generating random text stays out of the measured loop.
pub fn data_pool(rng: &mut SmallRng, n: usize) -> Vec<String> {
    (0..n).map(|_| random_data(rng)).collect()
}

/// Zipfian choice of an index in `0..n`: index 0 is the most popular. The ids are random, so
/// popularity has nothing to do with where a key sorts or when it was inserted.
#[derive(Debug, Clone)]
pub struct Zipfian {
    zipf: Zipf<f64>,
    n: usize,
}

impl Zipfian {
    /// Over `n` items (at least 1) with YCSB's exponent.
    pub fn new(n: usize) -> Result<Self, String> {
        Self::with_exponent(n, ZIPF_EXPONENT)
    }

    /// Over `n` items with exponent `s`.
    pub fn with_exponent(n: usize, s: f64) -> Result<Self, String> {
        // Item counts stay far below 2^52, so the conversion is exact.
        let zipf = Zipf::new(n.max(1) as f64, s).map_err(|e| format!("Zipf({n}, {s}): {e}"))?;
        Ok(Self { zipf, n: n.max(1) })
    }

    /// A sample in `0..n`.
    pub fn sample(&self, rng: &mut SmallRng) -> usize {
        // Zipf samples are integers in 1..=n.
        let rank = self.zipf.sample(rng) as usize;
        rank.clamp(1, self.n) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        // RFC 4648 section 10, unpadded.
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64url(input.as_bytes()), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn ids_are_32_safe_characters_and_reproducible() {
        let a = random_ids(&mut rng(7), 100);
        let b = random_ids(&mut rng(7), 100);
        assert_eq!(a, b);
        for id in &a {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        }
    }

    #[test]
    fn documents_are_about_190_bytes() {
        let ids = random_ids(&mut rng(1), 10);
        for (id, doc) in documents(&mut rng(2), &ids, 123_456) {
            assert_eq!(doc["_id"], id.as_str());
            let len = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
            assert!((180..=200).contains(&len), "{len} bytes");
        }
    }

    #[test]
    fn zipfian_samples_are_in_range_and_skewed() {
        let n = 1000;
        let zipf = Zipfian::new(n).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = rng(3);
        let mut counts = vec![0u32; n];
        let samples = 200_000;
        for _ in 0..samples {
            let i = zipf.sample(&mut rng);
            assert!(i < n);
            counts[i] += 1;
        }
        // With s = 0.99, P(rank k) is proportional to k^-0.99: the first item is drawn about
        // twice as often as the second and about 10^0.99 ≈ 9.8 times as often as the tenth.
        let ratio_2 = f64::from(counts[0]) / f64::from(counts[1]);
        let ratio_10 = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((1.8..2.2).contains(&ratio_2), "first/second = {ratio_2}");
        assert!((8.0..12.0).contains(&ratio_10), "first/tenth = {ratio_10}");
        // The head is hot: H(10, 0.99) / H(1000, 0.99) ≈ 0.39 of the draws.
        let head: u32 = counts[..10].iter().sum();
        let share = f64::from(head) / f64::from(samples);
        assert!((0.35..0.43).contains(&share), "top-10 share = {share}");
        // Every item is reachable in principle; most of the tail is hit at this sample size.
        assert!(counts.iter().filter(|&&c| c > 0).count() > n / 2);
    }

    #[test]
    fn zipfian_over_one_item_always_picks_it() {
        let zipf = Zipfian::new(1).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = rng(4);
        assert!((0..100).all(|_| zipf.sample(&mut rng) == 0));
    }
}
