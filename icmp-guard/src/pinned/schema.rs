//! Whether pinned maps can be reused by this version: each pinned map must have the type,
//! key and value sizes, capacity and flags that the embedded object declares (except the
//! per-source table's capacity, which `--max-sources` chose). Reusing a map of another layout
//! would corrupt it silently, so a mismatch stops the command with the fix. A map not pinned
//! at all is no mismatch: the loader creates and pins it (an attach that was interrupted
//! before pinning every map, or a version that had fewer maps, e.g. one list bank).

use aya::maps::MapInfo;
use icmp_guard_common::maps;

use super::{Pins, layout};
use crate::{Error, kernel::object};

/// Checks every pinned map of `pins` against the embedded object; maps not pinned are left
/// for the loader to create.
pub fn check(pins: &Pins) -> Result<(), Error> {
    pins.check()?;
    let obj =
        aya_obj::Object::parse(object::ICMP_GUARD).map_err(|e| Error::Object(e.to_string()))?;
    for name in layout::MAPS {
        let wanted = obj
            .maps
            .get(name)
            .ok_or_else(|| Error::Object(format!("map {name} missing from it")))?;
        let path = pins.map(name);
        if !path.exists() {
            continue;
        }
        let Ok(info) = MapInfo::from_pin(&path) else {
            return Err(Error::Stale {
                iface: pins.iface.as_str().to_owned(),
                why: format!("{} is not a map", crate::error::shown(&path)),
            });
        };
        let pinned_type = info.map_type().map_or(u32::MAX, |t| t as u32);
        let chosen_capacity = name == maps::SOURCES;
        for (field, pinned, wanted) in [
            ("type", pinned_type, wanted.map_type()),
            ("key size", info.key_size(), wanted.key_size()),
            ("value size", info.value_size(), wanted.value_size()),
            ("capacity", info.max_entries(), wanted.max_entries()),
            ("flags", info.map_flags(), wanted.map_flags()),
        ] {
            if pinned != wanted && !(chosen_capacity && field == "capacity") {
                return Err(Error::Incompatible {
                    iface: pins.iface.as_str().to_owned(),
                    map: name,
                    field,
                    pinned,
                    wanted,
                });
            }
        }
    }
    Ok(())
}
