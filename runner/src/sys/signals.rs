//! Signals the parent handles synchronously while a run is going on.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals that make us stop the run early (runguard reports them as `signal:`).
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// While alive, the stop signals are blocked and readable from `fd`.
pub struct StopSignals {
    pub fd: SignalFd,
    previous_mask: SigSet,
}

impl StopSignals {
    pub fn block() -> nix::Result<StopSignals> {
        let mask: SigSet = STOP_SIGNALS.into_iter().collect();
        let mut previous_mask = SigSet::empty();
        nix::sys::signal::pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&mask),
            Some(&mut previous_mask),
        )?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(StopSignals { fd, previous_mask })
    }

    /// The stop signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Some(info.ssi_signo as i32),
            _ => None,
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&self.previous_mask),
            None,
        );
    }
}
