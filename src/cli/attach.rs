//! The client side of the attach channel: our terminal or pipes joined to
//! a container's standard streams through its shim (the protocol is in
//! [`crate::runtime::shim::attach`]).
//!
//! The container's output is written to our stdout and stderr as it
//! arrives; our stdin, when forwarded, goes to the container until it ends
//! (then the container's stdin is closed, so `echo hi | stack run -T svc
//! cat` ends). With a terminal, ours is switched to raw mode, so every key
//! (Ctrl-C included) reaches the container's terminal, and its size
//! follows ours. Without one, Ctrl-C and the other terminating signals we
//! receive are forwarded to the container's process instead of ending us.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::runtime::container::{Exit, Runtime};
use crate::runtime::shim::attach::{self, frame, take_frame};
use crate::runtime::shim::exec::{RawMode, window_size};
use crate::runtime::shim::parse_exit_line;

/// The signals that would end us, which the attached process (or the exec
/// helper) should get instead: `Ctrl-C`, `Ctrl-\`, `kill` and a closed terminal.
pub const TERMINATING: [nix::sys::signal::Signal; 4] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
];

/// The last terminating signal we received, to forward.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    PENDING.store(sig, Ordering::Relaxed);
}

fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in TERMINATING {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(s, &action) };
    }
}

/// Relays between us and container `id` until it exits; returns its exit
/// (`None` when the shim went away without one: read the runtime's state).
pub fn relay(
    mut sock: UnixStream,
    runtime: &Runtime,
    id: &str,
    forward_stdin: bool,
    tty: bool,
) -> std::io::Result<Option<Exit>> {
    if !tty {
        catch_signals();
    }
    let stdin = std::io::stdin();
    let _raw = (tty && stdin.is_terminal()).then(RawMode::enter);
    let mut size = None;
    let mut stdin_open = forward_stdin;
    let mut buf = vec![0u8; 32 * 1024];
    let mut frames = Vec::new();
    loop {
        if tty {
            let now = window_size(0).or_else(|| window_size(1));
            if let Some(ws) = now.filter(|ws| Some((ws.ws_row, ws.ws_col)) != size) {
                size = Some((ws.ws_row, ws.ws_col));
                sock.write_all(&frame(
                    attach::RESIZE,
                    &attach::resize(ws.ws_row, ws.ws_col),
                ))?;
            }
        }
        let sig = PENDING.swap(0, Ordering::Relaxed);
        if sig != 0 {
            let _ = runtime.kill(id, sig);
        }
        let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            let n = match sock.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(None);
            }
            frames.extend_from_slice(&buf[..n]);
            while let Some((kind, payload)) = take_frame(&mut frames) {
                match kind {
                    attach::STDOUT => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&payload)?;
                        out.flush()?;
                    }
                    attach::STDERR => {
                        let mut err = std::io::stderr().lock();
                        err.write_all(&payload)?;
                        err.flush()?;
                    }
                    attach::EXIT => {
                        return Ok(parse_exit_line(&String::from_utf8_lossy(&payload)));
                    }
                    _ => {}
                }
            }
        }
        if ready.get(1) == Some(&true) {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    sock.write_all(&frame(attach::CLOSE_STDIN, &[]))?;
                }
                Ok(n) => sock.write_all(&frame(attach::STDIN, &buf[..n]))?,
            }
        }
    }
}
