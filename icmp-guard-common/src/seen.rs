//! The recently-seen filter: answers "could this source be known?" from one cache line, so a
//! flood of spoofed sources is refused without a miss in the big per-source table.
//!
//! A source hashes (keyed by a per-attach seed) to one [`Line`] of [`LINES`] and to a
//! 15-bit fingerprint. A line holds [`WAYS`] entries of 32 bits, two to a word, each a
//! fingerprint and the tick (about a second) it was last stamped, and one overflow stamp.
//! Every source that passes stamps its entry: it takes a free or stale entry of its line (by
//! compare-and-swap of the entry's word, so two CPUs never take the same one), and only when
//! all are fresh does it stamp the line's overflow word instead. Fresh entries are never
//! replaced, so:
//!
//! - a source whose fingerprint is fresh in its line was probably seen within the window
//!   ([`Seen::Recent`]; another source with the same line and fingerprint is a false
//!   positive, at most 14 in 32,768, which costs one lookup in the table);
//! - a source absent from a line that did not overflow within the window was certainly not
//!   stamped within it ([`Seen::New`]): there are no false negatives. (The policy renews a
//!   source's stamp at most once per tick, so a source is certainly recent for the window
//!   less two ticks);
//! - a source absent from a line that overflowed may have been seen ([`Seen::Maybe`]), and
//!   costs a lookup in the table.
//!
//! With 8,192 lines of 14 entries (512 KiB, small enough to stay in a core's L2 cache while a
//! flood runs: a spoofed source costs an L2 hit, not a trip to memory), 65,536 sources active
//! within a window fill a line to 8 on average, and about 1 line in 60 overflows; the default
//! admission budgets let at most ~24,000 new sources in per window. Stamps are 16 bits of
//! ticks and wrap after about 19.5 hours: an entry left alone that long can look fresh again
//! for a window, a false positive like any other, and its slot is not taken again until that
//! window has passed. A stamp a tick or two ahead of the clock this CPU read (another CPU
//! read it later) counts as fresh.

use core::sync::atomic::AtomicU64;

use crate::{SourceKey, atomic};

/// Lines in the filter: 512 KiB of 64-byte lines, each one cache line.
pub const LINES: u32 = 1 << LINE_BITS;
const LINE_BITS: u32 = 13;

/// Words per line: [`PAIRS`] words of two entries each, then the overflow stamp.
pub const WORDS: usize = PAIRS + 1;
const PAIRS: usize = 7;

/// Entries per line.
pub const WAYS: usize = 2 * PAIRS;

/// How long a source stays recent after it was last seen: a known source that sends
/// nothing for longer has to be admitted again while new sources are being refused.
pub const WINDOW_NS: u64 = 60 * crate::bucket::NS_PER_SEC;

/// A tick, the unit of stamps: 2^30 ns, about a second. A source restamps its entry at most
/// once per tick, so a busy source does not write its line (and bounce its cache line
/// between CPUs) on every packet.
pub const RESTAMP_NS: u64 = 1 << TICK_SHIFT;

const TICK_SHIFT: u32 = 30;
/// An entry: `USED | fingerprint << 16 | stamp`, the stamp in the low 16 bits.
const STAMP_MASK: u32 = 0xffff;
/// The window in whole ticks, rounded up: a tick is longer than a second, and a source seen
/// again 60 s after its stamp is 55 or 56 ticks older, by where the two times fall in their
/// ticks. So a source is recent for at least [`WINDOW_NS`], and less than `WINDOW_TICKS + 1`
/// ticks (about 61.2 s).
const WINDOW_TICKS: u32 = WINDOW_NS.div_ceil(RESTAMP_NS) as u32;
/// How far ahead of the clock a CPU read a stamp may be: written by another CPU that read the
/// clock later (the policy reads it once per packet, before the look and the stamp).
const AHEAD_TICKS: u32 = 2;
/// An entry in use has this bit set, so an all-zero entry is free.
const USED: u32 = 1 << 31;
const FINGERPRINT_SHIFT: u32 = 16;
const FINGERPRINT_MASK: u64 = 0x7fff;

/// One line of the filter: [`PAIRS`] words of two entries, and the overflow stamp (in whole
/// ticks, zero for never). 64 bytes, the map's value.
#[repr(C)]
pub struct Line {
    pub entries: [AtomicU64; PAIRS],
    pub overflow: AtomicU64,
}

impl Line {
    /// An empty line.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: [const { AtomicU64::new(0) }; PAIRS],
            overflow: AtomicU64::new(0),
        }
    }
}

impl Line {
    /// The line's words, entry pairs then the overflow stamp, as the map stores them.
    #[must_use]
    pub fn words(&self) -> [u64; WORDS] {
        let mut words = [0; WORDS];
        for (word, cell) in words.iter_mut().zip(self.entries.iter()) {
            *word = atomic::load(cell);
        }
        words[PAIRS] = atomic::load(&self.overflow);
        words
    }

    /// Overwrites the line with `words` (as [`Line::words`] gives them).
    pub fn set_words(&self, words: [u64; WORDS]) {
        for (cell, word) in self.entries.iter().zip(words) {
            atomic::store(cell, word);
        }
        atomic::store(&self.overflow, words[PAIRS]);
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

/// Whole ticks since boot.
const fn ticks(now_ns: u64) -> u64 {
    now_ns >> TICK_SHIFT
}

/// An entry's half of `word` (0: low, 1: high).
#[inline(always)]
const fn entry(word: u64, half: usize) -> u32 {
    (word >> (32 * half)) as u32
}

/// `word` with its `half` replaced by `entry`.
#[inline(always)]
const fn with_entry(word: u64, half: usize, entry: u32) -> u64 {
    let shift = 32 * half;
    (word & !(0xffff_ffff << shift)) | (entry as u64) << shift
}

/// The age in ticks of an entry stamped at `entry`'s low 16 bits, at `now` (ticks). A stamp
/// up to [`AHEAD_TICKS`] ahead of `now` is of age 0: another CPU stamped it after this one
/// read the clock.
#[inline(always)]
const fn age(entry: u32, now: u64) -> u32 {
    let age = (now as u32).wrapping_sub(entry) & STAMP_MASK;
    if age > STAMP_MASK - AHEAD_TICKS {
        0
    } else {
        age
    }
}

/// Whether `entry` is in use and stamped within the window at `now` (ticks).
#[inline(always)]
const fn fresh(entry: u32, now: u64) -> bool {
    entry & USED != 0 && age(entry, now) <= WINDOW_TICKS
}

/// Looks `place` up in `line` at `now_ns`.
#[inline(always)]
#[must_use]
pub fn look(line: &Line, place: Place, now_ns: u64) -> Seen {
    let now = ticks(now_ns);
    let wanted = USED | (place.fingerprint as u32) << FINGERPRINT_SHIFT;
    let mut i = 0;
    while i < PAIRS {
        let word = atomic::load(&line.entries[i]);
        let mut half = 0;
        while half < 2 {
            let e = entry(word, half);
            if e & !STAMP_MASK == wanted && age(e, now) <= WINDOW_TICKS {
                return Seen::Recent {
                    stale: age(e, now) != 0,
                };
            }
            half += 1;
        }
        i += 1;
    }
    // The overflow word is renewed at most once per tick, so it counts a tick longer: a
    // source that overflowed just after it was stamped stays `Maybe` for the window. Whole
    // ticks since boot never wrap; one ahead of `now` (another CPU's) is within the window.
    let overflow = atomic::load(&line.overflow);
    if overflow != 0 && overflow + u64::from(WINDOW_TICKS) + 1 >= now {
        Seen::Maybe
    } else {
        Seen::New
    }
}

/// Stamps `place` in `line` at `now_ns` after [`look`] said `seen`: renews its entry, or takes
/// a free or stale one, or, when every entry is fresh, stamps the overflow word (at most once
/// per tick).
#[inline(always)]
pub fn stamp(line: &Line, place: Place, seen: Seen, now_ns: u64) {
    let now = ticks(now_ns);
    let mine = USED | (place.fingerprint as u32) << FINGERPRINT_SHIFT;
    let stamped = mine | (now as u32 & STAMP_MASK);
    // Scanned again rather than indexed by what `look` found: a variable offset into a map
    // value is refused to programs without `CAP_PERFMON` once the verifier merged paths.
    if let Seen::Recent { .. } = seen {
        let mut i = 0;
        'renew: while i < PAIRS {
            let cell = &line.entries[i];
            let old = atomic::load(cell);
            let mut half = 0;
            while half < 2 {
                // Only if it is still this source's entry (a stale entry may have been taken).
                if entry(old, half) & !STAMP_MASK == mine {
                    if renew(cell, old, half, stamped, now) {
                        return;
                    }
                    // Rather than lose the renewal, stamp the overflow word below, which
                    // makes the line's absent sources a "maybe" for the window.
                    break 'renew;
                }
                half += 1;
            }
            i += 1;
        }
        if i < PAIRS {
            stamp_overflow(line, now);
            return;
        }
        // Its entry is gone: it was stale, and another CPU took it for its own source. Take
        // another rather than leave a source just metered unstamped.
    }
    take(line, stamped, now);
}

/// Renews `half` of `cell`, loaded as `old`, to `stamped` at `now` (ticks). False when the
/// word changed since (another CPU wrote the other entry) and this entry is not renewed: the
/// caller must then mark the line overflowed. True also when another CPU renewed it first.
#[inline(always)]
fn renew(cell: &AtomicU64, old: u64, half: usize, stamped: u32, now: u64) -> bool {
    if atomic::compare_exchange(cell, old, with_entry(old, half, stamped)).is_ok() {
        return true;
    }
    let e = entry(atomic::load(cell), half);
    e & !STAMP_MASK == stamped & !STAMP_MASK && age(e, now) == 0
}

/// Takes a free or stale entry of `line` for `stamped` at `now` (ticks), or, when every entry
/// is fresh, stamps the overflow word.
#[inline(always)]
fn take(line: &Line, stamped: u32, now: u64) {
    let mut i = 0;
    while i < PAIRS {
        let cell = &line.entries[i];
        let mut half = 0;
        while half < 2 {
            // Loaded for each entry: a failed swap of the first entry means the word changed.
            let old = atomic::load(cell);
            if !fresh(entry(old, half), now)
                && atomic::compare_exchange(cell, old, with_entry(old, half, stamped)).is_ok()
            {
                return;
            }
            half += 1;
        }
        i += 1;
    }
    stamp_overflow(line, now);
}

/// Stamps the overflow word of `line` at `now` (ticks), at most once per tick and never back
/// in time: swapped only for the value compared, so a later stamp another CPU wrote meanwhile
/// stays. One that lost to an earlier tick is not retried: [`look`] allows a stamp a tick
/// behind the clock.
#[inline(always)]
fn stamp_overflow(line: &Line, now: u64) {
    let overflow = atomic::load(&line.overflow);
    if overflow == 0 || now > overflow {
        let _ = atomic::compare_exchange(&line.overflow, overflow, now.max(1));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    const S: u64 = crate::bucket::NS_PER_SEC;
    /// A tick in ns.
    const T: u64 = RESTAMP_NS;

    /// The place of `fingerprint` on line 0.
    fn on_line_0(fingerprint: u64) -> Place {
        Place {
            line: 0,
            fingerprint,
        }
    }

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

    /// One line, many sources placed on it by hand: (what happens, when in ns, the
    /// fingerprint, stamp it or not, what `look` says before).
    #[test]
    fn one_line_through_time() {
        let line = Line::new();
        let at = on_line_0;
        let recent = |stale| Seen::Recent { stale };
        let mut cases: std::vec::Vec<(&str, u64, u64, bool, Seen)> = std::vec![
            ("never seen", 10 * T, 1, true, Seen::New),
            ("seen at once", 10 * T, 1, false, recent(false)),
            (
                "within the tick: no new stamp due",
                10 * T + T / 2,
                1,
                false,
                recent(false)
            ),
            (
                "the next tick: a new stamp due",
                11 * T,
                1,
                true,
                recent(true)
            ),
            ("renewed", 11 * T, 1, false, recent(false)),
            (
                "a second source takes the next entry",
                12 * T,
                2,
                true,
                Seen::New
            ),
        ];
        // Twelve more fill the line's fourteen entries, both halves of every word.
        for fingerprint in 3..=14 {
            cases.push(("fills the line", 12 * T, fingerprint, true, Seen::New));
        }
        cases.extend([
            (
                "a fifteenth source finds no room: overflow",
                12 * T,
                15,
                true,
                Seen::New,
            ),
            ("it may have been seen", 13 * T, 15, false, Seen::Maybe),
            (
                "so may any other of this line",
                13 * T,
                16,
                false,
                Seen::Maybe,
            ),
            (
                "the fourteen are all still known",
                13 * T,
                14,
                false,
                recent(true),
            ),
        ]);
        for (what, now, fingerprint, stamp_it, expected) in cases {
            let seen = look(&line, at(fingerprint), now);
            assert_eq!(seen, expected, "{what} ({fingerprint} at {now} ns)");
            if stamp_it {
                stamp(&line, at(fingerprint), seen, now);
            }
        }
        // A window later everything is stale: new again, and entries are reused.
        let later = 13 * T + WINDOW_NS + 3 * T;
        assert_eq!(look(&line, at(15), later), Seen::New);
        stamp(&line, at(15), Seen::New, later);
        assert_eq!(look(&line, at(15), later), recent(false));
        assert_eq!(look(&line, at(1), later), Seen::New);
    }

    /// A source whose stale entry another CPU takes for its own source between this CPU's look
    /// and its stamp (the other read the clock a tick later) is stamped all the same, in
    /// another entry: it was just metered, and must not be refused as new next time.
    #[test]
    fn a_renewal_that_finds_its_entry_taken_takes_another() {
        let line = Line::new();
        let first = 10 * T;
        stamp(&line, on_line_0(1), Seen::New, first);
        // The last tick the entry is recent in, and the first it is not.
        let last = first + u64::from(WINDOW_TICKS) * T;
        let seen = look(&line, on_line_0(1), last);
        assert_eq!(seen, Seen::Recent { stale: true });
        assert_eq!(look(&line, on_line_0(2), last + T), Seen::New);
        stamp(&line, on_line_0(2), Seen::New, last + T);
        stamp(&line, on_line_0(1), seen, last);
        assert_eq!(
            look(&line, on_line_0(1), last),
            Seen::Recent { stale: false }
        );
        assert_eq!(
            look(&line, on_line_0(2), last + T),
            Seen::Recent { stale: false }
        );
    }

    /// A source seen again 60 s after its stamp is recent wherever the two times fall in
    /// their ticks.
    #[test]
    fn sixty_seconds_later_is_within_the_window() {
        for offset in 0..64 {
            let line = Line::new();
            let at = 10 * T + offset * (T / 64);
            stamp(&line, on_line_0(1), Seen::New, at);
            assert_ne!(
                look(&line, on_line_0(1), at + WINDOW_NS),
                Seen::New,
                "stamped {offset}/64 into a tick"
            );
        }
    }

    /// The stamps wrap after 2^16 ticks: an entry left alone that long looks fresh again (a
    /// false positive, one lookup in the table), and a window later stale once more.
    #[test]
    fn stamps_wrap_into_a_false_positive_only() {
        let line = Line::new();
        let p = on_line_0(9);
        stamp(&line, p, Seen::New, 5 * T);
        let wrapped = 5 * T + (1 << 16) * T;
        assert_eq!(look(&line, p, wrapped), Seen::Recent { stale: false });
        assert_eq!(look(&line, p, wrapped + WINDOW_NS + 2 * T), Seen::New);
    }

    /// A stamp another CPU made a tick after this one read the clock is fresh, not stale, and
    /// the overflow word never moves back in time.
    #[test]
    fn stamps_a_tick_ahead_of_the_clock_are_fresh() {
        let line = Line::new();
        let p = on_line_0(3);
        stamp(&line, p, Seen::New, 21 * T);
        assert_eq!(look(&line, p, 20 * T), Seen::Recent { stale: false });
        // Full: fourteen fresh entries a tick ahead, then one more overflows.
        let full = Line::new();
        for fingerprint in 1..=14 {
            let at = on_line_0(fingerprint);
            stamp(&full, at, Seen::New, 21 * T);
        }
        let other = on_line_0(15);
        stamp(&full, other, Seen::New, 21 * T);
        assert_eq!(look(&full, other, 20 * T), Seen::Maybe);
        assert_eq!(
            look(&full, on_line_0(1), 20 * T),
            Seen::Recent { stale: false }
        );
        stamp(&full, other, Seen::Maybe, 20 * T);
        assert_eq!(
            atomic::load(&full.overflow),
            21,
            "the overflow word went back in time"
        );
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
                // Stamps are in ticks of ~1 s: allow two ticks of rounding at the edge.
                if now - at + 2 * T < WINDOW_NS {
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
                        let p = on_line_0(t * 10 + f);
                        stamp(line, p, Seen::New, S);
                    }
                });
            }
        });
        for t in 0..2u64 {
            for f in 0..3 {
                let p = on_line_0(t * 10 + f);
                assert!(matches!(look(&line, p, S), Seen::Recent { .. }), "{p:?}");
            }
        }
    }

    /// A renewal whose word changed since it was loaded: lost when the other entry changed
    /// (the caller then marks the line overflowed), done when another CPU renewed this one.
    /// (what, the word when renewing, whether the renewal counts as done)
    #[test]
    fn a_renewal_knows_when_it_lost_the_race() {
        const BEFORE: u32 = 0x9;
        const NOW: u32 = 0xa;
        let a = USED | 1 << FINGERPRINT_SHIFT;
        let b = USED | 2 << FINGERPRINT_SHIFT;
        let word = |a_tick: u32, b_tick: u32| with_entry(u64::from(a | a_tick), 1, b | b_tick);
        let loaded = word(BEFORE, BEFORE);
        for (what, current, done) in [
            ("nothing changed", word(BEFORE, BEFORE), true),
            ("the other entry was renewed", word(BEFORE, NOW), false),
            (
                "this entry was renewed by another CPU",
                word(NOW, BEFORE),
                true,
            ),
        ] {
            let cell = AtomicU64::new(current);
            assert_eq!(
                renew(&cell, loaded, 0, a | NOW, u64::from(NOW)),
                done,
                "{what}"
            );
        }
    }
}
