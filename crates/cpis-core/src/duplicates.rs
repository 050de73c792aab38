//! Finding repeated keys in a stream too long to hold in memory: keys are
//! kept in sorted runs on disk and merged once the stream ends, so memory
//! stays the same however long the stream is.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Entries per run held in memory before it is sorted and written out:
/// 256 Ki entries of 24 bytes, 6 MiB.
const RUN_LEN: usize = 256 * 1024;

/// One key seen at position `index` (on line `line`) of the stream.
type Entry = (u64, u64, u64);

/// A key seen before: at `index` (line `line`), first at line `first_line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub index: u64,
    pub line: u64,
    pub first_line: u64,
}

pub(crate) struct DuplicateFinder {
    run: Vec<Entry>,
    runs: Vec<File>,
    run_len: usize,
}

impl DuplicateFinder {
    pub fn new() -> Self {
        Self::with_run_len(RUN_LEN)
    }

    fn with_run_len(run_len: usize) -> Self {
        DuplicateFinder {
            run: Vec::new(),
            runs: Vec::new(),
            run_len: run_len.max(1),
        }
    }

    /// Notes `key` at the next position; positions and lines must grow.
    pub fn push(&mut self, key: u64, index: u64, line: u64) -> io::Result<()> {
        self.run.push((key, index, line));
        if self.run.len() >= self.run_len {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.run.sort_unstable();
        let mut out = BufWriter::with_capacity(64 * 1024, tempfile::tempfile()?);
        for (key, index, line) in self.run.drain(..) {
            out.write_all(&key.to_le_bytes())?;
            out.write_all(&index.to_le_bytes())?;
            out.write_all(&line.to_le_bytes())?;
        }
        let mut file = out.into_inner().map_err(|error| error.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        Ok(())
    }

    /// Every position whose key came earlier in the stream, in stream order,
    /// each with the line the key was first seen on.
    pub fn finish(mut self) -> io::Result<Vec<Duplicate>> {
        let mut duplicates = Vec::new();
        let mut first: Option<(u64, u64)> = None;
        let mut visit = |(key, index, line): Entry| match first {
            Some((seen, first_line)) if seen == key => duplicates.push(Duplicate {
                index,
                line,
                first_line,
            }),
            _ => first = Some((key, line)),
        };
        if self.runs.is_empty() {
            self.run.sort_unstable();
            self.run.drain(..).for_each(&mut visit);
        } else {
            if !self.run.is_empty() {
                self.spill()?;
            }
            let mut readers: Vec<BufReader<File>> = self
                .runs
                .into_iter()
                .map(|file| BufReader::with_capacity(64 * 1024, file))
                .collect();
            let mut heap = BinaryHeap::with_capacity(readers.len());
            for (run, reader) in readers.iter_mut().enumerate() {
                if let Some(entry) = read_entry(reader)? {
                    heap.push(Reverse((entry, run)));
                }
            }
            while let Some(Reverse((entry, run))) = heap.pop() {
                visit(entry);
                if let Some(next) = read_entry(&mut readers[run])? {
                    heap.push(Reverse((next, run)));
                }
            }
        }
        duplicates.sort_unstable_by_key(|duplicate| duplicate.index);
        Ok(duplicates)
    }
}

fn read_entry(reader: &mut impl Read) -> io::Result<Option<Entry>> {
    let mut bytes = [0u8; 24];
    match reader.read_exact(&mut bytes) {
        Ok(()) => {
            let word = |at: usize| {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[at..at + 8]);
                u64::from_le_bytes(word)
            };
            Ok(Some((word(0), word(8), word(16))))
        }
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The same answer as a hash map gives, in memory or across many runs.
    #[test]
    fn finds_what_a_hash_map_finds_however_the_runs_fall() {
        let keys: Vec<u64> = (0..5_000u64).map(|i| (i * 7919) % 3_001).collect();
        let mut expected = Vec::new();
        let mut first_line: HashMap<u64, u64> = HashMap::new();
        for (index, key) in keys.iter().enumerate() {
            let line = index as u64 * 2 + 2;
            match first_line.get(key) {
                Some(first) => expected.push(Duplicate {
                    index: index as u64,
                    line,
                    first_line: *first,
                }),
                None => {
                    first_line.insert(*key, line);
                }
            }
        }
        assert!(!expected.is_empty());
        for run_len in [1, 7, 1_000, 100_000] {
            let mut finder = DuplicateFinder::with_run_len(run_len);
            for (index, key) in keys.iter().enumerate() {
                finder
                    .push(*key, index as u64, index as u64 * 2 + 2)
                    .unwrap();
            }
            assert_eq!(finder.finish().unwrap(), expected, "runs of {run_len}");
        }
        assert!(DuplicateFinder::new().finish().unwrap().is_empty());
    }
}
