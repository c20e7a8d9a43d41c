//! The recently-seen filter: answers "could this source be known?" from a small array, so a
//! flood of spoofed sources is refused without a miss in the big per-source table.
//!
//! Each source hashes (keyed by a per-attach seed) to one slot of [`SLOTS`]; a slot holds the
//! last time any source hashing there was seen. A source is *recent* when its slot was
//! stamped within [`WINDOW_NS`]. Stamps only move forward and every source that passes
//! stamps its slot, so there are no false negatives: a source seen within the window is
//! always recent. A spoofed address may land on a slot another source stamped (a false
//! positive); it then costs one lookup in the table, nothing else. With the default
//! admission of 100 new sources a second per class, at most ~12,000 slots of 131,072 are
//! stamped in any window, so about 9 spoofed packets in 100 reach the table.

use crate::SourceKey;

/// Slots in the filter: 1 MiB of `u64` stamps, small enough to stay in the CPU's cache
/// where a 65,536-source table (7 MiB) does not.
pub const SLOTS: u32 = 1 << SLOT_BITS;
const SLOT_BITS: u32 = 17;

/// How long a source stays recent after it was last seen: a known source that sends
/// nothing for longer has to be admitted again while new sources are being refused.
pub const WINDOW_NS: u64 = 60 * crate::bucket::NS_PER_SEC;

/// Restamp a slot only when its stamp is older than this, so a busy source does not write
/// its slot (and bounce its cache line) on every packet.
pub const RESTAMP_NS: u64 = crate::bucket::NS_PER_SEC;

/// The slot of `key` under `seed`: a multiply-xorshift of the key's two halves.
#[inline(always)]
#[must_use]
pub fn slot(key: &SourceKey, seed: u64) -> u32 {
    let a = &key.addr;
    let hi = u64::from_be_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let lo = u64::from_be_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
    let h = (hi ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo;
    let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h >> (64 - SLOT_BITS)) as u32
}

/// Whether a slot stamped at `stamp_ns` is recent at `now_ns`.
#[inline(always)]
#[must_use]
pub const fn is_recent(stamp_ns: u64, now_ns: u64) -> bool {
    stamp_ns != 0 && now_ns.wrapping_sub(stamp_ns) <= WINDOW_NS
}

/// Whether a slot stamped at `stamp_ns` needs a new stamp at `now_ns`.
#[inline(always)]
#[must_use]
pub const fn needs_stamp(stamp_ns: u64, now_ns: u64) -> bool {
    now_ns.wrapping_sub(stamp_ns) > RESTAMP_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fit_and_spread() {
        let mut hits = [0u32; 64];
        for i in 0..64u32 * 1000 {
            let at = slot(&SourceKey::v4(i.to_be_bytes()), 7);
            assert!(at < SLOTS);
            hits[(at >> (SLOT_BITS - 6)) as usize] += 1;
        }
        // 64 buckets of ~1000 each: a consecutive range of addresses spreads evenly.
        assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
    }

    #[test]
    fn the_seed_moves_sources() {
        let key = SourceKey::v4([198, 51, 100, 2]);
        assert_ne!(slot(&key, 1), slot(&key, 2));
    }

    #[test]
    fn recency() {
        let s = crate::bucket::NS_PER_SEC;
        assert!(!is_recent(0, 5 * s), "never stamped");
        assert!(is_recent(5 * s, 5 * s));
        assert!(is_recent(5 * s, 5 * s + WINDOW_NS));
        assert!(!is_recent(5 * s, 5 * s + WINDOW_NS + 1));
        assert!(!needs_stamp(5 * s, 5 * s + RESTAMP_NS));
        assert!(needs_stamp(5 * s, 5 * s + RESTAMP_NS + 1));
    }
}
