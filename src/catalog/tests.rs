//! Unit tests of the catalog.
