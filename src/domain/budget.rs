//! The connection budget of a Postgres server that holds tenant databases:
//! every tenant at its role's CONNECTION LIMIT, plus what the platform keeps for
//! itself, must fit in `max_connections` less the superusers' reserve, so no
//! number of busy tenants can starve the platform or each other.

/// Connections the platform itself may hold on a tenant server besides the
/// tenants': its pool there and the shared-database pool, plus a move's two
/// programs.
pub fn platform_share(admin_pool_size: u32) -> i64 {
    2 * admin_pool_size as i64 + 2
}

/// Whether `capacity` tenants at their connection limit fit the server's
/// connections; `Err` says the arithmetic.
pub fn check_budget(
    capacity: i64,
    per_tenant: i64,
    max_connections: i64,
    superuser_reserved: i64,
    platform: i64,
) -> Result<(), String> {
    let room = max_connections - superuser_reserved - platform;
    let needed = capacity * per_tenant;
    if needed <= room {
        return Ok(());
    }
    Err(format!(
        "{capacity} tenants × {per_tenant} connections each = {needed}, but the server has room \
         for {room} (max_connections {max_connections} − {superuser_reserved} reserved for \
         superusers − {platform} for the platform): lower --capacity to at most {} or raise \
         max_connections",
        (room / per_tenant.max(1)).max(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capacity_that_could_starve_the_server_is_refused_with_the_arithmetic() {
        // 500 connections, 3 for superusers, 8 for the platform: 489 for tenants.
        assert!(check_budget(48, 10, 500, 3, 8).is_ok());
        let why = check_budget(49, 10, 500, 3, 8).unwrap_err();
        assert!(
            why.contains("49 tenants × 10 connections each = 490"),
            "{why}"
        );
        assert!(why.contains("room for 489"), "{why}");
        assert!(why.contains("at most 48"), "{why}");
        assert_eq!(platform_share(3), 8);
    }
}
