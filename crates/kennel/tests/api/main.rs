//! The API service (`kenneld`) end to end: a real service on loopback
//! (HTTPS, its own certificate) and on its Unix socket, real tokens, real
//! VEs. One module per part of the API; `service` starts and stops the
//! service for a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
mod service;

mod access;
mod console;
mod data;
mod events;
mod exec_net;
mod hardening;
mod load;
mod metrics;
mod remote;
mod review;
mod ves;
