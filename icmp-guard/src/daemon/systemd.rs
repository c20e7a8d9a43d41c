//! Telling systemd what the service is doing (`Type=notify`, sd_notify(3)): READY once every
//! interface of the file has been dealt with, RELOADING and READY around a reload (systemd
//! shows the unit as reloading meanwhile; `systemctl reload` itself returns once the unit's
//! `ExecReload=` validation and SIGHUP are done), STOPPING on the way out, and a STATUS line
//! that says whether the file was applied. Without `NOTIFY_SOCKET` (not under systemd) each
//! is a no-op.

use sd_notify::NotifyState;

fn notify(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("could not notify systemd: {e}");
    }
}

/// Started, or done reloading; `status` says how it went.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The state changed between reloads (an interface was attached again, or went away).
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// A reload starts (with the monotonic time, as `Type=notify-reload` wants it).
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

/// The service stops.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}
