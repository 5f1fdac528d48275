//! The deployer as a library: config, the AWS resource modules and the commands built on them.
//!
//! Invariant: only this crate calls the AWS control plane; the function only touches S3 objects.

pub mod artifact;
pub mod aws;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod failed;
pub mod logs;
pub mod plan;
pub mod policy;
pub mod query;
pub mod redrive;
pub mod report;
pub mod reprocess;
pub mod resources;
pub mod smoke;
pub mod stack;
pub mod status;
