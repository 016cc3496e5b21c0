//! mlbuild's integration tests: one binary (link time on 2 cores matters), real H2O.
//!
//! One H2O node is shared by the whole binary (see `support::shared_node`); it is launched with
//! mlbuild's own launcher, so it dies with the test process (parent-death signal). Tests that
//! are about the managed node itself launch their own.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benchmarks report seeds, timings and what they compared"
)]

mod support;

mod bench_scripts;
mod browser;
mod card_plots;
mod cli_errors;
mod cluster;
mod cold_start;
mod contributions;
mod data_path;
mod deploy;
mod engine_cancel;
mod error_output;
mod experiments;
mod explain;
mod faults;
mod h2o_warm;
mod hostile_inputs;
mod init_scaffold;
mod integrity;
mod layers;
mod lifecycle;
mod monitor_registry;
mod parsers;
mod precision;
mod prepare_confirm;
mod registry_cmds;
mod registry_processes;
mod remote;
mod scenarios;
mod serve;
mod sources;
mod ui;
mod user_config;
mod user_steps;
