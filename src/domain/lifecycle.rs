//! Which owner action is allowed in which state, and what it asks of the
//! reconciler. Pure: the handler loads the row, asks `plan`, and either records
//! the intent or answers with the refusal.

use std::fmt;

use super::tenant::{Action, DesiredState, TenantStatus};

/// What an owner (or an admin on their behalf) can ask of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerAction {
    Start,
    Stop,
    Restart,
    Destroy,
    /// Re-queue a deployment that ended in `error`.
    Retry,
}

impl OwnerAction {
    pub const ALL: [OwnerAction; 5] = [
        Self::Start,
        Self::Stop,
        Self::Restart,
        Self::Destroy,
        Self::Retry,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Destroy => "destroy",
            Self::Retry => "retry",
        }
    }

    /// The action's name in the audit trail.
    pub fn audit_name(&self) -> &'static str {
        match self {
            Self::Start => "tenant.start",
            Self::Stop => "tenant.stop",
            Self::Restart => "tenant.restart",
            Self::Destroy => "tenant.destroy",
            Self::Retry => "tenant.retry",
        }
    }

    fn past(&self) -> &'static str {
        match self {
            Self::Start => "started",
            Self::Stop => "stopped",
            Self::Restart => "restarted",
            Self::Destroy => "destroyed",
            Self::Retry => "retried",
        }
    }
}

impl fmt::Display for OwnerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of a tenant's row the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub desired: DesiredState,
    pub status: TenantStatus,
    /// The action the reconciler is still working on, if any.
    pub in_flight: Option<Action>,
    /// The instance has run at least once (its first deployment succeeded).
    pub ever_started: bool,
}

/// What an allowed action records: the new desired state, the status to show
/// right away (None keeps the current one), and the deployment-log action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub desired: DesiredState,
    pub status: Option<TenantStatus>,
    pub logged_as: Action,
}

/// Why an action is refused; each is a 409 for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("tenant is {status}; it cannot be {}", action.past())]
    Gone {
        status: TenantStatus,
        action: OwnerAction,
    },
    #[error("{in_flight} is in progress; wait for it to finish before {action}")]
    InProgress {
        in_flight: Action,
        action: OwnerAction,
    },
    #[error("tenant is already running")]
    AlreadyRunning,
    #[error("tenant is already stopped")]
    AlreadyStopped,
    #[error("tenant is stopped; start it instead")]
    RestartWhileStopped,
    #[error("tenant is {0}; only a failed deployment can be retried")]
    NotFailed(TenantStatus),
}

impl Refusal {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InProgress { .. } => "action_in_progress",
            _ => "invalid_state",
        }
    }
}

/// Decides whether `action` makes sense for a tenant in `current`, and what it
/// asks for. Destroy supersedes whatever is in flight; every other action waits
/// for the one in flight to finish.
pub fn plan(current: &Current, action: OwnerAction) -> Result<Intent, Refusal> {
    let Current {
        desired,
        status,
        in_flight,
        ever_started,
    } = *current;
    if desired == DesiredState::Destroyed || status == TenantStatus::Destroyed {
        return Err(Refusal::Gone { status, action });
    }
    if let Some(in_flight) = in_flight {
        if action != OwnerAction::Destroy {
            return Err(Refusal::InProgress { in_flight, action });
        }
    }
    let intent = |desired, status, logged_as| Intent {
        desired,
        status,
        logged_as,
    };
    match action {
        OwnerAction::Start
            if desired == DesiredState::Running && status == TenantStatus::Active =>
        {
            Err(Refusal::AlreadyRunning)
        }
        OwnerAction::Start => Ok(intent(
            DesiredState::Running,
            Some(TenantStatus::Provisioning),
            Action::Start,
        )),
        OwnerAction::Stop
            if desired == DesiredState::Stopped && status == TenantStatus::Stopped =>
        {
            Err(Refusal::AlreadyStopped)
        }
        OwnerAction::Stop => Ok(intent(DesiredState::Stopped, None, Action::Stop)),
        OwnerAction::Restart if desired == DesiredState::Stopped => {
            Err(Refusal::RestartWhileStopped)
        }
        OwnerAction::Restart => Ok(intent(
            DesiredState::Running,
            Some(TenantStatus::Provisioning),
            Action::Restart,
        )),
        OwnerAction::Destroy => Ok(intent(
            DesiredState::Destroyed,
            Some(TenantStatus::Destroying),
            Action::Destroy,
        )),
        // A retry re-queues the failed deployment as the action it failed at:
        // the first deployment (create) or a later start.
        OwnerAction::Retry if status == TenantStatus::Error => {
            let failed_as = if ever_started {
                Action::Start
            } else {
                Action::Create
            };
            Ok(intent(desired, Some(TenantStatus::Provisioning), failed_as))
        }
        OwnerAction::Retry => Err(Refusal::NotFailed(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [TenantStatus; 7] = [
        TenantStatus::Pending,
        TenantStatus::Provisioning,
        TenantStatus::Active,
        TenantStatus::Stopped,
        TenantStatus::Error,
        TenantStatus::Destroying,
        TenantStatus::Destroyed,
    ];
    const DESIRED: [DesiredState; 3] = [
        DesiredState::Running,
        DesiredState::Stopped,
        DesiredState::Destroyed,
    ];
    const IN_FLIGHT: [Option<Action>; 10] = [
        None,
        Some(Action::Create),
        Some(Action::Start),
        Some(Action::Stop),
        Some(Action::Restart),
        Some(Action::Destroy),
        Some(Action::Update),
        Some(Action::Recover),
        Some(Action::Move),
        Some(Action::Restore),
    ];

    /// Every combination of the row's fields.
    fn every_state() -> impl Iterator<Item = Current> {
        DESIRED.into_iter().flat_map(|desired| {
            STATUSES.into_iter().flat_map(move |status| {
                IN_FLIGHT.into_iter().flat_map(move |in_flight| {
                    [false, true].into_iter().map(move |ever_started| Current {
                        desired,
                        status,
                        in_flight,
                        ever_started,
                    })
                })
            })
        })
    }

    fn settled(desired: DesiredState, status: TenantStatus) -> Current {
        Current {
            desired,
            status,
            in_flight: None,
            ever_started: true,
        }
    }

    #[test]
    fn every_state_and_action_has_one_answer() {
        let mut allowed = 0;
        for current in every_state() {
            for action in OwnerAction::ALL {
                let gone = current.desired == DesiredState::Destroyed
                    || current.status == TenantStatus::Destroyed;
                let result = plan(&current, action);
                match &result {
                    Err(Refusal::Gone { .. }) => assert!(gone, "{current:?} {action}"),
                    Err(Refusal::InProgress { .. }) => assert!(
                        !gone && current.in_flight.is_some() && action != OwnerAction::Destroy,
                        "{current:?} {action}"
                    ),
                    Err(r) => {
                        assert!(!gone && current.in_flight.is_none(), "{current:?} {action}");
                        assert_eq!(r.code(), "invalid_state");
                    }
                    Ok(intent) => {
                        allowed += 1;
                        assert!(
                            !gone,
                            "a destroyed tenant accepts nothing: {current:?} {action}"
                        );
                        assert!(
                            current.in_flight.is_none() || action == OwnerAction::Destroy,
                            "only destroy supersedes an action in flight: {current:?} {action}"
                        );
                        let expected_desired = match action {
                            OwnerAction::Start | OwnerAction::Restart => DesiredState::Running,
                            OwnerAction::Stop => DesiredState::Stopped,
                            OwnerAction::Destroy => DesiredState::Destroyed,
                            OwnerAction::Retry => current.desired,
                        };
                        assert_eq!(intent.desired, expected_desired, "{current:?} {action}");
                    }
                }
                // Refusals always carry a message a person can act on.
                if let Err(r) = result {
                    assert!(r.to_string().len() > 10);
                }
            }
        }
        assert!(allowed > 0);
    }

    #[test]
    fn destroyed_tenants_accept_nothing() {
        for action in OwnerAction::ALL {
            let r = plan(
                &settled(DesiredState::Running, TenantStatus::Destroyed),
                action,
            );
            assert!(matches!(r, Err(Refusal::Gone { .. })), "{action}");
            let r = plan(
                &settled(DesiredState::Destroyed, TenantStatus::Destroying),
                action,
            );
            assert!(matches!(r, Err(Refusal::Gone { .. })), "{action}");
        }
        let r = plan(
            &settled(DesiredState::Destroyed, TenantStatus::Destroying),
            OwnerAction::Stop,
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "tenant is destroying; it cannot be stopped"
        );
    }

    #[test]
    fn destroy_supersedes_an_action_in_flight_and_nothing_else_does() {
        let busy = Current {
            in_flight: Some(Action::Create),
            ..settled(DesiredState::Running, TenantStatus::Provisioning)
        };
        assert_eq!(
            plan(&busy, OwnerAction::Destroy),
            Ok(Intent {
                desired: DesiredState::Destroyed,
                status: Some(TenantStatus::Destroying),
                logged_as: Action::Destroy,
            })
        );
        for action in [
            OwnerAction::Start,
            OwnerAction::Stop,
            OwnerAction::Restart,
            OwnerAction::Retry,
        ] {
            let refusal = plan(&busy, action).unwrap_err();
            assert_eq!(refusal.code(), "action_in_progress");
            assert_eq!(
                refusal.to_string(),
                format!("create is in progress; wait for it to finish before {action}")
            );
        }
    }

    #[test]
    fn start_and_stop_refuse_what_is_already_so() {
        let running = settled(DesiredState::Running, TenantStatus::Active);
        let stopped = settled(DesiredState::Stopped, TenantStatus::Stopped);
        assert_eq!(
            plan(&running, OwnerAction::Start),
            Err(Refusal::AlreadyRunning)
        );
        assert_eq!(
            plan(&stopped, OwnerAction::Stop),
            Err(Refusal::AlreadyStopped)
        );
        assert_eq!(
            plan(&stopped, OwnerAction::Restart),
            Err(Refusal::RestartWhileStopped)
        );
        assert_eq!(
            plan(&stopped, OwnerAction::Start),
            Ok(Intent {
                desired: DesiredState::Running,
                status: Some(TenantStatus::Provisioning),
                logged_as: Action::Start,
            })
        );
        // Stop keeps the shown status until the reconciler has stopped it.
        assert_eq!(
            plan(&running, OwnerAction::Stop),
            Ok(Intent {
                desired: DesiredState::Stopped,
                status: None,
                logged_as: Action::Stop,
            })
        );
        assert_eq!(
            plan(&running, OwnerAction::Restart),
            Ok(Intent {
                desired: DesiredState::Running,
                status: Some(TenantStatus::Provisioning),
                logged_as: Action::Restart,
            })
        );
        // A tenant in error can be started (its desired state may say running).
        let failed = settled(DesiredState::Running, TenantStatus::Error);
        assert!(plan(&failed, OwnerAction::Start).is_ok());
    }

    #[test]
    fn retry_only_requeues_a_failure_as_the_action_it_failed_at() {
        let never_ran = Current {
            ever_started: false,
            ..settled(DesiredState::Running, TenantStatus::Error)
        };
        let ran_before = settled(DesiredState::Running, TenantStatus::Error);
        assert_eq!(
            plan(&never_ran, OwnerAction::Retry).map(|i| i.logged_as),
            Ok(Action::Create)
        );
        assert_eq!(
            plan(&ran_before, OwnerAction::Retry),
            Ok(Intent {
                desired: DesiredState::Running,
                status: Some(TenantStatus::Provisioning),
                logged_as: Action::Start,
            })
        );
        for status in [
            TenantStatus::Pending,
            TenantStatus::Provisioning,
            TenantStatus::Active,
            TenantStatus::Stopped,
        ] {
            assert_eq!(
                plan(&settled(DesiredState::Running, status), OwnerAction::Retry),
                Err(Refusal::NotFailed(status))
            );
        }
    }

    #[test]
    fn audit_names_are_the_owner_actions() {
        let names: Vec<&str> = OwnerAction::ALL.iter().map(|a| a.audit_name()).collect();
        assert_eq!(
            names,
            [
                "tenant.start",
                "tenant.stop",
                "tenant.restart",
                "tenant.destroy",
                "tenant.retry"
            ]
        );
    }
}
