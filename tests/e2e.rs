//! End-to-end tests: real augur processes, real backends, real clients, loopback only.

mod support;

mod check;
mod client;
mod drain;
mod health;
mod http;
mod keys;
mod layering;
mod lifecycle;
mod metrics;
mod policies;
mod predictor;
mod reload;
mod segments;
mod services;
mod standby;
mod tcp;
mod tunnel;
mod wireguard_go;
