//! Why a driver refused native XDP, in words an operator can act on.
//!
//! `bpf_link_create` returns only an errno, and the driver's errno is often misleading on its
//! own: veth answers an MTU it cannot take with `ERANGE` ("Numerical result out of range") and
//! too few receive queues with `ENOSPC` ("No space left on device"). The driver's message
//! (its netlink extended ack) names the real cause, so the loader asks for it
//! ([`super::netlink::native_refusal`]) and reports it with the MTU and a fix.

use std::fmt;

/// What the kernel and the driver said when native XDP was refused on an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NativeRefusal {
    /// The errno of the refused attach.
    pub errno: Option<i32>,
    /// The driver's (or the kernel's) own message, when it gives one.
    pub driver_says: Option<String>,
    /// The interface's MTU when it was refused.
    pub mtu: Option<u32>,
}

/// The cause a refusal points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The driver has no native XDP at all (`EOPNOTSUPP`).
    NoDriverSupport,
    /// The driver takes no XDP program at this MTU: it names the MTU, or answers `ERANGE`, as
    /// drivers without multi-buffer support do past about a page.
    Mtu,
    /// Anything else: the driver's message says what.
    Other,
}

impl NativeRefusal {
    /// The cause, from the driver's message or else the errno.
    #[must_use]
    pub fn cause(&self) -> Cause {
        let says_mtu = self
            .driver_says
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("mtu"));
        match self.errno {
            Some(libc::EOPNOTSUPP) => Cause::NoDriverSupport,
            _ if says_mtu => Cause::Mtu,
            Some(libc::ERANGE) => Cause::Mtu,
            _ => Cause::Other,
        }
    }

    /// What to do about it on `iface`.
    #[must_use]
    pub fn fix(&self, iface: &str) -> String {
        let fallback = "use --mode generic (`mode = \"generic\"` in a config file), or auto, which falls back to it";
        match self.cause() {
            Cause::Mtu => format!(
                "icmp-guard takes multi-buffer (jumbo) frames, but this driver does not at this MTU: lower it (`ip link set {iface} mtu 1500`; on a veth, the peer's MTU counts), or {fallback}"
            ),
            Cause::NoDriverSupport | Cause::Other => fallback.to_owned(),
        }
    }
}

impl fmt::Display for NativeRefusal {
    /// The cause in a few words, with the driver's own: e.g. `the driver refuses XDP at MTU
    /// 9000 ("veth: Peer MTU is too large to set XDP")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cause(), self.mtu) {
            (Cause::NoDriverSupport, _) => f.write_str("its driver has no native XDP")?,
            (Cause::Mtu, Some(mtu)) => write!(f, "the driver refuses XDP at MTU {mtu}")?,
            (Cause::Mtu, None) => f.write_str("the driver refuses XDP at this MTU")?,
            (Cause::Other, _) => f.write_str("the driver refused it")?,
        }
        match &self.driver_says {
            Some(message) => write!(f, " ({message:?})"),
            None => f.write_str(" (it gave no reason beyond the error below)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusals seen on veth and bridges, and a driver that gives no message.
    #[test]
    fn each_refusal_names_its_cause_and_fix() {
        let cases = [
            (
                libc::ERANGE,
                Some("veth: Peer MTU is too large to set XDP"),
                Cause::Mtu,
                "the driver refuses XDP at MTU 9000 (\"veth: Peer MTU is too large to set XDP\")",
                "lower it (`ip link set eth0 mtu 1500`",
            ),
            (
                libc::ERANGE,
                None,
                Cause::Mtu,
                "the driver refuses XDP at MTU 9000 (it gave no reason beyond the error below)",
                "lower it",
            ),
            (
                libc::EINVAL,
                Some("MTU too large for XDP"),
                Cause::Mtu,
                "the driver refuses XDP at MTU 9000 (\"MTU too large for XDP\")",
                "lower it",
            ),
            (
                libc::EOPNOTSUPP,
                Some("Underlying driver does not support XDP in native mode"),
                Cause::NoDriverSupport,
                "its driver has no native XDP (\"Underlying driver does not support XDP in native mode\")",
                "use --mode generic (`mode = \"generic\"` in a config file), or auto, which falls back to it",
            ),
            (
                libc::ENOSPC,
                Some("veth: XDP expects number of rx queues not less than peer tx queues"),
                Cause::Other,
                "the driver refused it (\"veth: XDP expects number of rx queues not less than peer tx queues\")",
                "use --mode generic (`mode = \"generic\"` in a config file), or auto, which falls back to it",
            ),
        ];
        for (errno, says, cause, text, fix) in cases {
            let refusal = NativeRefusal {
                errno: Some(errno),
                driver_says: says.map(str::to_owned),
                mtu: Some(9000),
            };
            assert_eq!(refusal.cause(), cause, "{says:?}");
            assert_eq!(refusal.to_string(), text);
            assert!(refusal.fix("eth0").contains(fix), "{}", refusal.fix("eth0"));
        }
    }
}
