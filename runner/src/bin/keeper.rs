//! `keeper`: the process inside a warm sandbox (see `runner::warm::keeper`). Speaks
//! newline-delimited JSON (`runner::warm::protocol`):
//!
//! * `keeper`: on its stdin and stdout, started by `runner::warm::Sandbox` (the usual way);
//! * `keeper --listen PATH`: on one connection to a Unix socket made at PATH, for a client that
//!   cannot be its parent. That client removes the sandbox's cgroup directories (`Ready`'s
//!   `cgroup_dirs`, and its `mqueue_dir` if the keeper was killed) once the keeper has exited,
//!   as `Sandbox` does.
//!
//! Exit status: 0 when the client closed the connection, 3 when the sandbox broke.

use std::io::BufReader;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::exit;

use anyhow::Context;
use runner::warm::keeper::{serve, BROKEN};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = match args.as_slice() {
        [] => serve_stdio(),
        [flag, path] if flag == "--listen" => serve_socket(Path::new(path)),
        _ => Err(anyhow::anyhow!("usage: keeper [--listen SOCKET_PATH]")),
    };
    match status {
        Ok(status) => exit(status),
        Err(e) => {
            eprintln!("keeper: {e:#}");
            exit(BROKEN)
        }
    }
}

fn serve_stdio() -> anyhow::Result<i32> {
    let (input, output) =
        runner::sys::keeper::take_protocol_stdio().context("cannot set up its protocol streams")?;
    Ok(serve(BufReader::new(input), output))
}

fn serve_socket(path: &Path) -> anyhow::Result<i32> {
    runner::sys::keeper::detach_stdio().context("cannot detach from its stdin and stdout")?;
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on `{}'", path.display()))?;
    let accepted = listener.accept();
    // One client only: nobody else may connect to a sandbox in use.
    let _ = std::fs::remove_file(path);
    let (stream, _) = accepted.context("cannot accept a connection")?;
    let input = stream.try_clone().context("cannot clone the connection")?;
    Ok(serve(BufReader::new(input), stream))
}
