//! Unit tests of the library: generation, indexes under mutations, change feed.
