//! Whether a guard is really there: its pins may outlive the attachment. The kernel drops an
//! XDP link's interface when the interface is deleted or someone detaches the link
//! (`bpftool link detach`), and the pinned link lives on, holding a program that sees no
//! packet. [`Health`] is what every view reports and what `attach` and the service act on.

use std::{fmt, path::Path};

use serde::Serialize;

use super::{Guard, Pins};
use crate::{
    Error,
    kernel::{
        iface::{ifindex, index_exists},
        link, netlink,
    },
};

/// The state of a guard's attachment, as the kernel tells it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Health {
    /// The pinned link is attached to the interface of this name in this namespace.
    Attached,
    /// The interface was deleted, and the kernel detached the link with it.
    InterfaceGone,
    /// The interface was deleted and created again (it has a new index), so the pinned link
    /// is detached.
    #[serde(rename = "interface_recreated")]
    Recreated { ifindex: u32 },
    /// The interface has the index the guard attached to, but the link was detached: from
    /// outside icmp-guard (e.g. `bpftool link detach`), or by deleting the interface and
    /// creating it again with the same index, which the kernel's state does not tell apart.
    LinkDetached,
    /// The link is attached to another interface index: the interface was renamed. The guard
    /// follows the interface, not the name, so whatever carries the name now is unguarded.
    #[serde(rename = "interface_renamed")]
    Renamed { ifindex: u32 },
    /// The link is attached to an interface no longer in this network namespace: it was moved
    /// to another one (`ip link set IFACE netns NS`), and the guard went with it. It enforces
    /// there, under pins that stay here.
    #[serde(rename = "interface_moved")]
    Moved { ifindex: u32 },
}

/// Whether the interface the link pinned at `path` names by index is in this network
/// namespace: the interface of that index here runs the link's program. Indexes are per
/// namespace, and one moved to another may be given an index some interface here has.
/// `link` is the link as read before; read again when the programs differ, as
/// `attach --replace` may have swapped the link's program between the two reads.
#[must_use]
pub fn runs_here(path: &Path, link: link::LinkState) -> bool {
    let here = |link: link::LinkState| match netlink::xdp_state(link.ifindex) {
        // 0: programs in several modes at once, which rtnetlink names apart only by mode:
        // the index is the word.
        Ok(Some(state)) if state.program_id == 0 => index_exists(link.ifindex),
        Ok(Some(state)) => state.program_id == link.program_id,
        Ok(None) => false,
        Err(_) => index_exists(link.ifindex),
    };
    link.attached()
        && (here(link)
            || link::pinned_state(path)
                .is_ok_and(|again| again.program_id != link.program_id && here(again)))
}

/// Whether the link pinned for `pins` is attached to an interface, from the link alone: for
/// callers that must not open the maps first (they may be of another version's layout).
pub fn link_attached(pins: &Pins) -> Result<bool, Error> {
    let path = pins.link();
    link::pinned_state(&path)
        .map(link::LinkState::attached)
        .map_err(Error::io("reading the pinned link", &path))
}

impl Health {
    /// Opens the guard pinned at `pins` and reads its health (see [`Health::of`]).
    pub fn of_pins(pins: Pins) -> Result<Self, Error> {
        Self::of(&Guard::open(pins)?)
    }

    /// Reads the health of `guard`, whose config records the interface index it attached to.
    pub fn of(guard: &Guard) -> Result<Self, Error> {
        let path = guard.pins.link();
        let link =
            link::pinned_state(&path).map_err(Error::io("reading the pinned link", &path))?;
        let now = ifindex(&guard.pins.iface).ok();
        let recorded = guard.maps.config()?.ifindex;
        let linked_here = runs_here(&path, link);
        Ok(Self::judge(link, now, recorded, linked_here))
    }

    /// The decision, from the link's state, the index the name has now (if any), the index
    /// the guard attached to, and whether the link's interface is in this namespace.
    #[must_use]
    pub fn judge(
        link: link::LinkState,
        now: Option<u32>,
        recorded: u32,
        linked_here: bool,
    ) -> Self {
        match now {
            _ if link.attached() && linked_here && now == Some(link.ifindex) => Self::Attached,
            _ if link.attached() && linked_here => Self::Renamed {
                ifindex: link.ifindex,
            },
            _ if link.attached() => Self::Moved {
                ifindex: link.ifindex,
            },
            None => Self::InterfaceGone,
            Some(index) if index == recorded => Self::LinkDetached,
            Some(index) => Self::Recreated { ifindex: index },
        }
    }

    /// Refuses a guard that follows its interface under another name or into another
    /// namespace (see [`Health::Renamed`], [`Health::Moved`]): commands that would call this
    /// name guarded say where it is.
    pub fn refuse_renamed(pins: &Pins) -> Result<(), Error> {
        match Self::of_pins(pins.clone()) {
            Ok(health @ (Self::Renamed { .. } | Self::Moved { .. })) => {
                Err(Error::GuardElsewhere {
                    iface: pins.iface.as_str().to_owned(),
                    health,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the guard enforces on the interface of its name.
    #[must_use]
    pub fn attached(self) -> bool {
        matches!(self, Self::Attached)
    }

    /// Whether `attach` (or the service) should attach the pinned state again.
    #[must_use]
    pub fn needs_reattach(self) -> bool {
        matches!(self, Self::Recreated { .. } | Self::LinkDetached)
    }

    /// A short label for metrics: `attached`, `interface_gone`, ...
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::InterfaceGone => "interface_gone",
            Self::Recreated { .. } => "interface_recreated",
            Self::LinkDetached => "link_detached",
            Self::Renamed { .. } => "interface_renamed",
            Self::Moved { .. } => "interface_moved",
        }
    }
}

impl fmt::Display for Health {
    /// What happened, for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Attached => write!(f, "attached"),
            Self::InterfaceGone => write!(
                f,
                "NOT ATTACHED: the interface is gone and the kernel detached the guard; it is attached again (with its state) by `icmp-guard attach` or the service when the interface is back"
            ),
            Self::Recreated { ifindex } => write!(
                f,
                "NOT ATTACHED: the interface was recreated (now ifindex {ifindex}); `icmp-guard attach` attaches the guard again with its pinned state (the service does it by itself)"
            ),
            Self::LinkDetached => write!(
                f,
                "NOT ATTACHED: the guard's link was detached from outside icmp-guard (e.g. `bpftool link detach`), or the interface was deleted and created again with the same index; `icmp-guard attach` attaches it again with its pinned state (the service does it by itself)"
            ),
            Self::Renamed { ifindex } => write!(
                f,
                "NOT ATTACHED to this name: the guard follows ifindex {ifindex}, which has another name now (the interface was renamed); `icmp-guard detach` then `icmp-guard attach` guards what has the name now"
            ),
            Self::Moved { ifindex } => write!(
                f,
                "NOT ATTACHED here: the interface was moved to another network namespace (ifindex {ifindex} there) and its guard went with it: it enforces there, under pins that stay here; move the interface back, or `icmp-guard detach` here to remove that guard"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::link::LinkState;

    #[test]
    fn the_kernel_s_word_decides() {
        let link = |ifindex| LinkState {
            program_id: 9,
            ifindex,
        };
        // (link's ifindex, the name's index now, the recorded index, whether an interface
        // here has the link's index, health)
        let cases = [
            (7, Some(7), 7, true, Health::Attached),
            (7, Some(8), 7, true, Health::Renamed { ifindex: 7 }),
            (7, None, 7, true, Health::Renamed { ifindex: 7 }),
            (7, None, 7, false, Health::Moved { ifindex: 7 }),
            (7, Some(8), 7, false, Health::Moved { ifindex: 7 }),
            // Moved, and given there the index the name has here.
            (7, Some(7), 7, false, Health::Moved { ifindex: 7 }),
            (0, None, 7, false, Health::InterfaceGone),
            (0, Some(7), 7, false, Health::LinkDetached),
            (0, Some(12), 7, false, Health::Recreated { ifindex: 12 }),
        ];
        for (linked, now, recorded, here, want) in cases {
            assert_eq!(
                Health::judge(link(linked), now, recorded, here),
                want,
                "{linked} {now:?} {recorded} {here}"
            );
        }
        assert!(Health::Attached.attached() && !Health::Attached.needs_reattach());
        assert!(!Health::InterfaceGone.attached() && !Health::InterfaceGone.needs_reattach());
        assert!(Health::LinkDetached.needs_reattach());
        for elsewhere in [Health::Renamed { ifindex: 7 }, Health::Moved { ifindex: 7 }] {
            assert!(!elsewhere.attached() && !elsewhere.needs_reattach());
        }
    }

    #[test]
    fn json_says_what_metrics_say() {
        for health in [
            Health::Attached,
            Health::InterfaceGone,
            Health::Recreated { ifindex: 3 },
            Health::LinkDetached,
            Health::Renamed { ifindex: 3 },
            Health::Moved { ifindex: 3 },
        ] {
            let json = serde_json::to_value(health).unwrap();
            assert_eq!(json["state"], health.label(), "{health:?}");
        }
    }
}
