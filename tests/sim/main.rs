//! Integration tests of the sim area, one binary (one link of the crate) for all.

mod auth_support;
mod cdn_support;
mod support;

mod admin;
mod auth;
mod auth_conformance;
mod auth_rclone;
mod auth_refusals;
mod cdn;
mod cdn_faults;
mod cdn_formats;
mod changes;
mod cloudkit;
mod cloudkit_errors;
mod cloudkit_views;
mod conformance;
