//! The child's output streams: copied to their destination with an exact byte limit, while
//! everything beyond the limit is read and discarded so the child never blocks on a full pipe.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::report::StreamStats;

/// Open a file we write into, for writing, as it is, with its length. Callers (DOMjudge runs
/// us through sudo) usually create it beforehand: it keeps its owner and mode; a missing one is
/// created private to us (mode 0600). Never truncated here: on ext4 a truncation costs a
/// journal transaction even when the file was empty, and one to size 0 makes ext4 flush what
/// is written next when the file is closed (`auto_da_alloc`), a disk write per run.
pub fn open_as_it_is(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let length = file.metadata()?.len();
    Ok((file, length))
}

/// Open a file the run's output goes to, empty: truncated only if it has content.
pub fn open_output_file(path: &Path) -> io::Result<File> {
    let (file, length) = open_as_it_is(path)?;
    if length > 0 {
        file.set_len(0)?;
    }
    Ok(file)
}

/// One output stream of a run being copied to its destination.
pub struct StreamPump<W> {
    destination: W,
    /// Bytes still allowed through; `None`: unlimited.
    allowance: Option<u64>,
    stats: StreamStats,
}

impl<W: Write> StreamPump<W> {
    pub fn new(destination: W, limit: Option<u64>) -> Self {
        StreamPump {
            destination,
            allowance: limit,
            stats: StreamStats::default(),
        }
    }

    /// Take a chunk the child wrote: pass on what the limit allows, count all of it.
    pub fn take(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.stats.bytes += chunk.len() as u64;
        let passed = match &mut self.allowance {
            None => chunk,
            Some(allowance) => {
                let keep = chunk
                    .len()
                    .min(usize::try_from(*allowance).unwrap_or(usize::MAX));
                *allowance -= keep as u64;
                if keep < chunk.len() {
                    self.stats.truncated = true;
                }
                &chunk[..keep]
            }
        };
        if passed.is_empty() {
            return Ok(());
        }
        self.destination.write_all(passed)
    }

    pub fn finish(mut self) -> io::Result<StreamStats> {
        self.destination.flush()?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_exactly_the_limit_and_counts_everything() {
        let mut pump = StreamPump::new(Vec::new(), Some(10));
        for chunk in [&b"0123"[..], b"456789ab", b"cdef"] {
            pump.take(chunk).unwrap();
        }
        let StreamPump { destination, .. } = &pump;
        assert_eq!(destination, b"0123456789");
        let stats = pump.finish().unwrap();
        assert_eq!(
            stats,
            StreamStats {
                bytes: 16,
                truncated: true
            }
        );
    }

    #[test]
    fn output_of_exactly_the_limit_is_not_truncated() {
        let mut pump = StreamPump::new(Vec::new(), Some(4));
        pump.take(b"abcd").unwrap();
        pump.take(b"").unwrap();
        assert_eq!(
            pump.finish().unwrap(),
            StreamStats {
                bytes: 4,
                truncated: false
            }
        );
    }

    #[test]
    fn unlimited_passes_everything() {
        let mut pump = StreamPump::new(Vec::new(), None);
        pump.take(&[7; 100_000]).unwrap();
        assert_eq!(pump.destination.len(), 100_000);
        assert!(!pump.finish().unwrap().truncated);
    }
}
