//! `deployer` command-line entry point.

fn main() {}
