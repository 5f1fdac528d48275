//! `deployer check FILE`: the pipeline's own processor run on a local file, no AWS involved.
//!
//! Streams the file in 1 MiB segments through `shared`'s order-preserving parallel driver and
//! writes the outputs as they come, so memory stays flat whatever the file size. Outputs are
//! written to temporary names and renamed at the end; an output with no rows is not written (and
//! a stale one from an earlier run is removed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use shared::Summary;
use shared::parallel::{Output as Stream, Parallel};

use crate::report::Output;

const CHUNK: usize = 1 << 20;

/// Runs the check and prints the summary.
pub fn run(file: &Path, out_dir: &Path, output: Output) -> Result<()> {
    let (summary, written) = check_file(file, out_dir)?;
    match output {
        // One compact line: `{"records":N,"clean":N,"rejected":N,"reasons":{…}}`.
        Output::Json => println!("{}", serde_json::to_string(&summary)?),
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
    let reasons: Vec<String> = summary
        .reasons
        .iter()
        .map(|(reason, n)| format!("{} {n}", reason.code()))
        .collect();
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

/// Processes `file` into `out_dir` (on every core, outputs byte-identical to a sequential
/// run); returns the summary and the outputs written.
pub fn check_file(file: &Path, out_dir: &Path) -> Result<(Summary, Vec<PathBuf>)> {
    let input = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    if input.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("cannot read {}: it is a directory", file.display());
    }
    let name = file.file_name().and_then(|n| n.to_str()).with_context(|| {
        format!(
            "cannot name outputs after {}: not a UTF-8 file name",
            file.display()
        )
    })?;
    let (cleaned, rejected) = shared::layout::local_output_paths(name);
    let mut clean_out = LazyFile::new(out_dir.join(cleaned));
    let mut rejected_out = LazyFile::new(out_dir.join(rejected));
    let mut write_error: Option<anyhow::Error> = None;
    let result = Parallel::default().run(input, |output, bytes| {
        let target = match output {
            Stream::Clean => &mut clean_out,
            Stream::Rejected => &mut rejected_out,
        };
        target.write(bytes).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            write_error = Some(e);
            io
        })
    });
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
            Err(match write_error {
                Some(write) => write,
                None => anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
            })
        }
    }
}

/// An output file created on its first byte, under a temporary name until `commit`.
struct LazyFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
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

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.temp.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let file = File::create(&self.temp)
                    .with_context(|| format!("cannot write {}", self.temp.display()))?;
                self.file.insert(BufWriter::with_capacity(CHUNK, file))
            }
        };
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", self.temp.display()))
    }

    /// Moves the finished output into place; with no rows, removes a stale one instead.
    fn commit(self) -> Result<Option<PathBuf>> {
        match self.file {
            Some(mut file) => {
                file.flush()
                    .with_context(|| format!("cannot write {}", self.temp.display()))?;
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
