//! Push-based CSV record splitting with the `csv` crate's default dialect (SPEC §1), on bytes.
