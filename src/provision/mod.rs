//! Talking to the outside: tenant roles/schemas/databases in Postgres, tenant
//! containers in Docker, and the Traefik labels that route them.

pub mod backup;
pub mod copy;
pub mod database;
pub mod docker;
pub mod labels;
pub mod runtime;
pub mod seal;
pub mod spec;
pub mod storage;

pub use database::{DatabaseError, TenantDatabases};
pub use runtime::{
    ContainerInfo, ContainerSpec, Health, RunState, RuntimeError, RuntimeEvent, TenantRuntime,
};
