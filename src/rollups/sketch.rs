//! Distinct actors (userId, else anonymousId) as HyperLogLog sketches: Apache DataSketches'
//! HLL at lg_k 14, whose relative standard error is about 0.8%. Stored as HLL_4 (about
//! 8 KiB once dense; far less while an hour has few actors), or HLL_8 where reads merge
//! many (`ActorSketch::for_unions`); merged through a union.

use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};

/// log2 of the register count: 16,384 registers, ~0.81% standard error.
const LG_K: u8 = 14;
const STORED_TYPE: HllType = HllType::Hll4;
const UNION_TYPE: HllType = HllType::Hll8;
/// An encoded sketch's header in HLL mode (DataSketches' layout: `lg_k` at byte 3, the
/// mode byte at 7); a dense HLL_8 sketch's registers follow it, one byte each.
const HLL_HEADER: usize = 40;
const CUR_MODE_HLL: u8 = 2;
const TGT_HLL8: u8 = 2;

/// The registers of an encoded dense HLL_8 sketch at `LG_K`, else `None`.
fn dense_registers(bytes: &[u8]) -> Option<&[u8]> {
    let (lg_k, mode) = (*bytes.get(3)?, *bytes.get(7)?);
    let dense = lg_k == LG_K && mode & 0x3 == CUR_MODE_HLL && (mode >> 2) & 0x3 == TGT_HLL8;
    (dense && bytes.len() == HLL_HEADER + (1 << LG_K)).then(|| &bytes[HLL_HEADER..])
}

/// The actors of one owner (partner or subsystem) in one hour, as stored.
#[derive(Debug, Clone)]
pub struct ActorSketch(HllSketch);

impl Default for ActorSketch {
    fn default() -> ActorSketch {
        ActorSketch(HllSketch::new(LG_K, STORED_TYPE).expect("LG_K is in range"))
    }
}

impl ActorSketch {
    /// An empty sketch stored as HLL_8 (a byte per register: 16 KiB once dense, twice
    /// HLL_4), for sketches that reads merge far more often than they are written, like a
    /// breakdown's values: a union merges HLL_8 registers with a byte-wise max, HLL_4's one
    /// register at a time (measured: 70 to 48 ms for a 30-day top-10, benches/breakdown_read.rs).
    pub fn for_unions() -> ActorSketch {
        ActorSketch(HllSketch::new(LG_K, UNION_TYPE).expect("LG_K is in range"))
    }

    /// What adding `actor` does, hashed once for every sketch it goes into.
    pub fn coupon(actor: &str) -> Coupon {
        Coupon::from_value(actor)
    }

    pub fn add(&mut self, coupon: Coupon) {
        self.0.update_with_coupon(coupon);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.serialize()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ActorSketch, String> {
        HllSketch::deserialize(bytes)
            .map(ActorSketch)
            .map_err(|error| format!("an actor sketch does not decode: {error}"))
    }

    pub fn estimate(&self) -> f64 {
        self.0.estimate()
    }
}

/// Several sketches (and single actors) merged: the distinct actors of them all.
pub struct ActorUnion(HllUnion);

impl Default for ActorUnion {
    fn default() -> ActorUnion {
        ActorUnion(HllUnion::new(LG_K).expect("LG_K is in range"))
    }
}

impl ActorUnion {
    pub fn add_sketch(&mut self, sketch: &ActorSketch) {
        self.0.update(&sketch.0);
    }

    pub fn add_actor(&mut self, actor: &str) {
        self.0.update_value(actor);
    }

    /// Merges encoded sketches (empty ones are empty sketches). The union rebuilds its
    /// estimator over all 16,384 registers for every dense sketch it merges (~30 µs, most
    /// of a month's breakdown read), so dense HLL_8 ones are merged here first, by a
    /// byte-wise max of their stored registers, and given to it as one image (with the
    /// first's header: a union merges only an image's registers). The first goes in as
    /// itself: an empty union takes the estimator state of the array it starts from.
    pub fn add_encoded(&mut self, sketches: &[&[u8]]) -> Result<(), String> {
        let mut dense = sketches
            .iter()
            .filter_map(|bytes| Some((*bytes, dense_registers(bytes)?)));
        if let Some((first, registers)) = dense.next() {
            self.add_sketch(&ActorSketch::from_bytes(first)?);
            let mut merged: Option<Vec<u8>> = None;
            for (_, more) in dense {
                let max = merged.get_or_insert_with(|| registers.to_vec());
                max.iter_mut()
                    .zip(more)
                    .for_each(|(max, more)| *max = (*max).max(*more));
            }
            if let Some(max) = merged {
                let mut image = first[..HLL_HEADER].to_vec();
                image.extend_from_slice(&max);
                self.add_sketch(&ActorSketch::from_bytes(&image)?);
            }
        }
        for sparse in sketches
            .iter()
            .filter(|bytes| dense_registers(bytes).is_none())
        {
            if !sparse.is_empty() {
                self.add_sketch(&ActorSketch::from_bytes(sparse)?);
            }
        }
        Ok(())
    }

    /// The union as a sketch to store.
    pub fn to_sketch(&self) -> ActorSketch {
        ActorSketch(self.0.to_sketch(STORED_TYPE))
    }

    /// The union as a sketch that unions merge fastest (`ActorSketch::for_unions`).
    pub fn to_sketch_for_unions(&self) -> ActorSketch {
        ActorSketch(self.0.to_sketch(UNION_TYPE))
    }

    /// The estimated number of distinct actors, rounded.
    pub fn count(&self) -> u64 {
        self.0.estimate().round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_sketches_merge_as_the_union_merges_them_one_by_one() {
        // Dense and sparse HLL_8 sketches, and an HLL_4 one, overlapping.
        let sketch = |from: u32, to: u32, dense: bool| {
            let mut sketch = if dense {
                ActorSketch::for_unions()
            } else {
                ActorSketch::default()
            };
            (from..to).for_each(|i| sketch.add(ActorSketch::coupon(&format!("u{i}"))));
            sketch.to_bytes()
        };
        let encoded = [
            sketch(0, 20_000, true),
            sketch(10_000, 40_000, true),
            sketch(35_000, 36_000, true),
            sketch(39_990, 40_010, true),
            sketch(50_000, 60_000, false),
            sketch(0, 0, true),
        ];
        assert!(dense_registers(&encoded[0]).is_some() && dense_registers(&encoded[3]).is_none());
        let mut one_by_one = ActorUnion::default();
        for bytes in &encoded {
            one_by_one.add_sketch(&ActorSketch::from_bytes(bytes).unwrap());
        }
        let mut at_once = ActorUnion::default();
        let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        at_once.add_encoded(&slices).unwrap();
        assert_eq!(at_once.0.estimate(), one_by_one.0.estimate());
        let exact = 50_010.0;
        assert!((at_once.0.estimate() - exact).abs() < exact * 0.02);
    }

    #[test]
    fn stored_sketches_merge_into_the_distinct_count() {
        let mut first = ActorSketch::default();
        let mut second = ActorSketch::default();
        for i in 0..30_000 {
            first.add(ActorSketch::coupon(&format!("u{i}")));
        }
        for i in 20_000..50_000 {
            second.add(ActorSketch::coupon(&format!("u{i}")));
        }
        let second = ActorSketch::from_bytes(&second.to_bytes()).unwrap();
        let mut union = ActorUnion::default();
        union.add_sketch(&first);
        union.add_sketch(&second);
        union.add_actor("u0");
        let error = (union.count() as f64 - 50_000.0).abs() / 50_000.0;
        assert!(error < 0.03, "estimate {} for 50,000", union.count());
    }

    #[test]
    fn a_sketch_and_a_union_of_the_same_actors_agree() {
        let mut sketch = ActorSketch::default();
        let mut union = ActorUnion::default();
        for i in 0..100 {
            sketch.add(ActorSketch::coupon(&format!("a{i}")));
            union.add_actor(&format!("a{i}"));
        }
        let mut merged = ActorUnion::default();
        merged.add_sketch(&sketch);
        assert_eq!(merged.count(), union.count());
        assert_eq!(union.count(), 100, "small counts are exact");
    }
}
