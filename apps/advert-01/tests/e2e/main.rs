//! advert-01's five functions end to end: the app and its embedded Ingot
//! engine started as the binary starts them (on 127.0.0.1 port 0), events
//! sent through the app's client, and each function's real effect checked.

#[path = "../support/mod.rs"]
mod support;

mod email;
mod export_pdf;
mod hello;
mod smtp;
mod strategy;
mod webhook;
mod webhook_destinations;
