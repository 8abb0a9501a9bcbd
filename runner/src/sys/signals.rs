//! Signals the parent handles synchronously while a run is going on, and the ignored ones a
//! child must reset before exec.

use std::sync::OnceLock;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals this process ignores (SIG_IGN), read once (nothing of ours changes them later):
/// exec resets caught signals to their default by itself but keeps ignored ones ignored, so a
/// child needs only these reset. The Rust runtime ignores SIGPIPE; a shell may start us with
/// SIGINT and SIGQUIT ignored.
pub fn ignored() -> &'static [Signal] {
    static IGNORED: OnceLock<Vec<Signal>> = OnceLock::new();
    IGNORED.get_or_init(|| {
        Signal::iterator()
            .filter(|signal| !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP))
            .filter(|&signal| is_ignored(signal))
            .collect()
    })
}

fn is_ignored(signal: Signal) -> bool {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: with a null new action, sigaction only writes the current one to `current`.
    let read = unsafe {
        libc::sigaction(
            signal as libc::c_int,
            std::ptr::null(),
            current.as_mut_ptr(),
        )
    };
    // SAFETY: sigaction filled `current` when it returned 0.
    read == 0 && unsafe { current.assume_init() }.sa_sigaction == libc::SIG_IGN
}

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
