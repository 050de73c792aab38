//! The one integration-test binary of `cpis`: real servers on 127.0.0.1:0,
//! real HTTP, and the built binary run as an operator would run it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod audit;
mod cli;
mod fhir;
mod nodes;
mod notifications;
mod provider;
mod server;
mod support;
mod uploads;
mod web;
