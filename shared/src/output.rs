//! Output formats for clean and rejected rows, and parsers that read those outputs back.

use crate::row::{CleanRow, RejectedRow};

/// Header of every `_cleaned.csv` output.
pub const CLEAN_HEADER: &str = "id,name,email,create_ts,update_ts";
/// Header of every `_rejected.csv` output.
pub const REJECTED_HEADER: &str = "line,reasons,id,name,email,create_ts,update_ts";

/// Receives the processor's verdict on each data record, in input order.
pub trait RowSink {
    fn clean(&mut self, row: &CleanRow<'_>);
    fn rejected(&mut self, row: &RejectedRow<'_>);
}

/// CSV outputs accumulated in memory; the owner drains `clean` / `rejected` as they fill up.
/// A header is written before the first row of each, so an output with no rows stays empty.
#[derive(Debug, Default)]
pub struct CsvOutputs {
    pub clean: Vec<u8>,
    pub rejected: Vec<u8>,
}

impl RowSink for CsvOutputs {
    fn clean(&mut self, row: &CleanRow<'_>) {
        todo!("{row:?}")
    }
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        todo!("{row:?}")
    }
}
