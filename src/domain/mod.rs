//! Plain types and rules, no I/O: tenant ids and the names derived from them,
//! the subdomain and email rules, lifecycle states, and which owner action is
//! allowed in which state.

pub mod backup;
pub mod budget;
mod dsn;
mod email;
pub mod lifecycle;
pub mod password;
mod subdomain;
mod tenant;

pub use dsn::redacted_dsn;
pub use email::{Email, EmailError};
pub use lifecycle::{OwnerAction, Refusal};
pub use subdomain::{Subdomain, SubdomainError, RESERVED_SUBDOMAINS};
pub use tenant::{
    Action, DbLocation, DeploymentStatus, DesiredState, Isolation, Role, TenantId, TenantStatus,
    SETUP_WINDOW_HOURS,
};
