//! What the agent daemon (`cairn agent`) runs: its configuration file,
//! read into typed settings that the front end turns into operations.

pub mod config;
