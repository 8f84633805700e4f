//! Integration tests of the auth area, one binary (one link of the crate) for all.

mod support;

mod against_sim;
mod cassettes;
mod cli;
mod pty;
mod refusals;
mod saved_accounts;
mod terminal;
