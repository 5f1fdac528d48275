//! Lambda entry point: wires the S3-backed store into the event handler.

fn main() {}
