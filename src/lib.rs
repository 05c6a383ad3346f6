//! fresco-platform: a control plane that runs Fresco as a multi-tenant service.
//!
//! Layers: `http` (the API), `domain` (plain types and rules), `store` (the
//! platform schema and its NOTIFY channels), `provision` (Postgres
//! roles/schemas, Docker containers, Traefik labels), `reconcile` (the loop
//! converging tenants), `usage` (the tenant resource sampler), `telemetry` (the
//! platform's own Prometheus metrics), `cli` (admin commands over the API),
//! wired in `app`.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod provision;
pub mod reconcile;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod web;
