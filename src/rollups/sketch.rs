//! Distinct actors (userId, else anonymousId) as HyperLogLog sketches: Apache DataSketches'
//! HLL at lg_k 14, whose relative standard error is about 0.8%. Stored as HLL_4 (about
//! 8 KiB once dense; far less while an hour has few actors), or HLL_8 where reads merge
//! many (`ActorSketch::for_unions`); merged through a union.

use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};

/// log2 of the register count: 16,384 registers, ~0.81% standard error.
const LG_K: u8 = 14;
const STORED_TYPE: HllType = HllType::Hll4;
const UNION_TYPE: HllType = HllType::Hll8;

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
