//! Integration tests of the layout area, one binary (one link of the crate) for all.

mod support;

mod hostile;
mod rules;
mod tree;
