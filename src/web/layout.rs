//! What every page's frame needs: the title, who is signed in (for the
//! navigation), which section is current, and a one-time notice carried over a
//! redirect (post/redirect/get).

use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};

use crate::domain::Role;
use crate::http::caller::{cookie, Caller};

use super::assets;

/// The section a page belongs to, so the navigation can mark it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Account,
    Dashboard,
    Settings,
    Support,
    Admin,
}

/// The signed-in user as the navigation shows them.
pub struct NavUser {
    pub email: String,
    pub is_admin: bool,
}

pub struct Layout {
    pub title: String,
    pub section: Section,
    pub user: Option<NavUser>,
    pub notice: Option<Notice>,
}

impl Layout {
    pub fn new(title: impl Into<String>, section: Section) -> Self {
        Self {
            title: title.into(),
            section,
            user: None,
            notice: None,
        }
    }

    /// The frame for a signed-in user's page.
    pub fn member(title: impl Into<String>, section: Section, caller: &Caller) -> Self {
        Self::new(title, section).signed_in(Some(caller))
    }

    pub fn signed_in(mut self, caller: Option<&Caller>) -> Self {
        self.user = caller.map(|c| NavUser {
            email: c.user.email.clone(),
            is_admin: c.user.role == Role::Admin,
        });
        self
    }

    /// Shows the notice a redirect left in the `fp_notice` cookie, if any.
    pub fn with_notice(mut self, headers: &HeaderMap) -> Self {
        self.notice = Notice::from_headers(headers);
        self
    }

    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    pub fn is(&self, section: Section) -> bool {
        self.section == section
    }
}

/// A one-time message after a redirect. Only fixed messages can be shown: the
/// cookie carries a code, never text, so a cookie planted by another site (or
/// a tenant's subdomain) cannot put words on the platform's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    SignedOut,
    SignedIn,
    PasswordChanged,
    PasswordResetSent,
    PasswordReset,
    EmailVerified,
    VerificationSent,
    EmailChangeSent,
    ProfileSaved,
    ActionRequested,
    InstanceDestroying,
    SettingsSaved,
    PreferencesSaved,
    MessageSent,
    KeyRevoked,
    RoleChanged,
    BackupRequested,
    BackupsDeleting,
    RestoreStarted,
    RestoreIntoNew,
}

const NOTICE_COOKIE: &str = "fp_notice";

impl Notice {
    const ALL: [Notice; 20] = [
        Self::SignedOut,
        Self::SignedIn,
        Self::PasswordChanged,
        Self::PasswordResetSent,
        Self::PasswordReset,
        Self::EmailVerified,
        Self::VerificationSent,
        Self::EmailChangeSent,
        Self::ProfileSaved,
        Self::ActionRequested,
        Self::InstanceDestroying,
        Self::SettingsSaved,
        Self::PreferencesSaved,
        Self::MessageSent,
        Self::KeyRevoked,
        Self::RoleChanged,
        Self::BackupRequested,
        Self::BackupsDeleting,
        Self::RestoreStarted,
        Self::RestoreIntoNew,
    ];

    fn code(self) -> &'static str {
        match self {
            Self::SignedOut => "signed-out",
            Self::SignedIn => "signed-in",
            Self::PasswordChanged => "password-changed",
            Self::PasswordResetSent => "reset-sent",
            Self::PasswordReset => "password-reset",
            Self::VerificationSent => "verification-sent",
            Self::EmailVerified => "email-verified",
            Self::EmailChangeSent => "email-change-sent",
            Self::ProfileSaved => "profile-saved",
            Self::ActionRequested => "action-requested",
            Self::InstanceDestroying => "instance-destroying",
            Self::SettingsSaved => "settings-saved",
            Self::PreferencesSaved => "preferences-saved",
            Self::MessageSent => "message-sent",
            Self::KeyRevoked => "key-revoked",
            Self::RoleChanged => "role-changed",
            Self::BackupRequested => "backup-requested",
            Self::BackupsDeleting => "backups-deleting",
            Self::RestoreStarted => "restore-started",
            Self::RestoreIntoNew => "restore-into-new",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            Self::SignedOut => "You are signed out.",
            Self::SignedIn => "You are signed in.",
            Self::PasswordChanged => "Your password is changed. Other sessions were signed out.",
            Self::PasswordResetSent => {
                "If an account uses that address, a reset link is on its way. It works for one hour."
            }
            Self::PasswordReset => {
                "Your password is reset; every session and API key was revoked. Sign in with the new password."
            }
            Self::EmailVerified => "Your email address is verified.",
            Self::VerificationSent => {
                "A new verification link is on its way to your address. Open it to confirm the address."
            }
            Self::EmailChangeSent => {
                "We sent a link to the new address. The change takes effect when you open it."
            }
            Self::ProfileSaved => "Your profile is saved.",
            Self::ActionRequested => "Done. The instance's status below updates as it happens.",
            Self::InstanceDestroying => {
                "The instance is being destroyed: its container, database and data are removed."
            }
            Self::SettingsSaved => "Settings saved. The instance restarts to apply them.",
            Self::PreferencesSaved => "Your email preferences are saved.",
            Self::MessageSent => "Your message is sent. We answer by email.",
            Self::KeyRevoked => "The API key is revoked.",
            Self::RoleChanged => "The user's role is changed.",
            Self::BackupRequested => {
                "Backup requested. It is taken in the background; the list below shows when it is complete."
            }
            Self::BackupsDeleting => {
                "The backups are being deleted. The instance can no longer be brought back."
            }
            Self::RestoreStarted => {
                "The restore has begun: the current data is backed up first, then replaced, and the instance restarts. The status below updates as it happens."
            }
            Self::RestoreIntoNew => {
                "A new instance is being made from the backup. Its status below updates as it happens."
            }
        }
    }

    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let code = cookie(headers, NOTICE_COOKIE)?;
        Self::ALL.into_iter().find(|n| n.code() == code)
    }

    /// Set-Cookie that leaves this notice for the next page.
    pub fn cookie(self) -> (axum::http::HeaderName, HeaderValue) {
        let value = format!(
            "{NOTICE_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60",
            self.code()
        );
        (
            SET_COOKIE,
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
        )
    }

    /// Set-Cookie that removes a shown notice.
    pub fn clear() -> (axum::http::HeaderName, HeaderValue) {
        (
            SET_COOKIE,
            HeaderValue::from_static("fp_notice=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_reads_back_from_its_cookie_and_unknown_codes_show_nothing() {
        for notice in Notice::ALL {
            let (_, value) = notice.cookie();
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let mut headers = HeaderMap::new();
            headers.insert("cookie", HeaderValue::from_str(&pair).unwrap());
            assert_eq!(Notice::from_headers(&headers), Some(notice));
        }
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("fp_notice=<script>"));
        assert_eq!(Notice::from_headers(&headers), None);
    }
}
