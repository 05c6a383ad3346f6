//! Tenant identity, the names derived from it, and lifecycle states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long after its first start a Fresco instance accepts its admin account
/// (Fresco's own rule: `/setup` goes to `/expired` 2 hours after `initializedAt`).
pub const SETUP_WINDOW_HOURS: i64 = 2;

/// A tenant's id. Every Postgres and Docker name is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl TenantId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Lowercase hex without dashes (32 chars): the `<id>` of every derived name.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }

    pub fn schema_name(&self) -> String {
        format!("tenant_{}", self.simple())
    }

    pub fn database_name(&self) -> String {
        format!("tenant_{}", self.simple())
    }

    pub fn role_name(&self) -> String {
        format!("tenant_user_{}", self.simple())
    }

    pub fn container_name(&self) -> String {
        format!("fresco_tenant_{}", self.simple())
    }

    /// Traefik router and service name.
    pub fn router_name(&self) -> String {
        format!("tenant-{}", self.simple())
    }

    /// Key for the per-tenant advisory lock.
    pub fn lock_key(&self) -> i64 {
        let b = self.0.as_bytes();
        i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TenantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What the platform observed of a tenant.
    TenantStatus {
        Pending => "pending",
        Provisioning => "provisioning",
        Active => "active",
        Stopped => "stopped",
        Error => "error",
        Destroying => "destroying",
        Destroyed => "destroyed",
    }
);

text_enum!(
    /// What the owner asked for.
    DesiredState {
        Running => "running",
        Stopped => "stopped",
        Destroyed => "destroyed",
    }
);

text_enum!(
    /// A lifecycle action, as recorded in the deployment log.
    Action {
        Create => "create",
        Start => "start",
        Stop => "stop",
        Restart => "restart",
        Destroy => "destroy",
        Update => "update",
        Recover => "recover",
        Move => "move",
        Restore => "restore",
    }
);

text_enum!(
    /// How a tenant's data is kept apart in Postgres: a database of its own
    /// (every Fresco release), or a schema in a shared tenants database (only
    /// images whose queries honour `?schema=`: Fresco 3.0 and earlier).
    #[derive(clap::ValueEnum)]
    Isolation {
        Schema => "schema",
        Database => "database",
    }
);

/// Where a tenant's data lives: the server (a `db_servers` row), the database
/// on it, and how it is isolated there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLocation {
    pub server: Uuid,
    pub database: String,
    pub isolation: Isolation,
}

text_enum!(
    DeploymentStatus {
        Initiated => "initiated",
        Success => "success",
        Failed => "failed",
    }
);

text_enum!(
    Role {
        Admin => "admin",
        Member => "member",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_postgres_identifier_limit() {
        let id = TenantId::new();
        assert_eq!(id.simple().len(), 32);
        assert_eq!(id.role_name().len(), 44);
        assert!(id.schema_name().len() <= 63);
        assert!(id.container_name().starts_with("fresco_tenant_"));
        assert_eq!(id.router_name(), format!("tenant-{}", id.simple()));
    }
}
