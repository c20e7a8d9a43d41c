//! Interface names, validated once by the kernel's own rules before they reach a path.
//!
//! A name becomes a folder under `<bpffs>/icmp-guard/`, so an unchecked `..` or `a/b` would
//! let a command reach (and `clean` delete) files outside the pin folder. The rules are
//! `dev_valid_name()` in net/core/dev.c: 1 to 15 bytes (`IFNAMSIZ - 1`), not `.` or `..`, and
//! no `/`, `:` or white space (`isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`). NUL cannot
//! appear in a name either.

use std::{ffi::CString, fmt, ops::Deref, str::FromStr};

use crate::Error;

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const MAX_LEN: usize = 15;

/// An interface name the kernel would accept, safe to join to a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceName(String);

/// Why a string is not an interface name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid interface name: {why} (see `ip link show`)")]
pub struct InvalidName {
    /// The rejected name (printed escaped, so it cannot split a log line).
    pub name: String,
    pub why: &'static str,
}

impl IfaceName {
    /// The name as the kernel knows it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfaceName {
    type Err = InvalidName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let why = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_LEN {
            Some("longer than 15 bytes")
        } else if name == "." || name == ".." {
            Some("`.` and `..` are not names")
        } else if name.contains('/') {
            Some("it contains `/`")
        } else if name.contains(':') {
            Some("it contains `:`")
        } else if name
            .bytes()
            .any(|b| b == 0 || b == b' ' || (b'\t'..=b'\r').contains(&b))
        {
            Some("it contains white space or NUL")
        } else {
            None
        };
        match why {
            Some(why) => Err(InvalidName {
                name: name.to_owned(),
                why,
            }),
            None => Ok(Self(name.to_owned())),
        }
    }
}

impl TryFrom<String> for IfaceName {
    type Error = InvalidName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl Deref for IfaceName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for IfaceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// For people (logs, tables, messages): control characters escaped as errors show them (see
/// [`crate::error::shown`]), so a name cannot split a log line or steer a terminal. The
/// kernel, paths and JSON take [`IfaceName::as_str`].
impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::error::shown(&self.0))
    }
}

impl serde::Serialize for IfaceName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// The index of `iface` in this network namespace.
pub fn ifindex(iface: &str) -> Result<u32, Error> {
    let unknown = || Error::UnknownInterface {
        iface: iface.to_owned(),
    };
    let c_iface = CString::new(iface).map_err(|_| unknown())?;
    // SAFETY: c_iface is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c_iface.as_ptr()) } {
        0 => Err(unknown()),
        index => Ok(index),
    }
}

/// Whether an interface of this network namespace has the index `index`.
#[must_use]
pub fn index_exists(index: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has room for IF_NAMESIZE bytes, as if_indextoname requires.
    !unsafe { libc::if_indextoname(index, name.as_mut_ptr()) }.is_null()
}

/// Whether `iface` is a loopback device (`IFF_LOOPBACK`): its 127/8 and ::1 traffic is
/// martian everywhere else, and nothing on it comes from the network.
#[must_use]
pub fn is_loopback(iface: &str) -> bool {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name is copied in below, NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    // The request's type is the libc's (`Ioctl`: unsigned long in glibc, int in musl).
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of a valid ifreq.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &raw mut req,
        )
    };
    // SAFETY: on success the kernel filled ifru_flags.
    rc == 0 && (i32::from(unsafe { req.ifr_ifru.ifru_flags }) & libc::IFF_LOOPBACK) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernels_rules() {
        let cases: &[(&str, bool)] = &[
            ("eth0", true),
            ("a", true),
            ("veth-ig-123456", true),
            ("exactly15bytes_", true),
            ("sixteen_bytes_xx", false),
            ("", false),
            (".", false),
            ("..", false),
            ("..a", true),
            ("../../etc", false),
            ("a/b", false),
            ("/", false),
            ("eth0:1", false),
            ("eth 0", false),
            ("eth0\n", false),
            ("eth\t0", false),
            ("eth\u{b}0", false),
            ("eth\0", false),
        ];
        for &(name, ok) in cases {
            assert_eq!(name.parse::<IfaceName>().is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn a_name_is_shown_escaped_and_given_to_the_kernel_as_it_is() {
        for (name, shown) in [
            ("eth0", "eth0"),
            ("a\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("x\\y", "x\\\\y"),
            ("\u{7f}del", "\\u{7f}del"),
        ] {
            let parsed: IfaceName = name.parse().unwrap();
            assert_eq!(parsed.to_string(), shown, "{name:?}");
            assert_eq!(parsed.as_str(), name);
        }
    }

    #[test]
    fn a_rejected_name_is_printed_escaped() {
        let err = "a\nb/c".parse::<IfaceName>().unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains(r#""a\nb/c""#), "{err}");
    }
}
