//! `deployer check FILE`: the pipeline's own processor run on a local file, no AWS involved.
//!
//! Streams the file in 1 MiB chunks and writes the outputs as they fill, so memory stays flat
//! whatever the file size. Outputs are written to temporary names and renamed at the end; an
//! output with no rows is not written (and a stale one from an earlier run is removed).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use shared::output::CsvOutputs;
use shared::{Processor, Summary};

use crate::report::{Output, print_json};

const CHUNK: usize = 1 << 20;

/// Runs the check and prints the summary.
pub fn run(file: &Path, out_dir: &Path, output: Output) -> Result<()> {
    let (summary, written) = check_file(file, out_dir)?;
    match output {
        Output::Json => print_json(&summary)?,
        Output::Text => {
            println!("{}", describe(file, &summary));
            if let Some(problem) = &summary.header_problem {
                println!("  header: {problem}: every record is rejected as invalid_header");
            }
            for path in written {
                println!("  wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// `data/users.csv: 4 records, 2 clean, 2 rejected (invalid_email 1, update_before_create 1)`.
pub fn describe(file: &Path, summary: &Summary) -> String {
    let value = serde_json::to_value(&summary.reasons).unwrap_or_default();
    let reasons: Vec<String> = value
        .as_object()
        .map(|m| m.iter().map(|(code, n)| format!("{code} {n}")).collect())
        .unwrap_or_default();
    let mut text = format!(
        "{}: {} records, {} clean, {} rejected",
        file.display(),
        summary.records,
        summary.clean,
        summary.rejected
    );
    if !reasons.is_empty() {
        text.push_str(&format!(" ({})", reasons.join(", ")));
    }
    text
}

/// Processes `file` into `out_dir`; returns the summary and the outputs written.
pub fn check_file(file: &Path, out_dir: &Path) -> Result<(Summary, Vec<PathBuf>)> {
    let mut input = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).with_context(|| {
        format!(
            "cannot name outputs after {}: not a UTF-8 file name",
            file.display()
        )
    })?;
    let (cleaned, rejected) = shared::layout::local_output_paths(name);
    let mut clean_out = LazyFile::new(out_dir.join(cleaned));
    let mut rejected_out = LazyFile::new(out_dir.join(rejected));

    let mut processor = Processor::new();
    let mut outputs = CsvOutputs::new();
    let mut chunk = vec![0u8; CHUNK];
    let result = (|| -> Result<Summary> {
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
            };
            processor.feed(&chunk[..n], &mut outputs);
            clean_out.drain_from(&mut outputs.clean, CHUNK)?;
            rejected_out.drain_from(&mut outputs.rejected, CHUNK)?;
        }
        let summary = processor.finish(&mut outputs);
        clean_out.drain_from(&mut outputs.clean, 0)?;
        rejected_out.drain_from(&mut outputs.rejected, 0)?;
        Ok(summary)
    })();
    match result {
        Ok(summary) => {
            let mut written = Vec::new();
            written.extend(clean_out.commit()?);
            written.extend(rejected_out.commit()?);
            Ok((summary, written))
        }
        Err(e) => {
            clean_out.discard();
            rejected_out.discard();
            Err(e)
        }
    }
}

/// An output file created on its first byte, under a temporary name until `commit`.
struct LazyFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl LazyFile {
    fn new(path: PathBuf) -> LazyFile {
        let mut temp = path.clone().into_os_string();
        temp.push(".partial");
        LazyFile {
            path,
            temp: temp.into(),
            file: None,
        }
    }

    /// Writes out `buffer` once it holds at least `threshold` bytes (0: whatever it holds).
    fn drain_from(&mut self, buffer: &mut Vec<u8>, threshold: usize) -> Result<()> {
        if buffer.is_empty() || buffer.len() < threshold {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = self.temp.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let file = File::create(&self.temp)
                .with_context(|| format!("cannot write {}", self.temp.display()))?;
            self.file = Some(file);
        }
        if let Some(file) = &mut self.file {
            file.write_all(buffer)
                .with_context(|| format!("cannot write {}", self.temp.display()))?;
        }
        buffer.clear();
        Ok(())
    }

    /// Renames the finished output into place; with no rows, removes a stale one instead.
    fn commit(self) -> Result<Option<PathBuf>> {
        match self.file {
            Some(file) => {
                drop(file);
                std::fs::rename(&self.temp, &self.path)
                    .with_context(|| format!("cannot move {} into place", self.path.display()))?;
                Ok(Some(self.path))
            }
            None => {
                match std::fs::remove_file(&self.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot remove stale {}", self.path.display())
                        });
                    }
                }
                Ok(None)
            }
        }
    }

    fn discard(self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
