//! `keeper`: the process inside a warm sandbox (see `runner::warm::keeper`). Started by
//! `runner::warm::Sandbox`; speaks newline-delimited JSON on its stdin and stdout.

use std::io::BufReader;
use std::process::exit;

fn main() {
    let (input, output) = match runner::sys::keeper::take_protocol_stdio() {
        Ok(streams) => streams,
        Err(e) => {
            eprintln!("keeper: cannot set up its protocol streams: {e}");
            exit(runner::warm::keeper::BROKEN);
        }
    };
    exit(runner::warm::keeper::serve(BufReader::new(input), output))
}
