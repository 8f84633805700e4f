//! Integration tests of the metadata area, one binary (one link of the crate) for all.

mod support;

mod exif;
mod hostile;
mod tools;
mod xmp;
