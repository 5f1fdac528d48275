//! How large each output can get for an input of a given size: the bound the function sizes
//! its upload parts by, so that no output ever needs more than S3's 10,000 parts.
//!
//! The rejected outputs are the ones that can outgrow their input: a record of five empty
//! fields (`,,,,\n`, 5 bytes) becomes a rejected row with its line number and five reason
//! codes (about 90 bytes), and a byte that is not UTF-8 is written as U+FFFD (3 bytes). The
//! factors below hold for every input (`tests/bounds.rs` tries the worst shapes).

/// One of the four outputs of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    CleanCsv,
    RejectedCsv,
    CleanParquet,
    RejectedParquet,
}

impl Output {
    /// Bytes of output per byte of input, at most.
    pub fn factor(self) -> u64 {
        match self {
            // Values are at most doubled by quoting (`a"b` → `"a""b"`) and never grow by
            // lowercasing (a clean email is ASCII); columns are dropped, never added.
            Output::CleanCsv => 2,
            // Line number, reasons and five values per record of at least 5 bytes.
            Output::RejectedCsv => 20,
            // 4-byte length prefixes on short strings, 8-byte instants from 19+ bytes.
            Output::CleanParquet => 4,
            // As the rejected CSV, plus an 8-byte line and length prefixes, before Snappy.
            Output::RejectedParquet => 26,
        }
    }

    /// Bytes an output has even for an empty input (header, footer, row-group metadata).
    pub fn overhead(self) -> u64 {
        match self {
            Output::CleanCsv | Output::RejectedCsv => 1024,
            Output::CleanParquet | Output::RejectedParquet => 1024 * 1024,
        }
    }
}

/// The most bytes `output` can hold for an input of `input_bytes`.
pub fn max_output_bytes(output: Output, input_bytes: u64) -> u64 {
    input_bytes
        .saturating_mul(output.factor())
        .saturating_add(output.overhead())
}
