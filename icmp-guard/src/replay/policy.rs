//! The policy a replay judges by: an interface's policy from a config file, under the command
//! line's limits and lists, as `attach` would apply them.

use std::path::Path;

use icmp_guard_common::Config;

use crate::{
    Error,
    config_file::ConfigFile,
    error::shown,
    kernel::IfaceName,
    policy::{Cidr, Overrides},
};

/// The config and lists a replay judges by.
pub struct Policy {
    pub config: Config,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Policy {
    /// `file`'s interface `iface` (both or neither) under `limits`, with `allow` and `deny`
    /// added to its lists; without a file, the defaults under `limits`.
    pub fn resolve(
        file: Option<&Path>,
        iface: Option<&IfaceName>,
        limits: &Overrides,
        allow: &[Cidr],
        deny: &[Cidr],
        tick_ns: u64,
    ) -> Result<Self, Error> {
        let (mut limits, mut lists) = (limits.clone(), (Vec::new(), Vec::new()));
        if let Some(path) = file {
            let loaded = ConfigFile::load(path)?;
            let wanted = iface.ok_or_else(|| {
                Error::Usage(
                    "--config needs --iface NAME: the interface whose policy to replay".into(),
                )
            })?;
            let found = loaded
                .interfaces
                .iter()
                .find(|i| &i.name == wanted)
                .ok_or_else(|| {
                    let names: Vec<String> = loaded
                        .interfaces
                        .iter()
                        .map(|i| i.name.as_str().to_owned())
                        .collect();
                    Error::ConfigFile {
                        path: path.to_owned(),
                        message: format!(
                            "has no interface {} (it has: {}); pass one of them to --iface",
                            shown(wanted.as_str()),
                            shown(names.join(", "))
                        ),
                    }
                })?;
            limits = limits.over(&found.limits);
            lists = (found.allow.clone(), found.deny.clone());
        }
        let (mut all_allowed, mut all_denied) = lists;
        all_allowed.extend_from_slice(allow);
        all_denied.extend_from_slice(deny);
        Ok(Self {
            config: limits.apply(&Config::with_defaults(), tick_ns)?,
            allow: all_allowed,
            deny: all_denied,
        })
    }
}
