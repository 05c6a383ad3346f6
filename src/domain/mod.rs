//! Plain types and rules, no I/O: tenant ids and the names derived from them,
//! the subdomain rule, lifecycle states.

pub mod password;
mod subdomain;
mod tenant;

pub use subdomain::{Subdomain, SubdomainError, RESERVED_SUBDOMAINS};
pub use tenant::{Action, DeploymentStatus, DesiredState, Role, TenantId, TenantStatus};
