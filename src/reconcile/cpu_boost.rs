//! The start-up CPU boost. Fresco's start (`prisma generate`, its migrations,
//! `initialize.ts`) is CPU bound, so a start the platform makes (create, start,
//! restart, recovery) runs with `TENANT_START_CPUS`, and the first passing health
//! check puts the container back at its declared limit with a live update. Outside
//! a start a container runs at its limit: a failed start and a stop are put back
//! too, and the drift check puts back any running container found otherwise. A
//! restart by Docker's own restart policy is not the platform's start and keeps
//! the limit.
//!
//! The CPU weight (CpuShares) stays the default while boosted. The boost lifts a
//! quota, which only matters while the host has CPU to spare. Measured on this
//! project's busy 2-CPU host with CPU burners at 0.5 CPU as running tenants, 10 s
//! each, beside a start at 0.5 or 2 CPUs: beside 1 busy tenant, it kept its 0.50
//! while the boosted start took 0.98; beside 4 (the host full), each got the same
//! either way (0.21/0.20, 0.39/0.38); beside 2, in between, each got 10-15% less
//! (0.50/0.43, 0.38/0.34, 0.30/0.27) for as long as the start is boosted. A weight
//! of 256 while boosted gave 4 running tenants 0.46 instead of 0.38 but cut the
//! start to 0.12 CPU, a third of what an unboosted start gets: under load a start
//! would be slower than without the boost, and its health checks with it.

use tracing::{info, warn};

use super::{ConvergeError, Reconciler};
use crate::provision::runtime::ContainerInfo;
use crate::store::tenants::Tenant;

/// The NanoCpus a start gets: the boost, at most the host's CPUs (Docker refuses
/// more), and `None` (start at the limit) when it is off or not above the limit.
pub fn start_nano_cpus(limit: i64, boost_cpus: f64, host_cpus: u32) -> Option<i64> {
    if boost_cpus <= 0.0 {
        return None;
    }
    let boost = (boost_cpus.min(f64::from(host_cpus)) * 1e9) as i64;
    (boost > limit).then_some(boost)
}

impl Reconciler {
    /// The tenant's declared CPU limit (NanoCpus), as its spec has it.
    pub(super) fn cpu_limit(&self, tenant: &Tenant) -> i64 {
        Self::limits(tenant).nano_cpus(&self.inner.tenants)
    }

    /// The NanoCpus a start the platform makes gives the tenant's container.
    pub(super) async fn start_cpus(&self, tenant: &Tenant) -> Result<i64, ConvergeError> {
        let limit = self.cpu_limit(tenant);
        let boost = self.inner.tenants.start_cpus;
        if boost <= 0.0 {
            return Ok(limit);
        }
        let host = self.inner.runtime.host_cpus().await?;
        Ok(start_nano_cpus(limit, boost, host).unwrap_or(limit))
    }

    /// Before a start or restart of an existing container.
    pub(super) async fn boost_cpus(
        &self,
        tenant: &Tenant,
        c: &ContainerInfo,
    ) -> Result<(), ConvergeError> {
        let cpus = self.start_cpus(tenant).await?;
        if c.nano_cpus != cpus {
            self.inner
                .runtime
                .set_cpus(tenant.tenant_id(), cpus)
                .await?;
        }
        Ok(())
    }

    /// Puts the container at its declared limit, in place; nothing when it is there.
    pub(super) async fn settle_cpus(
        &self,
        tenant: &Tenant,
        c: &ContainerInfo,
    ) -> Result<(), ConvergeError> {
        let limit = self.cpu_limit(tenant);
        if c.nano_cpus != limit {
            info!(
                from = c.nano_cpus,
                to = limit,
                "container CPU put back at its limit"
            );
            self.inner
                .runtime
                .set_cpus(tenant.tenant_id(), limit)
                .await?;
        }
        Ok(())
    }

    /// After a start that failed, best effort: the error that ended it is the
    /// one worth reporting.
    pub(super) async fn settle_cpus_after_failure(&self, tenant: &Tenant) {
        let settled = match self.inner.runtime.inspect(tenant.tenant_id()).await {
            Ok(Some(c)) => self.settle_cpus(tenant, &c).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = settled {
            warn!(error = %e, "could not put the container's CPU back at its limit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF: i64 = 500_000_000;

    #[test]
    fn a_start_is_boosted_up_to_the_host_and_never_below_the_limit() {
        assert_eq!(start_nano_cpus(HALF, 2.0, 8), Some(2_000_000_000));
        // Docker refuses more CPUs than the host has.
        assert_eq!(start_nano_cpus(HALF, 4.0, 2), Some(2_000_000_000));
        assert_eq!(start_nano_cpus(HALF, 1.5, 2), Some(1_500_000_000));
        // Off, or not above the limit: the start runs at the limit.
        assert_eq!(start_nano_cpus(HALF, 0.0, 8), None);
        assert_eq!(start_nano_cpus(HALF, 0.5, 8), None);
        assert_eq!(start_nano_cpus(HALF, 0.25, 8), None);
        assert_eq!(start_nano_cpus(4_000_000_000, 2.0, 8), None);
        assert_eq!(start_nano_cpus(2_000_000_000, 4.0, 2), None);
    }
}
