//! Integration tests of the cloudkit area, one binary (one link of the crate) for all.

mod scripted;
mod support;

mod cassettes;
mod errors;
mod replay;
mod sim;
mod walk;
