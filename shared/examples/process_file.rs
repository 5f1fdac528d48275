//! Runs one local file through the processor the way `deployer check` does: `process_file FILE [OUT_DIR] [--parallel [N]]`.
//!
//! Reads FILE in 1 MiB chunks, feeds them to a `Processor` with `CsvOutputs`, drains the outputs
//! after every chunk into `OUT_DIR/<name>_cleaned.csv` and `OUT_DIR/rejected/<name>_rejected.csv`
//! (created only when they get rows; default `OUT_DIR` is `out`), and prints the summary JSON.
//! With `--parallel`, the same through `shared::parallel::Parallel` (N workers, default one per
//! core): the same bytes out.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shared::Processor;
use shared::layout::local_output_paths;
use shared::output::CsvOutputs;
use shared::parallel::{Output, Parallel};
use shared::process::CHUNK_BYTES;

/// An output file opened on its first bytes.
struct Lazy {
    path: PathBuf,
    file: Option<File>,
}

impl Lazy {
    fn drain(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        self.write(buf)?;
        buf.clear();
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir)?;
            }
            self.file = Some(File::create(&self.path)?);
        }
        if let Some(file) = &mut self.file {
            file.write_all(buf)?;
        }
        Ok(())
    }
}

fn run(input: &Path, out_dir: &Path, parallel: Option<Option<usize>>) -> io::Result<String> {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (clean_path, rejected_path) = local_output_paths(&name);
    let mut clean = Lazy {
        path: out_dir.join(clean_path),
        file: None,
    };
    let mut rejected = Lazy {
        path: out_dir.join(rejected_path),
        file: None,
    };
    // Stale outputs of an earlier run would contradict this one.
    for path in [&clean.path, &rejected.path] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }

    let mut file = File::open(input)?;
    if let Some(workers) = parallel {
        let settings = Parallel {
            workers: workers.unwrap_or(Parallel::default().workers),
            ..Parallel::default()
        };
        let summary = settings.run(file, |output, bytes| match output {
            Output::Clean => clean.write(bytes),
            Output::Rejected => rejected.write(bytes),
        })?;
        return serde_json::to_string(&summary).map_err(io::Error::other);
    }
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut outputs = CsvOutputs::new();
    let mut processor = Processor::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        processor.feed(&buf[..n], &mut outputs);
        clean.drain(&mut outputs.clean)?;
        rejected.drain(&mut outputs.rejected)?;
    }
    let summary = processor.finish(&mut outputs);
    clean.drain(&mut outputs.clean)?;
    rejected.drain(&mut outputs.rejected)?;
    serde_json::to_string(&summary).map_err(io::Error::other)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut parallel = None;
    if let Some(at) = args.iter().position(|a| a == "--parallel") {
        let workers = args.get(at + 1).and_then(|n| n.parse::<usize>().ok());
        args.drain(at..(at + 1 + usize::from(workers.is_some())).min(args.len()));
        parallel = Some(workers);
    }
    let Some(input) = args.first() else {
        eprintln!("usage: process_file FILE [OUT_DIR] [--parallel [N]]");
        return ExitCode::from(2);
    };
    let out_dir = args.get(1).map_or("out", String::as_str);
    match run(Path::new(input), Path::new(out_dir), parallel) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}
