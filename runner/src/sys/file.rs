//! Files the kernel generates (cgroupfs counters, procfs tables), read again and again through
//! one open descriptor: a read from offset 0 makes the kernel generate the text anew, and costs
//! far less than opening the file again (~8 µs against ~40 µs for a cgroupfs file here).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The whole current text of `file`, read with pread from offset 0 on.
pub fn read_from_start(file: &File) -> io::Result<String> {
    let mut text = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let read = file.read_at(&mut chunk, text.len() as u64)?;
        if read == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(text).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}
