//! `deployer check FILE`: the pipeline's own processor run on a local file, no AWS involved.
//!
//! CSV outputs only (the default): streams the file in 1 MiB segments through `shared`'s
//! order-preserving parallel driver. With Parquet (`--format parquet|both`): one sequential
//! `Processor` gathering row groups (and the CSV outputs for `both`) while a second thread
//! encodes them with the function's Parquet writer: the same files, byte for byte.
//! Either way outputs are written as they come, so memory stays flat whatever the file size.
//! Outputs are written to temporary names and renamed at the end; an output with no rows is not
//! written, and a stale one from an earlier run (of either format) is removed, so the directory
//! shows the last run.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result};
use shared::output::CsvOutputs;
use shared::parallel::{Output as Stream, Parallel};
use shared::parquet::{RowGroup, RowGroupLimits, RowGroups, Table, TableEncoder};
use shared::{Processor, Summary};

use crate::report::Output;

const CHUNK: usize = 1 << 20;

/// Which outputs `check` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `<name>_cleaned.csv` and `rejected/<name>_rejected.csv`.
    #[default]
    Csv,
    /// `<name>.parquet` and `rejected/<name>_rejected.parquet`.
    Parquet,
    /// Both pairs.
    Both,
}

impl Format {
    pub fn csv(self) -> bool {
        matches!(self, Format::Csv | Format::Both)
    }

    pub fn parquet(self) -> bool {
        matches!(self, Format::Parquet | Format::Both)
    }
}

/// Runs the check and prints the summary.
pub fn run(file: &Path, out_dir: &Path, format: Format, output: Output) -> Result<()> {
    let (summary, written) = check_file(file, out_dir, format)?;
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

/// Processes `file` into `out_dir` in the given format (CSV only: on every core, outputs
/// byte-identical to a sequential run); returns the summary and the outputs written.
pub fn check_file(file: &Path, out_dir: &Path, format: Format) -> Result<(Summary, Vec<PathBuf>)> {
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
    let (pq_cleaned, pq_rejected) = shared::layout::local_parquet_paths(name);
    let mut outputs = Outputs {
        clean: LazyFile::new(out_dir.join(cleaned)),
        rejected: LazyFile::new(out_dir.join(rejected)),
        pq_clean: LazyFile::new(out_dir.join(pq_cleaned)),
        pq_rejected: LazyFile::new(out_dir.join(pq_rejected)),
    };
    let result = if format.parquet() {
        with_parquet(file, input, &mut outputs, format.csv())
    } else {
        csv_only(file, input, &mut outputs)
    };
    match result {
        Ok(summary) => Ok((summary, outputs.commit()?)),
        Err(e) => {
            outputs.discard();
            Err(e)
        }
    }
}

/// The four local outputs of one input; those a run does not write are removed at commit.
struct Outputs {
    clean: LazyFile,
    rejected: LazyFile,
    pq_clean: LazyFile,
    pq_rejected: LazyFile,
}

impl Outputs {
    /// Moves the written outputs into place and removes stale ones; returns those written.
    fn commit(self) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for file in [self.clean, self.rejected, self.pq_clean, self.pq_rejected] {
            written.extend(file.commit()?);
        }
        Ok(written)
    }

    fn discard(self) {
        for file in [self.clean, self.rejected, self.pq_clean, self.pq_rejected] {
            file.discard();
        }
    }
}

/// CSV outputs only, on every core.
fn csv_only(file: &Path, input: File, outputs: &mut Outputs) -> Result<Summary> {
    let mut write_error: Option<anyhow::Error> = None;
    let result = Parallel::default().run(input, |output, bytes| {
        let target = match output {
            Stream::Clean => &mut outputs.clean,
            Stream::Rejected => &mut outputs.rejected,
        };
        target.write(bytes).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            write_error = Some(e);
            io
        })
    });
    match result {
        Ok(summary) => Ok(summary),
        Err(e) => Err(match write_error {
            Some(write) => write,
            None => anyhow::Error::new(e).context(format!("cannot read {}", file.display())),
        }),
    }
}

/// Parquet outputs (and the CSV ones with `csv`): one sequential processor gathers row groups
/// on this thread while another encodes them (the function's writer, split in two), so the two
/// halves of the work overlap. At most `GROUPS_IN_FLIGHT` full row groups wait in between.
fn with_parquet(file: &Path, mut input: File, outputs: &mut Outputs, csv: bool) -> Result<Summary> {
    const GROUPS_IN_FLIGHT: usize = 2;
    let Outputs {
        clean,
        rejected,
        pq_clean,
        pq_rejected,
    } = outputs;
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::sync_channel::<RowGroup>(GROUPS_IN_FLIGHT);
        let (recycle, recycled) = mpsc::channel::<RowGroup>();
        let encoder = scope.spawn(move || encode(receive, recycle, pq_clean, pq_rejected));

        let processed = (|| -> Result<Summary> {
            let mut processor = Processor::new();
            let mut csv_out = csv.then(CsvOutputs::new);
            let mut groups = RowGroups::new(RowGroupLimits::default());
            let mut buf = vec![0u8; CHUNK];
            // Hands the full groups to the encoder; false once it has stopped (its error is
            // the one reported).
            let hand_over = |groups: &mut RowGroups| -> bool {
                while let Ok(group) = recycled.try_recv() {
                    groups.recycle(group);
                }
                while let Some(group) = groups.next_ready() {
                    if send.send(group).is_err() {
                        return false;
                    }
                }
                true
            };
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("cannot read {}", file.display())));
                    }
                };
                processor.feed(&buf[..n], &mut (csv_out.as_mut(), &mut groups));
                write_csv(clean, rejected, csv_out.as_mut())?;
                if !hand_over(&mut groups) {
                    return Ok(processor.summary().clone());
                }
            }
            let summary = processor.finish(&mut (csv_out.as_mut(), &mut groups));
            write_csv(clean, rejected, csv_out.as_mut())?;
            for group in groups.finish() {
                if send.send(group).is_err() {
                    break;
                }
            }
            Ok(summary)
        })();
        // Closing the channel ends the encoder: it writes the footers, or stops on an error.
        drop(send);
        let encoded = match encoder.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // An encoder failure stops the reading half early: it is the error to report.
        encoded?;
        processed
    })
}

/// The encoding half of `with_parquet`: writes every row group it receives into its file (a
/// file gets its first byte with its first row, so an output without rows is not written),
/// then the footers once the channel closes.
fn encode(
    groups: mpsc::Receiver<RowGroup>,
    recycle: mpsc::Sender<RowGroup>,
    clean_file: &mut LazyFile,
    rejected_file: &mut LazyFile,
) -> Result<()> {
    let mut clean = TableEncoder::new(Table::Clean)?;
    let mut rejected = TableEncoder::new(Table::Rejected)?;
    for mut group in groups {
        let (encoder, file) = match group.table() {
            Table::Clean => (&mut clean, &mut *clean_file),
            Table::Rejected => (&mut rejected, &mut *rejected_file),
        };
        encoder.write(&mut group)?;
        let _ = recycle.send(group);
        if encoder.rows() > 0 {
            file.write(encoder.buffer())?;
            encoder.buffer().clear();
        }
    }
    for (encoder, file) in [(clean, clean_file), (rejected, rejected_file)] {
        let rows = encoder.rows();
        let rest = encoder.finish()?;
        if rows > 0 {
            file.write(&rest)?;
        }
    }
    Ok(())
}

/// Writes out what the CSV outputs hold so far.
fn write_csv(
    clean: &mut LazyFile,
    rejected: &mut LazyFile,
    csv: Option<&mut CsvOutputs>,
) -> Result<()> {
    if let Some(csv) = csv {
        for (bytes, file) in [(&mut csv.clean, clean), (&mut csv.rejected, rejected)] {
            if !bytes.is_empty() {
                file.write(bytes)?;
                bytes.clear();
            }
        }
    }
    Ok(())
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
