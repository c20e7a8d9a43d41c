//! The recently-seen filter: answers "could this source be known?" from one cache line, so a
//! flood of spoofed sources is refused without a miss in the big per-source table.
//!
//! A source hashes (keyed by a per-attach seed) to one [`Line`] of [`LINES`] and to a
//! 15-bit fingerprint. A line holds [`WAYS`] entries, each a fingerprint and the time it was
//! last stamped, and one overflow stamp. Every source that passes stamps its entry: it takes
//! a free or stale entry of its line (by compare-and-swap, so two CPUs never take the same
//! one), and only when all are fresh does it stamp the line's overflow word instead. Fresh
//! entries are never replaced, so:
//!
//! - a source whose fingerprint is fresh in its line was probably seen within the window
//!   ([`Seen::Recent`]; another source with the same line and fingerprint is a false
//!   positive, at most 7 in 32,768, which costs one lookup in the table);
//! - a source absent from a line that did not overflow within the window was certainly not
//!   stamped within it ([`Seen::New`]): there are no false negatives. (The policy renews a
//!   source's stamp at most once per [`RESTAMP_NS`], so a source is certainly recent for
//!   the window less that second);
//! - a source absent from a line that overflowed may have been seen ([`Seen::Maybe`]), and
//!   costs a lookup in the table.
//!
//! With 32,768 lines of 7 entries (2 MiB), 65,536 sources active within a window fill a line
//! to 2 on average, and about 1 line in 1,000 overflows; the default admission budgets let
//! at most ~24,000 new sources in per window.

use core::sync::atomic::AtomicU64;

use crate::{SourceKey, atomic};

/// Lines in the filter: 2 MiB of 64-byte lines, each one cache line.
pub const LINES: u32 = 1 << LINE_BITS;
const LINE_BITS: u32 = 15;

/// Entries per line; the line's eighth word is its overflow stamp.
pub const WAYS: usize = 7;

/// How long a source stays recent after it was last seen: a known source that sends
/// nothing for longer has to be admitted again while new sources are being refused.
pub const WINDOW_NS: u64 = 60 * crate::bucket::NS_PER_SEC;

/// Restamp an entry only when its stamp is older than this, so a busy source does not write
/// its line (and bounce its cache line between CPUs) on every packet.
pub const RESTAMP_NS: u64 = crate::bucket::NS_PER_SEC;

/// Stamps are kept in units of 2^20 ns (about a millisecond) in the low 48 bits of a word.
const TICK_SHIFT: u32 = 20;
const STAMP_MASK: u64 = (1 << 48) - 1;
const WINDOW_TICKS: u64 = WINDOW_NS >> TICK_SHIFT;
const RESTAMP_TICKS: u64 = RESTAMP_NS >> TICK_SHIFT;
/// An entry in use has this bit set, so an all-zero word is free.
const USED: u64 = 1 << 63;
const FINGERPRINT_SHIFT: u32 = 48;
const FINGERPRINT_MASK: u64 = 0x7fff;

/// One line of the filter: [`WAYS`] entries (`USED | fingerprint << 48 | stamp`) and the
/// overflow stamp. 64 bytes, the map's value.
#[repr(C)]
pub struct Line {
    pub entries: [AtomicU64; WAYS],
    pub overflow: AtomicU64,
}

impl Line {
    /// An empty line.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: [const { AtomicU64::new(0) }; WAYS],
            overflow: AtomicU64::new(0),
        }
    }
}

impl Line {
    /// The line's words, entries then the overflow stamp, as the map stores them.
    #[must_use]
    pub fn words(&self) -> [u64; WAYS + 1] {
        let mut words = [0; WAYS + 1];
        for (word, cell) in words.iter_mut().zip(self.entries.iter()) {
            *word = atomic::load(cell);
        }
        words[WAYS] = atomic::load(&self.overflow);
        words
    }

    /// Overwrites the line with `words` (as [`Line::words`] gives them).
    pub fn set_words(&self, words: [u64; WAYS + 1]) {
        for (cell, word) in self.entries.iter().zip(words) {
            atomic::store(cell, word);
        }
        atomic::store(&self.overflow, words[WAYS]);
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

/// A source's place in the filter: its line and fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub line: u32,
    fingerprint: u64,
}

/// The place of `key` under `seed`: a multiply-xorshift of the key's two halves, whose top
/// bits pick the line and the next 15 the fingerprint.
#[inline(always)]
#[must_use]
pub fn place(key: &SourceKey, seed: u64) -> Place {
    let [hi, lo] = key.words();
    let h = (hi ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo;
    let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = h ^ (h >> 32);
    Place {
        line: (h >> (64 - LINE_BITS)) as u32,
        fingerprint: (h >> (64 - LINE_BITS - 15)) & FINGERPRINT_MASK,
    }
}

/// What the filter says of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Its fingerprint is fresh in its line: look it up. `stale`: its stamp is due for renewal.
    Recent { stale: bool },
    /// Absent from a line that overflowed within the window: it may have been seen.
    Maybe,
    /// Not seen within the window.
    New,
}

const fn ticks(now_ns: u64) -> u64 {
    (now_ns >> TICK_SHIFT) & STAMP_MASK
}

/// Whether a word stamped at `word`'s low 48 bits is within the window at `now` (ticks).
#[inline(always)]
const fn fresh(word: u64, now: u64) -> bool {
    word != 0 && (now.wrapping_sub(word) & STAMP_MASK) <= WINDOW_TICKS
}

/// Looks `place` up in `line` at `now_ns`.
#[inline(always)]
#[must_use]
pub fn look(line: &Line, place: Place, now_ns: u64) -> Seen {
    let now = ticks(now_ns);
    let wanted = USED | place.fingerprint << FINGERPRINT_SHIFT;
    let mut i = 0;
    while i < WAYS {
        let word = atomic::load(&line.entries[i]);
        if word & !STAMP_MASK == wanted && fresh(word, now) {
            let age = now.wrapping_sub(word) & STAMP_MASK;
            return Seen::Recent {
                stale: age > RESTAMP_TICKS,
            };
        }
        i += 1;
    }
    // The overflow word is renewed at most once per `RESTAMP_NS`, so it counts a second
    // longer: a source that overflowed just after it was stamped stays `Maybe` for the window.
    let overflow = atomic::load(&line.overflow);
    if overflow != 0 && (now.wrapping_sub(overflow) & STAMP_MASK) <= WINDOW_TICKS + RESTAMP_TICKS {
        Seen::Maybe
    } else {
        Seen::New
    }
}

/// Stamps `place` in `line` at `now_ns` after [`look`] said `seen`: renews its entry, or takes
/// a free or stale one, or, when every entry is fresh, stamps the overflow word (at most once
/// per [`RESTAMP_NS`]).
#[inline(always)]
pub fn stamp(line: &Line, place: Place, seen: Seen, now_ns: u64) {
    let now = ticks(now_ns);
    let word = USED | place.fingerprint << FINGERPRINT_SHIFT | now;
    // Scanned again rather than indexed by what `look` found: a variable offset into a map
    // value is refused to programs without `CAP_PERFMON` once the verifier merged paths.
    if let Seen::Recent { .. } = seen {
        let mut i = 0;
        while i < WAYS {
            let cell = &line.entries[i];
            let old = atomic::load(cell);
            // Only if it is still this source's entry (a stale entry may have been taken).
            if old & !STAMP_MASK == word & !STAMP_MASK {
                let _ = atomic::compare_exchange(cell, old, word);
                return;
            }
            i += 1;
        }
        return;
    }
    let mut i = 0;
    while i < WAYS {
        let cell = &line.entries[i];
        let old = atomic::load(cell);
        if !fresh(old, now) && atomic::compare_exchange(cell, old, word).is_ok() {
            return;
        }
        i += 1;
    }
    let overflow = atomic::load(&line.overflow);
    if now.wrapping_sub(overflow) & STAMP_MASK > RESTAMP_TICKS || overflow == 0 {
        atomic::store(&line.overflow, now.max(1));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    const S: u64 = crate::bucket::NS_PER_SEC;
    const MS: u64 = S / 1000;

    fn key(i: u32) -> SourceKey {
        SourceKey::v4(i.to_be_bytes())
    }

    #[test]
    fn lines_fit_and_spread() {
        let mut hits = [0u32; 64];
        for i in 0..64u32 * 1000 {
            let at = place(&key(i), 7).line;
            assert!(at < LINES);
            hits[(at >> (LINE_BITS - 6)) as usize] += 1;
        }
        // 64 groups of ~1000 each: a consecutive range of addresses spreads evenly.
        assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
    }

    #[test]
    fn the_seed_moves_sources() {
        let k = SourceKey::v4([198, 51, 100, 2]);
        assert_ne!(place(&k, 1), place(&k, 2));
    }

    /// One line, many sources placed on it by hand: (what happens, when in ms, the
    /// fingerprint, stamp it or not, what `look` says before).
    #[test]
    fn one_line_through_time() {
        let line = Line::new();
        let at = |fingerprint| Place {
            line: 0,
            fingerprint,
        };
        let recent = |stale| Seen::Recent { stale };
        #[rustfmt::skip]
        let cases: [(&str, u64, u64, bool, Seen); 14] = [
            ("never seen", 10_000, 1, true, Seen::New),
            ("seen at once", 10_000, 1, false, recent(false)),
            ("within a second: no new stamp due", 10_900, 1, false, recent(false)),
            ("after a second: a new stamp due", 11_100, 1, true, recent(true)),
            ("renewed", 11_100, 1, false, recent(false)),
            ("a second source takes the next entry", 12_000, 2, true, Seen::New),
            ("fills the line", 12_000, 3, true, Seen::New),
            ("", 12_000, 4, true, Seen::New),
            ("", 12_000, 5, true, Seen::New),
            ("", 12_000, 6, true, Seen::New),
            ("", 12_000, 7, true, Seen::New),
            ("an eighth source finds no room: overflow", 12_000, 8, true, Seen::New),
            ("it may have been seen", 13_000, 8, false, Seen::Maybe),
            ("so may any other of this line", 13_000, 9, false, Seen::Maybe),
        ];
        for (what, ms, fingerprint, stamp_it, expected) in cases {
            let now = ms * MS;
            let seen = look(&line, at(fingerprint), now);
            assert_eq!(seen, expected, "{what} ({fingerprint} at {ms} ms)");
            if stamp_it {
                stamp(&line, at(fingerprint), seen, now);
            }
        }
        // A window later everything is stale: new again, and entries are reused.
        let later = 13 * S + WINDOW_NS + 2 * S;
        assert_eq!(look(&line, at(8), later), Seen::New);
        stamp(&line, at(8), Seen::New, later);
        assert_eq!(look(&line, at(8), later), recent(false));
        assert_eq!(look(&line, at(1), later), Seen::New);
    }

    /// No false negatives: under any mix of sources and times, a source stamped within the
    /// window is never `New` (deterministic pseudo-random workload, 2 lines only so they
    /// overflow often).
    #[test]
    fn a_source_stamped_within_the_window_is_never_new() {
        let lines = [Line::new(), Line::new()];
        let mut last = std::collections::HashMap::<(u32, u64), u64>::new();
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut now = S;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            now += (x >> 40) % (S / 50);
            let p = Place {
                line: (x & 1) as u32,
                fingerprint: (x >> 8) % 40,
            };
            let line = &lines[p.line as usize];
            let seen = look(line, p, now);
            if let Some(&at) = last.get(&(p.line, p.fingerprint)) {
                // Stamps are in ticks of ~1 ms: allow two ticks of rounding at the edge.
                if now - at + (2 << TICK_SHIFT) < WINDOW_NS {
                    assert_ne!(seen, Seen::New, "{p:?} stamped at {at}, looked at {now}");
                }
            }
            if x & 0x30 != 0 {
                stamp(line, p, seen, now);
                last.insert((p.line, p.fingerprint), now);
            }
        }
    }

    /// Two threads stamping different sources into one line never lose one.
    #[test]
    fn concurrent_stamps_take_different_entries() {
        let line = Line::new();
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let line = &line;
                s.spawn(move || {
                    for f in 0..3 {
                        let p = Place {
                            line: 0,
                            fingerprint: t * 10 + f,
                        };
                        stamp(line, p, Seen::New, S);
                    }
                });
            }
        });
        for t in 0..2u64 {
            for f in 0..3 {
                let p = Place {
                    line: 0,
                    fingerprint: t * 10 + f,
                };
                assert!(matches!(look(&line, p, S), Seen::Recent { .. }), "{p:?}");
            }
        }
    }
}
