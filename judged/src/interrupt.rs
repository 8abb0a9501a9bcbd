//! Stop signals (SIGTERM, SIGINT, SIGHUP) for judged's foreground commands (`judged run`,
//! `diagnose`, `watch`): whatever they started is stopped and whatever they made is removed
//! before they exit, as runguard does for its runs.
//!
//! Theory of operation. [`install`], called before the command starts any thread, blocks the
//! stop signals (threads inherit the mask; children do not: std resets it before exec) and
//! hands them to a listener thread. On a signal it notes it, sends it on to every runguard
//! process started through [`output`] (runguard then kills its run, removes the run's
//! cgroups and reports), and makes [`wake_fd`] readable. Nothing is cut short: the command
//! sees its runguard processes end, checks [`check`] at its next step and returns
//! [`Interrupted`], so its guards (run lanes, scratch directories, BPF programs) are dropped
//! on the way out and `main` exits with 128 + the signal. A command started after the signal
//! is not started at all.
//!
//! A child's pid is signalled only while it is registered, and [`output`] unregisters it
//! after waiting for its exit without reaping it (`WNOWAIT`): until it is reaped the pid
//! cannot be reused, so the listener never signals a stranger.

use std::io::Read as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use runner::sys::signals::StopSignals;

/// A stop signal came: the command stopped what it had started and removed what it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped by {signal}: what it had started was stopped and removed")]
pub struct Interrupted {
    pub signal: Signal,
}

impl Interrupted {
    /// The exit status of a process ended by a signal it handled: 128 + the signal.
    pub fn exit_status(self) -> u8 {
        u8::try_from(128 + self.signal as i32).unwrap_or(u8::MAX)
    }
}

/// Why [`output`] has no output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error("cannot start it: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("cannot read its output or wait for it: {0}")]
    Wait(#[source] std::io::Error),
}

struct State {
    received: Option<Signal>,
    children: Vec<Pid>,
}

static STATE: Mutex<State> = Mutex::new(State {
    received: None,
    children: Vec::new(),
});

/// The pipe made readable by the first stop signal (never read, so it stays readable).
static WAKE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

fn state() -> MutexGuard<'static, State> {
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Take the stop signals over for the rest of the process's life. Call it before any thread
/// is started: a thread started earlier keeps them unblocked and would die of them.
pub fn install() -> anyhow::Result<()> {
    use anyhow::Context as _;
    let signals = StopSignals::block().context("cannot block SIGTERM, SIGINT and SIGHUP")?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("cannot make the stop signals' pipe")?;
    let wake = WAKE.get_or_init(|| (read, write));
    std::thread::Builder::new()
        .name("judged-signals".into())
        .spawn(move || listen(&signals, wake.1.as_fd()))
        .context("cannot start the stop signals' thread")?;
    Ok(())
}

/// The listener thread: each stop signal is noted and sent on to the registered children.
fn listen(signals: &StopSignals, wake: BorrowedFd<'_>) {
    loop {
        let mut fds = [nix::poll::PollFd::new(
            signals.fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
        let Some(signal) = signals.received().and_then(|s| Signal::try_from(s).ok()) else {
            continue;
        };
        let mut state = state();
        if state.received.is_none() {
            state.received = Some(signal);
            let _ = nix::unistd::write(wake, &[1]);
        }
        for &child in &state.children {
            let _ = kill(child, signal);
        }
    }
}

/// The first stop signal received, if any.
pub fn received() -> Option<Signal> {
    state().received
}

/// `Err` once a stop signal came.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted { signal }),
        None => Ok(()),
    }
}

/// A descriptor that becomes readable when a stop signal comes (to poll beside others);
/// `None` unless [`install`]ed.
pub fn wake_fd() -> Option<BorrowedFd<'static>> {
    WAKE.get().map(|(read, _)| read.as_fd())
}

/// Like [`Command::output`], with the child sent on any stop signal while it runs; refused
/// once a signal came. The streams are as `command` sets them (unset ones are inherited, as
/// with [`Command::spawn`]); the piped ones are read. Without [`install`] (the daemon has
/// its own shutdown) no signal is sent on.
pub fn output(command: &mut Command) -> Result<Output, OutputError> {
    // Spawned under the lock only when installed: the daemon's workers spawn at once.
    let installed = WAKE.get().is_some();
    let mut child = if installed {
        let mut state = state();
        if let Some(signal) = state.received {
            return Err(Interrupted { signal }.into());
        }
        let child = command.spawn().map_err(OutputError::Spawn)?;
        state
            .children
            .push(Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)));
        child
    } else {
        command.spawn().map_err(OutputError::Spawn)?
    };
    let waited = wait_unreaped(&mut child);
    if installed {
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        state().children.retain(|&c| c != pid);
    }
    let (stdout, stderr) = waited.map_err(OutputError::Wait)?;
    let status = child.wait().map_err(OutputError::Wait)?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Read the child's piped streams to their end (stdout on a thread of its own if both are
/// piped), then wait for its exit without reaping it.
fn wait_unreaped(child: &mut Child) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let stdout_pipe = child.stdout.take();
    let stderr_pipe = child.stderr.take();
    let mut stderr = Vec::new();
    let stdout = std::thread::scope(|scope| {
        let reader = stdout_pipe.map(|mut pipe| {
            scope.spawn(move || {
                let mut stdout = Vec::new();
                pipe.read_to_end(&mut stdout).map(|_| stdout)
            })
        });
        if let Some(mut pipe) = stderr_pipe {
            pipe.read_to_end(&mut stderr)?;
        }
        match reader {
            Some(reader) => reader.join().unwrap_or_else(|_| Ok(Vec::new())),
            None => Ok(Vec::new()),
        }
    })?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
            Ok(_) => return Ok((stdout, stderr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_reads_both_streams_and_the_status() {
        let output = output(
            Command::new("/bin/sh")
                .args(["-c", "echo out; echo err >&2; exit 3"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
        .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn the_exit_status_is_128_plus_the_signal() {
        let stopped = Interrupted {
            signal: Signal::SIGTERM,
        };
        assert_eq!(stopped.exit_status(), 143);
        assert_eq!(
            stopped.to_string(),
            "stopped by SIGTERM: what it had started was stopped and removed"
        );
    }
}
