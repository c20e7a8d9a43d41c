//! What to do with a parsed ICMP packet: the whole verdict, in the order the README documents.

use core::cell::Cell;

use crate::{
    Config, Reason,
    bucket::{self, Bucket, Class, Limit, SourceKey, SourceState, V4_MAPPED_PREFIX},
    maps,
    parse::{self, Family, Fragment, Frame, IcmpPacket, LOOPBACK_V6},
    seen::{self, Seen},
};

/// `ICMPv4` types the policy names (RFC 792 and successors).
pub mod icmp_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const ROUTER_ADVERT: u8 = 9;
    pub const ROUTER_SOLICIT: u8 = 10;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
    pub const PHOTURIS: u8 = 40;
    pub const EXPERIMENTAL_MOBILITY: u8 = 41;
    pub const EXT_ECHO_REQUEST: u8 = 42;
    pub const EXT_ECHO_REPLY: u8 = 43;
    /// Destination unreachable code "fragmentation needed" (RFC 1191).
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

/// `ICMPv6` types the policy names (RFC 4443, RFC 4861, RFC 3810, RFC 8335).
pub mod icmpv6_type {
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Types below this are errors.
    pub const FIRST_INFORMATIONAL: u8 = 128;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const MLD_REPORT: u8 = 131;
    pub const MLD_DONE: u8 = 132;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const NEIGHBOUR_SOLICIT: u8 = 135;
    pub const REDIRECT: u8 = 137;
    pub const MLD2_REPORT: u8 = 143;
    /// Last type assigned by IANA below the extended echo pair: the MPL control message
    /// (RFC 7731).
    pub const LAST_ASSIGNED: u8 = 159;
    pub const EXT_ECHO_REQUEST: u8 = 160;
    pub const EXT_ECHO_REPLY: u8 = 161;
}

/// Neighbour discovery must arrive with the hop limit it was sent with (RFC 4861 6.1, 7.1).
pub const NDP_HOP_LIMIT: u8 = 255;

/// The hop limit MLD messages are sent with (RFC 3810 5, RFC 2710 3).
pub const MLD_HOP_LIMIT: u8 = 1;

/// The allow and deny lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Allow,
    Deny,
}

/// The budgets every CPU draws from, each one bucket of [`maps::GLOBAL`] that CPUs take
/// tokens from ahead, a few at a time (see [`take_budget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Metered ICMP from all sources together (`--global-rate`).
    Global,
    /// ICMP that no source quota limits.
    Exempt,
}

impl Budget {
    /// The budget's slot in [`maps::GLOBAL`] and [`maps::AHEAD`].
    #[inline(always)]
    #[must_use]
    pub const fn slot(self) -> u32 {
        match self {
            Self::Global => maps::GLOBAL_SLOT,
            Self::Exempt => maps::EXEMPT_SLOT,
        }
    }
}

/// What became of a new source's entry (see [`Env::insert_source`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// The entry was created.
    Created,
    /// The source had an entry already: another CPU created it since this one looked.
    Exists,
    /// The map refused (memory pressure: an LRU map evicts rather than fill up).
    Refused,
}

/// What the verdict needs from its surroundings: the config map, the clock, the per-source
/// buckets, the global and admission budgets, the recently-seen filter and the lists. The XDP
/// program implements it over its maps; tests over `HashMap`s. Every bucket and stamp is
/// shared by all CPUs and only changed atomically; only the tokens a CPU took ahead from a
/// [`Budget`] are its own.
pub trait Env {
    /// The configuration; `None` only if the config map is somehow empty (then fail open).
    fn config(&self) -> Option<&Config>;

    /// The clock buckets are measured against, in nanoseconds.
    fn now_ns(&self) -> u64;

    /// Runs `f` on the state of `key` if the source is known.
    fn with_source<R>(&self, key: &SourceKey, f: impl FnOnce(&SourceState) -> R) -> Option<R>;

    /// Starts tracking a source with `state`, unless it has an entry already (which it keeps
    /// untouched).
    fn insert_source(&self, key: &SourceKey, state: &SourceState) -> Insert;

    /// Runs `f` on the bucket of `budget` and on the count of its tokens this CPU took ahead
    /// and has not spent yet (a per-CPU value: no other CPU touches it).
    fn with_budget<R>(&self, budget: Budget, f: impl FnOnce(&Bucket, &Cell<u64>) -> R)
    -> Option<R>;

    /// How many CPUs may run the program, which bounds the tokens they hold between them
    /// ([`bucket::ahead`]); 0 when not known, and then each CPU takes one token at a time.
    fn cpus(&self) -> u32;

    /// Runs `f` on the admission budget of `class`.
    fn with_admission<R>(&self, class: Class, f: impl FnOnce(&Bucket) -> R) -> Option<R>;

    /// Runs `f` on line `line` (below [`seen::LINES`]) of the recently-seen filter.
    fn with_seen<R>(&self, line: u32, f: impl FnOnce(&seen::Line) -> R) -> Option<R>;

    /// Whether `addr` (IPv4 mapped) falls in a prefix of `list` in bank `bank` (0 or 1,
    /// [`Config::list_bank`]).
    fn listed(&self, list: List, bank: u32, addr: &[u8; 16]) -> bool;
}

/// How the policy treats an ICMP type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Protocol machinery that nothing may limit or list away: neighbour discovery, MLD, and
    /// path-MTU signals (packet too big, fragmentation needed).
    Essential,
    /// Errors and known informational types: never limited, but subject to the deny list.
    Exempt,
    /// Requests: echo, timestamp, extended echo. Metered; dropped when sent to a group.
    Request,
    /// Replies to requests: metered against the reply bucket.
    Reply,
    /// A later fragment: no type to look at; metered like a request.
    LaterFragment,
    /// Deprecated or unknown types.
    Unknown,
}

/// The kind of a packet.
#[inline(always)]
#[must_use]
pub fn kind_of(pkt: &IcmpPacket) -> Kind {
    if !pkt.has_header() {
        return Kind::LaterFragment;
    }
    match pkt.family {
        Family::V4 => kind_v4(pkt.icmp_type, pkt.icmp_code),
        Family::V6 => kind_v6(pkt.icmp_type),
    }
}

#[inline(always)]
const fn kind_v4(ty: u8, code: u8) -> Kind {
    use icmp_type::{
        CODE_FRAG_NEEDED, DEST_UNREACH, ECHO_REPLY, ECHO_REQUEST, EXPERIMENTAL_MOBILITY,
        EXT_ECHO_REPLY, EXT_ECHO_REQUEST, PARAM_PROBLEM, PHOTURIS, REDIRECT, ROUTER_ADVERT,
        ROUTER_SOLICIT, TIME_EXCEEDED, TIMESTAMP, TIMESTAMP_REPLY,
    };
    match ty {
        DEST_UNREACH if code == CODE_FRAG_NEEDED => Kind::Essential,
        ECHO_REQUEST | TIMESTAMP | EXT_ECHO_REQUEST => Kind::Request,
        ECHO_REPLY | TIMESTAMP_REPLY | EXT_ECHO_REPLY => Kind::Reply,
        DEST_UNREACH
        | REDIRECT
        | ROUTER_ADVERT
        | ROUTER_SOLICIT
        | TIME_EXCEEDED
        | PARAM_PROBLEM
        | PHOTURIS
        | EXPERIMENTAL_MOBILITY => Kind::Exempt,
        // 4 source quench (RFC 6633), 6 and 15-18 and 30-39 (RFC 6918), and everything
        // unassigned, reserved or experimental (RFC 1122: unknown types are discarded).
        _ => Kind::Unknown,
    }
}

#[inline(always)]
const fn kind_v6(ty: u8) -> Kind {
    use icmpv6_type::{
        ECHO_REPLY, ECHO_REQUEST, EXT_ECHO_REPLY, EXT_ECHO_REQUEST, FIRST_INFORMATIONAL,
        LAST_ASSIGNED, MLD_DONE, MLD_QUERY, MLD_REPORT, MLD2_REPORT, PACKET_TOO_BIG, REDIRECT,
        ROUTER_SOLICIT,
    };
    match ty {
        PACKET_TOO_BIG
        | MLD_QUERY
        | MLD_REPORT
        | MLD_DONE
        | MLD2_REPORT
        | ROUTER_SOLICIT..=REDIRECT => Kind::Essential,
        // Errors, including unknown ones (RFC 4443 2.4 (a): pass them up).
        0..FIRST_INFORMATIONAL => Kind::Exempt,
        ECHO_REQUEST | EXT_ECHO_REQUEST => Kind::Request,
        ECHO_REPLY | EXT_ECHO_REPLY => Kind::Reply,
        FIRST_INFORMATIONAL..=LAST_ASSIGNED => Kind::Exempt,
        // Unknown informational types are discarded (RFC 4443 2.4 (b)).
        _ => Kind::Unknown,
    }
}

/// Sources that cannot be on the wire (RFC 1122 3.2.1.3, RFC 4291). Private ranges and
/// link-local are not martian: admins live there.
#[inline(always)]
#[must_use]
pub fn is_martian(pkt: &IcmpPacket) -> bool {
    let src = &pkt.src.addr;
    match pkt.family {
        // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 reserved and the
        // limited broadcast.
        Family::V4 => matches!(src[12], 0 | 127 | 224..=255),
        Family::V6 => {
            let unspecified = is_unspecified_v6(&pkt.src);
            // Duplicate address detection and router solicitation may come from :: (RFC 4862
            // 5.4, RFC 4861 6.3.7), and so may MLD reports sent meanwhile (RFC 3590).
            let dad = unspecified
                && pkt.has_header()
                && matches!(
                    pkt.icmp_type,
                    icmpv6_type::NEIGHBOUR_SOLICIT
                        | icmpv6_type::ROUTER_SOLICIT
                        | icmpv6_type::MLD_REPORT
                        | icmpv6_type::MLD2_REPORT
                );
            src[0] == 0xff
                || pkt.src.words() == LOOPBACK_V6
                || pkt.dst_loopback
                || (unspecified && !dad)
                // IPv4-mapped addresses never appear on the wire (RFC 4291 2.5.5.2); as keys
                // they would share buckets with IPv4 sources.
                || src[..12] == V4_MAPPED_PREFIX
        }
    }
}

/// Whether `addr` is `::`, tested as two words: a branch per byte would multiply the paths
/// the verifier walks.
#[inline(always)]
fn is_unspecified_v6(addr: &SourceKey) -> bool {
    let [hi, lo] = addr.words();
    hi | lo == 0
}

/// Whether the packet is addressed to a group: Ethernet broadcast or multicast, the IPv4
/// limited broadcast or multicast, or IPv6 multicast (RFC 1122 3.2.2.6, RFC 4443 4.2).
#[inline(always)]
#[must_use]
pub fn to_group(pkt: &IcmpPacket) -> bool {
    pkt.l2_group || pkt.ip_group
}

/// A frame's reason and the [`Config::flags`] it was judged under, so the caller can act on
/// dry-run and a capture without reading the config again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub reason: Reason,
    /// The config's flags for every judged ICMP frame ([`Reason::is_judged_icmp`]); zero for
    /// other traffic, which never reads the config, and when the config map is empty.
    pub flags: u32,
}

/// The reason for one frame; see [`verdict`].
#[inline(always)]
pub fn judge<F: Frame + ?Sized, E: Env>(frame: &F, env: &E) -> Reason {
    verdict(frame, env).reason
}

/// The verdict for one frame: parse, screen, list, meter. The config is only consulted for
/// ICMP, so other traffic pays for the parse alone.
#[inline(always)]
pub fn verdict<F: Frame + ?Sized, E: Env>(frame: &F, env: &E) -> Verdict {
    let (pkt, cfg) = match parse::parse_frame(frame) {
        Ok(pkt) => match env.config() {
            Some(cfg) => (pkt, cfg),
            None => {
                return Verdict {
                    reason: Reason::PassedUnmetered,
                    flags: 0,
                };
            }
        },
        // A drop by the parser (malformed, too many extension headers) still obeys dry-run
        // and may be captured.
        Err(reason) => {
            let flags = if reason.is_drop() {
                env.config().map_or(0, |cfg| cfg.flags)
            } else {
                0
            };
            return Verdict { reason, flags };
        }
    };
    Verdict {
        reason: judge_packet(env, cfg, &pkt),
        flags: cfg.flags,
    }
}

/// The reason for a parsed ICMP packet under `cfg`.
#[inline(always)]
fn judge_packet<E: Env>(env: &E, cfg: &Config, pkt: &IcmpPacket) -> Reason {
    let class = match screen(env, cfg, pkt) {
        Ok(class) => class,
        Err(reason) => {
            if screening_drop_of_a_source(reason) {
                count_for_known_source(env, cfg, pkt);
            }
            return reason;
        }
    };
    if cfg.allow_entries != 0 && env.listed(List::Allow, cfg.list_bank(), &pkt.src.addr) {
        return Reason::Allowed;
    }
    meter(env, cfg, &pkt.src.masked(cfg.mask(pkt.family)), class)
}

/// Screens a parsed ICMP packet: the class it is metered in, or the verdict that ends its
/// judgement here (a drop, or a pass of ICMP that no source quota limits).
#[inline(always)]
fn screen<E: Env>(env: &E, cfg: &Config, pkt: &IcmpPacket) -> Result<Class, Reason> {
    if is_martian(pkt) {
        return Err(Reason::DroppedMartian);
    }
    // Every fragment, whatever its type: later fragments carry none, and the ping of death is
    // built from them (Linux: "Oversized IP packet").
    if !matches!(pkt.fragment, Fragment::None)
        && (pkt.datagram_end > pkt.family.max_datagram() || pkt.datagram_end > cfg.max_echo_size)
    {
        return Err(Reason::DroppedOversize);
    }
    let kind = kind_of(pkt);
    if let Kind::Essential = kind {
        return Err(essential(env, cfg, pkt));
    }
    if cfg.deny_entries != 0 && env.listed(List::Deny, cfg.list_bank(), &pkt.src.addr) {
        return Err(Reason::DroppedDenied);
    }
    match kind {
        Kind::Unknown => Err(Reason::DroppedUnknownType),
        Kind::Exempt | Kind::Essential => Err(exempt(env, cfg)),
        Kind::Request => {
            if to_group(pkt) {
                Err(Reason::DroppedBroadcast)
            } else if pkt.ip_len > cfg.max_echo_size {
                Err(Reason::DroppedOversize)
            } else {
                Ok(Class::Echo)
            }
        }
        Kind::LaterFragment => Ok(Class::Echo),
        Kind::Reply => Ok(Class::Reply),
    }
}

/// Whether a verdict of the screening is a drop that counts in its source's entry, if the
/// source has one (see [`count_for_known_source`]). Not a martian source, which can have no
/// entry; not a drop by the deny list, which names its sources already and whose flood should
/// stay the cheapest drop there is.
#[inline(always)]
#[must_use]
pub const fn screening_drop_of_a_source(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::DroppedOversize
            | Reason::DroppedBroadcast
            | Reason::DroppedUnknownType
            | Reason::DroppedMalformed
            | Reason::DroppedRateExempt
    )
}

/// Counts a drop by the screening in the entry of the packet's source prefix, if the source is
/// recent (metered within the recently-seen window) and has one, so that `top_sources` names
/// a known source whatever stage dropped its packets. Only metering keeps a source recent: a
/// source that sends nothing but what the screening drops stops being named after the window.
#[inline(always)]
fn count_for_known_source<E: Env>(env: &E, cfg: &Config, pkt: &IcmpPacket) {
    let key = pkt.src.masked(cfg.mask(pkt.family));
    with_known_source(env, cfg, &key, SourceState::count_dropped);
}

/// Runs `f` on the entry of `key` (a masked source) if it has one, asking the recently-seen
/// filter first, which is not stamped (the table's LRU notes the lookup, as it notes every
/// lookup). A source the filter has not seen within its window (every source of a spoofed
/// flood) costs a look at one line of it and no lookup in the table, and counts as having no
/// entry; one whose line overflowed is looked up, as in metering.
#[inline(always)]
pub fn with_known_source<E: Env, R>(
    env: &E,
    cfg: &Config,
    key: &SourceKey,
    f: impl FnOnce(&SourceState) -> R,
) -> Option<R> {
    let place = seen::place(key, cfg.seen_seed);
    let now = env.now_ns();
    env.with_seen(place.line, |line| {
        if seen::look(line, place, now) == Seen::New {
            None
        } else {
            env.with_source(key, f)
        }
    })
    .flatten()
}

/// Neighbour discovery, MLD and path-MTU signals: passed, unless malformed; all but
/// neighbour discovery (which its hop limit of 255 confines to the link) within the exempt
/// budget.
#[inline(always)]
fn essential<E: Env>(env: &E, cfg: &Config, pkt: &IcmpPacket) -> Reason {
    let v6 = pkt.family == Family::V6;
    let ndp = v6 && (icmpv6_type::ROUTER_SOLICIT..=icmpv6_type::REDIRECT).contains(&pkt.icmp_type);
    // NDP is link-local only: a lower hop limit means it was forwarded (spoofed from off
    // link), and NDP is never carried with a fragment header, not even an atomic one (RFC
    // 6980 section 5).
    if ndp {
        return if pkt.hop_limit != NDP_HOP_LIMIT || pkt.fragment_header {
            Reason::DroppedMalformed
        } else {
            Reason::PassedExempt
        };
    }
    // MLD is link-local too (RFC 3810 5.1.14, 5.2.13; RFC 2710 3): hop limit 1 and a
    // link-local source, or :: for a report sent during duplicate address detection (the
    // martian check let only reports through from ::).
    let mld = v6
        && matches!(
            pkt.icmp_type,
            icmpv6_type::MLD_QUERY
                | icmpv6_type::MLD_REPORT
                | icmpv6_type::MLD_DONE
                | icmpv6_type::MLD2_REPORT
        );
    if mld {
        let link_local = u16::from_be_bytes([pkt.src.addr[0], pkt.src.addr[1]]) & 0xffc0 == 0xfe80;
        let unspecified = is_unspecified_v6(&pkt.src);
        #[expect(
            clippy::needless_bitwise_bool,
            reason = "no branch per condition: the verifier walks every path"
        )]
        let bad = (pkt.hop_limit != MLD_HOP_LIMIT) | !(link_local | unspecified);
        if bad {
            return Reason::DroppedMalformed;
        }
    }
    exempt(env, cfg)
}

/// ICMP that no source quota limits (errors, path-MTU signals, MLD, informational types):
/// passed within the exempt budget, which only a flood of it meets.
#[inline(always)]
fn exempt<E: Env>(env: &E, cfg: &Config) -> Reason {
    if take_budget(env, Budget::Exempt, env.now_ns(), &cfg.exempt) {
        Reason::PassedExempt
    } else {
        Reason::DroppedRateExempt
    }
}

/// Meters one packet of `class` from `key`.
///
/// A known source is charged to its own bucket, then to the global budget; a drop by either
/// is counted in its entry. A source that is not known (or not seen within the recently-seen
/// window) must first get a token from the admission budget of its class: a flood of
/// spoofed sources empties only that budget, and while it is empty such packets are refused
/// after a look at one line of the recently-seen filter, without a miss in the per-source
/// table. An admitted source takes from the global budget like any other and gets an entry
/// either way, so a global drop is attributed to it too.
#[inline(always)]
fn meter<E: Env>(env: &E, cfg: &Config, key: &SourceKey, class: Class) -> Reason {
    let now = env.now_ns();
    let place = seen::place(key, cfg.seen_seed);
    // The line is always below `seen::LINES`, so the lookup cannot fail; if it somehow did,
    // fail open.
    env.with_seen(place.line, |line| {
        meter_with(env, cfg, key, class, now, line, place)
    })
    .unwrap_or(Reason::PassedUnmetered)
}

#[inline(always)]
fn meter_with<E: Env>(
    env: &E,
    cfg: &Config,
    key: &SourceKey,
    class: Class,
    now: u64,
    line: &seen::Line,
    place: seen::Place,
) -> Reason {
    let status = seen::look(line, place, now);
    if status != Seen::New
        && let Some(reason) = env.with_source(key, |s| known(env, cfg, s, class, now))
    {
        // A source in a line that overflowed has no entry: it tries for one each time.
        if matches!(status, Seen::Recent { stale: true, .. } | Seen::Maybe) {
            seen::stamp(line, place, status, now);
        }
        return reason;
    }
    let admitted = env
        .with_admission(class, |bucket| bucket.take(now, &cfg.new_source))
        .unwrap_or(true);
    if !admitted {
        return Reason::DroppedNewSource;
    }
    seen::stamp(line, place, status, now);
    // A source idle for longer than the window may still have its entry: look now, when the
    // admission budget bounds how often this lookup happens.
    if status == Seen::New
        && let Some(reason) = env.with_source(key, |s| known(env, cfg, s, class, now))
    {
        return reason;
    }
    let global_ok = take_budget(env, Budget::Global, now, &cfg.global);
    let state = if global_ok {
        SourceState::first(class, now, &cfg.limit(class))
    } else {
        SourceState::first_dropped()
    };
    match env.insert_source(key, &state) {
        Insert::Created => global_reason(global_ok),
        // The first packets of a source on two CPUs at once: the other CPU created the entry
        // since this one looked. Charge it as a known source's (the global token is taken),
        // so neither packet's count is lost to the other's insert.
        // (Evicted again since: as if the map had refused.)
        Insert::Exists => env
            .with_source(key, |s| charged(cfg, s, class, now, global_ok))
            .unwrap_or(without_entry(global_ok)),
        Insert::Refused => without_entry(global_ok),
    }
}

/// The verdict on a packet of a source the table could not track: passed unmetered, unless
/// the global budget refused it.
#[inline(always)]
const fn without_entry(global_ok: bool) -> Reason {
    if global_ok {
        Reason::PassedUnmetered
    } else {
        Reason::DroppedRateGlobal
    }
}

/// Meters a packet of a known source: its bucket of `class`, then the global budget.
#[inline(always)]
fn known<E: Env>(env: &E, cfg: &Config, state: &SourceState, class: Class, now: u64) -> Reason {
    if !state.charge(class, now, &cfg.limit(class)) {
        return source_drop(class);
    }
    let global_ok = take_budget(env, Budget::Global, now, &cfg.global);
    state.count(global_ok);
    global_reason(global_ok)
}

/// Charges a source's bucket of `class` for a packet that has its global token already (or
/// was refused one: `global_ok`), and counts it in the entry.
///
/// Out of line, as a BPF subprogram with its own stack: the path is rare (the first packets
/// of a source on two CPUs at once), and inlined, its spills took slots where the verdict's
/// path had spilled pointers, which the verifier refuses without `CAP_PERFMON`.
#[inline(never)]
fn charged(cfg: &Config, state: &SourceState, class: Class, now: u64, global_ok: bool) -> Reason {
    if !state.charge(class, now, &cfg.limit(class)) {
        return source_drop(class);
    }
    state.count(global_ok);
    global_reason(global_ok)
}

/// The drop by a source's own bucket of `class`.
#[inline(always)]
const fn source_drop(class: Class) -> Reason {
    match class {
        Class::Echo => Reason::DroppedRateSource,
        Class::Reply => Reason::DroppedRateReply,
    }
}

/// The verdict on a packet the global budget passed or refused.
#[inline(always)]
const fn global_reason(global_ok: bool) -> Reason {
    if global_ok {
        Reason::Passed
    } else {
        Reason::DroppedRateGlobal
    }
}

/// Takes a token of `budget` (limited by `limit`) for one packet at `now`: see
/// [`bucket::take_shared`], which takes a few at a time and keeps the rest for this CPU's next
/// packets. The clock is read before, not inside: a helper call while the per-CPU pointer is
/// live makes LLVM spill it, and the slot's later reuse is refused without `CAP_PERFMON`.
#[inline(always)]
fn take_budget<E: Env>(env: &E, budget: Budget, now: u64, limit: &Limit) -> bool {
    env.with_budget(budget, |bucket, held| {
        bucket::take_shared(&bucket.tat_ns, held, now, limit, env.cpus())
    })
    .unwrap_or(true)
}
