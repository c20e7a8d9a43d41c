//! What to do with a parsed ICMP packet, before any per-source state is consulted.

use crate::{
    Config, Limit, Reason, SourceKey,
    config::MAX_DATAGRAM,
    parse::{self, Fragment, Frame, IcmpPacket},
};

/// What the verdict needs from its surroundings: the config map, and the per-source buckets
/// with their clock. The XDP program implements it over its maps; tests over a `HashMap`.
pub trait Env {
    /// The configuration; `None` only if the config map is somehow empty (then fail open).
    fn config(&self) -> Option<&Config>;

    /// Charges one packet to `key`'s bucket under `limit`; returns `Passed`,
    /// `DroppedRateSource`, or `PassedUnmetered` if no bucket could be kept.
    fn charge(&self, key: SourceKey, limit: &Limit) -> Reason;
}

/// The verdict for one frame: parse, decide, meter. The config is only consulted for ICMP, so
/// other traffic pays for the parse alone.
#[inline(always)]
pub fn judge<F: Frame + ?Sized, E: Env>(frame: &F, env: &E) -> Reason {
    let pkt = match parse::parse_frame(frame) {
        Ok(pkt) => pkt,
        Err(reason) => return reason,
    };
    let Some(cfg) = env.config() else {
        return Reason::PassedUnmetered;
    };
    match decide(&pkt, cfg) {
        Decision::Final(reason) => reason,
        Decision::MeterEcho => env.charge(SourceKey::v4(pkt.src), &cfg.echo),
    }
}

/// `ICMPv4` types the policy names (RFC 792).
pub mod icmp_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Final: count under this reason (its [`Reason::is_drop`] says pass or drop).
    Final(Reason),
    /// Charge the source's echo bucket, then pass or drop.
    MeterEcho,
}

/// Decides what a well-formed ICMP packet needs.
#[inline(always)]
#[must_use]
pub fn decide(pkt: &IcmpPacket, cfg: &Config) -> Decision {
    if !matches!(pkt.fragment, Fragment::None) {
        // Checked on every fragment, whatever its type: later fragments carry no type, and
        // the ping of death is built from them (Linux: "Oversized IP packet").
        if pkt.datagram_end > MAX_DATAGRAM || pkt.datagram_end > cfg.max_echo_size {
            return Decision::Final(Reason::DroppedOversize);
        }
        if matches!(pkt.fragment, Fragment::Later) {
            // Counted against the source like the echo it most likely belongs to, so a
            // fragment flood cannot bypass the quota.
            return Decision::MeterEcho;
        }
    }
    match pkt.icmp_type {
        icmp_type::ECHO_REQUEST | icmp_type::TIMESTAMP => {
            if pkt.ip_len > cfg.max_echo_size {
                Decision::Final(Reason::DroppedOversize)
            } else {
                Decision::MeterEcho
            }
        }
        // Errors (unreachable incl. fragmentation needed, time exceeded, parameter problem)
        // carry path-MTU discovery and traceroute: never limited. Replies and other types are
        // not limited by this version.
        _ => Decision::Final(Reason::PassedExempt),
    }
}
