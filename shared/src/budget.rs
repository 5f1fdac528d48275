//! The Lambda time budget: how long a file of a given size takes the function at a given
//! memory size, and so the largest file a memory/timeout pair can process. One table, used by
//! the function (to refuse a file up front) and by `deployer plan`/`up` (to print the limit).
//!
//! Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB. The
//! function's processing (split → validate → CSV and Parquet encoders) runs on one thread, so
//! its speed is the measured single-core throughput times `min(1, memory_mb / 1769)`. The raw
//! copy is server-side (S3 does the work), so its time does not depend on the memory.

/// Memory (MB) at which Lambda allocates one full vCPU.
pub const FULL_VCPU_MEMORY_MB: u32 = 1769;

/// Bytes of input the function's processing path handles per CPU-second, with Parquet outputs
/// on. Derived from the lowest figure `scripts/bench.sh budget` has measured (the real handler
/// over an in-memory store, no latency, CPU seconds of the whole process: 104 MiB per
/// CPU-second on this 2-core machine under load, 2026-12-01, the code before the throughput
/// work), times the speedup measured since with the code paths the arm64 function runs
/// (`--cfg csv_ingest_portable`: no SSE2 splitter or email paths), side by side under a compile
/// load on the benchmark file's rows (2026-12-03: 155.7 → 232.8 MiB per CPU-second, mean of
/// 6: 1.50×), halved: 77. Halved because Lambda's vCPUs are not this machine's, and a refused
/// file costs a redrive while a timed-out one costs three attempts.
pub const BYTES_PER_CPU_SECOND_PARQUET: u64 = 77 * MIB;
/// The same with Parquet outputs off (CSV only): 230 MiB per CPU-second measured under load,
/// times 1.32 (353.2 → 465.8 MiB per CPU-second side by side, arm64's code paths, 2026-12-03),
/// halved. (x86_64 with its SSE2 paths measured 1.71× in the same runs, Parquet on and off:
/// those paths are a larger share of the work without Parquet, which is why the figures come
/// from the arm64 paths.)
pub const BYTES_PER_CPU_SECOND_CSV: u64 = 151 * MIB;
/// An assumed floor for S3's server-side copy (`CopyObject`, or `UploadPartCopy` parts in
/// parallel above 5 GiB), in bytes per second. Not measurable here (the emulator copies in
/// memory); AWS copies within a region at hundreds of MB/s.
pub const COPY_BYTES_PER_SECOND: u64 = 64 * MIB;
/// Time kept back for start-up, reading output stamps, committing the outputs, and aborting
/// uploads cleanly when the deadline comes close anyway.
pub const FIXED_SECONDS: f64 = 10.0;

const MIB: u64 = 1024 * 1024;

/// The CPU share Lambda gives `memory_mb`, in vCPUs, capped at the one core processing uses.
pub fn cpu_share(memory_mb: u32) -> f64 {
    (f64::from(memory_mb) / f64::from(FULL_VCPU_MEMORY_MB)).min(1.0)
}

fn processing_rate(parquet: bool) -> f64 {
    if parquet {
        BYTES_PER_CPU_SECOND_PARQUET as f64
    } else {
        BYTES_PER_CPU_SECOND_CSV as f64
    }
}

/// Seconds to copy a file of `size` bytes to the raw bucket.
pub fn copy_seconds(size: u64) -> f64 {
    size as f64 / COPY_BYTES_PER_SECOND as f64
}

/// Seconds to stream a file of `size` bytes through the processor into its outputs.
pub fn processing_seconds(size: u64, memory_mb: u32, parquet: bool) -> f64 {
    size as f64 / (processing_rate(parquet) * cpu_share(memory_mb))
}

/// Seconds the whole job needs: the raw copy, the processing, and the fixed allowance.
pub fn seconds_needed(size: u64, memory_mb: u32, parquet: bool) -> f64 {
    FIXED_SECONDS + copy_seconds(size) + processing_seconds(size, memory_mb, parquet)
}

/// The largest file (bytes) that `memory_mb` and `timeout_s` let the function process.
pub fn max_file_bytes(memory_mb: u32, timeout_s: u32, parquet: bool) -> u64 {
    let usable = f64::from(timeout_s) - FIXED_SECONDS;
    if usable <= 0.0 {
        return 0;
    }
    // size * (1/copy + 1/processing) = usable
    let per_byte = 1.0 / COPY_BYTES_PER_SECOND as f64
        + 1.0 / (processing_rate(parquet) * cpu_share(memory_mb));
    (usable / per_byte) as u64
}

/// Lambda's bounds: memory 128–10,240 MB, timeout up to 900 s.
pub const MAX_MEMORY_MB: u32 = 10_240;
pub const MAX_TIMEOUT_S: u32 = 900;

/// A file the function cannot finish in the time it has, and what would let it.
#[derive(Clone, Debug, PartialEq)]
pub struct OverBudget {
    pub size: u64,
    pub needed_seconds: f64,
    pub available_seconds: f64,
    pub memory_mb: u32,
    /// The smallest memory (MB) that would do with the same timeout, if any.
    pub memory_that_would_do: Option<u32>,
    /// The smallest timeout (s) that would do with the same memory, if any.
    pub timeout_that_would_do: Option<u32>,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a file of {} bytes needs about {:.0} s at {} MB of memory, and the function has {:.0} s",
            self.size, self.needed_seconds, self.memory_mb, self.available_seconds
        )?;
        match (self.memory_that_would_do, self.timeout_that_would_do) {
            (Some(m), Some(t)) => write!(
                f,
                ": set function.memory_mb to at least {m} or function.timeout_s to at least {t}"
            ),
            (Some(m), None) => write!(f, ": set function.memory_mb to at least {m}"),
            (None, Some(t)) => write!(f, ": set function.timeout_s to at least {t}"),
            (None, None) => write!(
                f,
                ": no memory/timeout lets one invocation process it; split the file"
            ),
        }
    }
}

/// Whether a file of `size` bytes can be processed in `available_seconds` at `memory_mb`;
/// `timeout_s` is the function's configured timeout, for the advice.
pub fn check(
    size: u64,
    memory_mb: u32,
    timeout_s: u32,
    available_seconds: f64,
    parquet: bool,
) -> Result<(), OverBudget> {
    let needed = seconds_needed(size, memory_mb, parquet);
    if needed <= available_seconds {
        return Ok(());
    }
    // The time it needs plus the time it had not: `available_seconds` is what was left of
    // `timeout_s` when the file was judged.
    let timeout = (f64::from(timeout_s) + needed - available_seconds).ceil() + 1.0;
    let timeout_that_would_do = (timeout <= f64::from(MAX_TIMEOUT_S))
        .then_some(timeout as u32)
        .filter(|t| *t > timeout_s);
    let memory_that_would_do = (memory_mb..=MAX_MEMORY_MB)
        .step_by(64)
        .find(|m| max_file_bytes(*m, timeout_s, parquet) >= size);
    Err(OverBudget {
        size,
        needed_seconds: needed,
        available_seconds,
        memory_mb,
        memory_that_would_do,
        timeout_that_would_do,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_grows_with_memory_up_to_one_core() {
        assert!((cpu_share(1769) - 1.0).abs() < 1e-9);
        assert!((cpu_share(3538) - 1.0).abs() < 1e-9);
        assert!((cpu_share(256) - 256.0 / 1769.0).abs() < 1e-9);
    }

    #[test]
    fn the_largest_file_fits_and_one_byte_more_does_not() {
        for (memory, timeout, parquet) in [(256, 300, true), (1024, 900, false), (128, 30, true)] {
            let max = max_file_bytes(memory, timeout, parquet);
            assert!(max > 0);
            let t = f64::from(timeout);
            assert!(
                check(max, memory, timeout, t, parquet).is_ok(),
                "{memory}/{timeout}"
            );
            assert!(
                check(max + max / 100 + 1, memory, timeout, t, parquet).is_err(),
                "{memory}/{timeout}"
            );
        }
        assert_eq!(
            max_file_bytes(256, 10, true),
            0,
            "the fixed allowance alone"
        );
    }

    #[test]
    fn more_memory_or_time_means_larger_files() {
        assert!(max_file_bytes(512, 300, true) > max_file_bytes(256, 300, true));
        assert!(max_file_bytes(256, 600, true) > max_file_bytes(256, 300, true));
        assert!(max_file_bytes(256, 300, false) > max_file_bytes(256, 300, true));
        assert_eq!(
            max_file_bytes(1769, 300, true),
            max_file_bytes(4096, 300, true),
            "processing uses one core"
        );
    }

    #[test]
    fn a_refusal_says_what_would_do() {
        let max = max_file_bytes(256, 300, true);
        let e = check(max * 2, 256, 300, 300.0, true).unwrap_err();
        let m = e.memory_that_would_do.expect("more memory helps");
        assert!(max_file_bytes(m, 300, true) >= max * 2);
        assert!(max_file_bytes(m - 64, 300, true) < max * 2);
        let t = e.timeout_that_would_do.expect("more time helps");
        assert!(check(max * 2, 256, t, f64::from(t), true).is_ok());
        let text = e.to_string();
        assert!(text.contains("function.memory_mb to at least"), "{text}");
        assert!(text.contains("function.timeout_s to at least"), "{text}");
        let hopeless = check(u64::MAX / 2, 256, 900, 900.0, true).unwrap_err();
        assert_eq!(hopeless.memory_that_would_do, None);
        assert_eq!(hopeless.timeout_that_would_do, None);
        assert!(hopeless.to_string().contains("split the file"));
    }
}
