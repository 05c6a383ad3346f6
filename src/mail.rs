//! Outgoing mail: one plain-text message at a time, sent through an SMTP
//! server when `SMTP_URL` is set, otherwise written as an `.eml` file into
//! `MAIL_DIR` so a development setup works without a mail server.
//!
//! Bodies carry one-time tokens (sign-up links, password resets), so neither
//! `Debug`, the logs nor `MailError` ever show a body, and nothing shows the
//! SMTP password. lettre's own `tracing` feature stays off for the same reason:
//! it logs the whole SMTP conversation, AUTH and DATA included.

use std::fmt;
use std::path::{Path, PathBuf};

use lettre::address::AddressError;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tracing::info;

#[derive(Clone, clap::Args)]
pub struct MailConfig {
    /// SMTP server that sends the platform's mail; unset writes each mail into
    /// MAIL_DIR instead.
    ///
    /// `smtp://host:port` is plain SMTP without TLS (port 25 by default);
    /// `smtp://user:password@host:587?tls=required` uses STARTTLS and fails
    /// without it (`tls=opportunistic` uses it only when offered; port 587 by
    /// default with either); `smtps://user:password@host:465` is TLS from the
    /// first byte (port 465 by default). Percent-encode special characters
    /// in the user and password. A path sets the EHLO name
    /// (`smtp://host:25/mail.example.com`); otherwise it is this machine's
    /// hostname. Certificates are checked against the Mozilla root set built
    /// into the binary.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of every mail, as `Name <address>` or a bare address.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Fresco Platform <no-reply@fresco.localhost>"
    )]
    pub mail_from: String,
    /// Folder that receives each mail as an .eml file when SMTP_URL is unset
    /// (development; scripts/dev uses .local/mail).
    #[arg(
        long,
        env = "MAIL_DIR",
        default_value = "/var/tmp/fresco-platform-mail"
    )]
    pub mail_dir: PathBuf,
}

impl fmt::Debug for MailConfig {
    // The SMTP URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let smtp_url = if self.smtp_url.is_some() {
            "<set>"
        } else {
            "<unset>"
        };
        f.debug_struct("MailConfig")
            .field("smtp_url", &smtp_url)
            .field("mail_from", &self.mail_from)
            .field("mail_dir", &self.mail_dir)
            .finish()
    }
}

/// A plain-text mail to one recipient.
pub struct OutgoingMail {
    /// `user@example.com` or `Name <user@example.com>`.
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl fmt::Debug for OutgoingMail {
    // The body carries one-time tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("MAIL_FROM {value:?} is not a valid mailbox ({reason}); use `Name <user@example.com>` or `user@example.com`")]
    InvalidFrom { value: String, reason: AddressError },
    #[error("recipient {address:?} is not a valid email address ({reason})")]
    InvalidRecipient {
        address: String,
        reason: AddressError,
    },
    #[error("SMTP_URL is not usable ({reason}); expected smtp://host:port, smtp://user:password@host:587?tls=required or smtps://user:password@host:465")]
    InvalidSmtpUrl { reason: String },
    #[error("could not build the mail: {reason}")]
    Message { reason: lettre::error::Error },
    #[error("cannot reach the SMTP server at {endpoint} ({reason}); check that it runs and that SMTP_URL names the right host and port")]
    SmtpUnreachable { endpoint: String, reason: String },
    #[error("TLS with the SMTP server at {endpoint} failed ({reason}); check the tls= setting and the port in SMTP_URL")]
    SmtpTls { endpoint: String, reason: String },
    #[error("the SMTP server at {endpoint} did not accept the mail to {to} ({reason})")]
    SmtpRejected {
        endpoint: String,
        to: String,
        reason: String,
    },
    #[error("the SMTP exchange with {endpoint} failed ({reason})")]
    Smtp { endpoint: String, reason: String },
    #[error("cannot write mail into the folder {} ({reason}); make MAIL_DIR writable or set SMTP_URL", path.display())]
    Folder {
        path: PathBuf,
        reason: std::io::Error,
    },
}

/// Sends mail; cheap to clone (the SMTP transport is shared).
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    Smtp {
        smtp: AsyncSmtpTransport<Tokio1Executor>,
        /// `host:port`, for error messages (the URL itself may hold a password).
        endpoint: String,
    },
    Folder(PathBuf),
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Mailer");
        s.field("from", &self.from.to_string());
        match &self.transport {
            Transport::Smtp { endpoint, .. } => s.field("smtp", endpoint),
            Transport::Folder(dir) => s.field("folder", dir),
        };
        s.finish()
    }
}

impl Mailer {
    /// Checks the configuration; connects to nothing until the first send.
    pub fn new(config: &MailConfig) -> Result<Mailer, MailError> {
        let from =
            config
                .mail_from
                .parse::<Mailbox>()
                .map_err(|reason| MailError::InvalidFrom {
                    value: config.mail_from.clone(),
                    reason,
                })?;
        // An empty SMTP_URL (as compose passes an unset one) means no SMTP.
        let transport = match config.smtp_url.as_ref().filter(|u| !u.trim().is_empty()) {
            Some(url) => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::InvalidSmtpUrl {
                        reason: e.to_string(),
                    })?
                    .build();
                Transport::Smtp {
                    smtp,
                    endpoint: smtp_endpoint(url),
                }
            }
            None => Transport::Folder(config.mail_dir.clone()),
        };
        Ok(Mailer { from, transport })
    }

    pub async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        self.deliver(mail, None).await
    }

    /// `send`, with a Reply-To: answers go to `reply_to` (the support form's
    /// sender), not to the platform's no-reply sender.
    pub async fn send_with_reply_to(
        &self,
        mail: OutgoingMail,
        reply_to: &str,
    ) -> Result<(), MailError> {
        let reply_to =
            reply_to
                .parse::<Mailbox>()
                .map_err(|reason| MailError::InvalidRecipient {
                    address: reply_to.to_owned(),
                    reason,
                })?;
        self.deliver(mail, Some(reply_to)).await
    }

    async fn deliver(
        &self,
        mail: OutgoingMail,
        reply_to: Option<Mailbox>,
    ) -> Result<(), MailError> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|reason| MailError::InvalidRecipient {
                address: mail.to.clone(),
                reason,
            })?;
        let mut builder = Message::builder().from(self.from.clone()).to(to);
        if let Some(reply_to) = reply_to {
            builder = builder.reply_to(reply_to);
        }
        let message = builder
            .subject(mail.subject.as_str())
            .date_now()
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|reason| MailError::Message { reason })?;

        match &self.transport {
            Transport::Smtp { smtp, endpoint } => {
                smtp.send(message)
                    .await
                    .map_err(|e| smtp_error(e, endpoint, &mail.to))?;
                info!(to = %mail.to, subject = %mail.subject, smtp = %endpoint, "mail sent");
            }
            Transport::Folder(dir) => {
                let path = write_eml(dir, &message.formatted()).await?;
                info!(to = %mail.to, subject = %mail.subject, path = %path.display(), "mail written to folder (SMTP_URL unset)");
            }
        }
        Ok(())
    }
}

fn smtp_error(e: lettre::transport::smtp::Error, endpoint: &str, to: &str) -> MailError {
    let endpoint = endpoint.to_owned();
    let reason = e.to_string();
    if e.is_permanent() || e.is_transient() {
        MailError::SmtpRejected {
            endpoint,
            to: to.to_owned(),
            reason,
        }
    } else if e.is_tls() {
        MailError::SmtpTls { endpoint, reason }
    } else if e.is_response() || e.is_client() {
        MailError::Smtp { endpoint, reason }
    } else {
        MailError::SmtpUnreachable { endpoint, reason }
    }
}

/// `host:port` of an SMTP URL that lettre accepted, with the default ports
/// lettre uses, and without the user and password.
fn smtp_endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    // An IPv6 host is bracketed, so a port follows the last `]` if any.
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'));
    if has_port {
        return host_port.to_owned();
    }
    let port = match scheme {
        "smtps" => 465,
        _ if url.contains("tls=") => 587,
        _ => 25,
    };
    format!("{host_port}:{port}")
}

/// Writes one message into `dir` (created 0700 if missing) as a new 0600 file
/// named by the time and a random suffix, so names sort by time and never clash.
async fn write_eml(dir: &Path, message: &[u8]) -> Result<PathBuf, MailError> {
    let folder_error = |reason| MailError::Folder {
        path: dir.to_owned(),
        reason,
    };
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .await
        .map_err(folder_error)?;
    let name = format!(
        "{}-{:08x}.eml",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        rand::thread_rng().gen::<u32>()
    );
    let path = dir.join(name);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .map_err(folder_error)?;
    file.write_all(message).await.map_err(folder_error)?;
    // tokio writes in the background: flush to see its error, if any.
    file.flush().await.map_err(folder_error)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn folder_config(dir: &Path) -> MailConfig {
        MailConfig {
            smtp_url: None,
            mail_from: "Fresco Platform <no-reply@fresco.localhost>".into(),
            mail_dir: dir.to_owned(),
        }
    }

    #[test]
    fn an_empty_smtp_url_means_folder_mode() {
        let dir = temp_dir("empty-url");
        let config = MailConfig {
            smtp_url: Some("  ".into()),
            ..folder_config(&dir)
        };
        let mailer = Mailer::new(&config).expect("an empty SMTP_URL is no SMTP_URL");
        assert!(format!("{mailer:?}").contains("empty-url"), "{mailer:?}");
    }

    /// A folder under the system temp dir that does not exist yet.
    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "fresco-mail-{name}-{:08x}",
            rand::thread_rng().gen::<u32>()
        ))
    }

    #[tokio::test]
    async fn folder_mode_writes_a_private_eml_with_recipient_subject_and_body() {
        let dir = temp_dir("folder");
        let mailer = Mailer::new(&folder_config(&dir)).unwrap();
        mailer
            .send(OutgoingMail {
                to: "Ada <ada@example.com>".into(),
                subject: "Confirm your address".into(),
                body: "Open https://fresco.localhost/confirm?token=abc123 to confirm.".into(),
            })
            .await
            .unwrap();

        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let path = &files[0];
        assert_eq!(path.extension().unwrap(), "eml");
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("To: Ada <ada@example.com>\r\n"), "{text}");
        assert!(
            text.contains("From: \"Fresco Platform\" <no-reply@fresco.localhost>\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: Confirm your address\r\n"), "{text}");
        assert!(text.contains("\r\nDate: "), "{text}");
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{text}"
        );
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            body,
            "Open https://fresco.localhost/confirm?token=abc123 to confirm."
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn line_breaks_in_the_subject_cannot_add_headers() {
        let dir = temp_dir("subject");
        let mailer = Mailer::new(&folder_config(&dir)).unwrap();
        mailer
            .send(OutgoingMail {
                to: "ada@example.com".into(),
                subject: "Hello\r\nBcc: mallory@example.com".into(),
                body: "Hi".into(),
            })
            .await
            .unwrap();

        let path = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_reply_to_goes_into_its_header_and_a_bad_one_sends_nothing() {
        let dir = temp_dir("reply-to");
        let mailer = Mailer::new(&folder_config(&dir)).unwrap();
        let mail = |body: &str| OutgoingMail {
            to: "support@example.org".into(),
            subject: "Question".into(),
            body: body.into(),
        };
        let bad = mailer
            .send_with_reply_to(mail("x"), "ada@example.org\r\nBcc: m@example.org")
            .await;
        assert!(
            matches!(bad, Err(MailError::InvalidRecipient { .. })),
            "{bad:?}"
        );
        mailer
            .send_with_reply_to(mail("Hi"), "ada@example.org")
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(text.contains("Reply-To: ada@example.org\r\n"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn bad_recipient_address_is_an_error_that_names_it() {
        let dir = temp_dir("bad-recipient");
        let mailer = Mailer::new(&folder_config(&dir)).unwrap();
        let err = mailer
            .send(OutgoingMail {
                to: "not an address".into(),
                subject: "Hello".into(),
                body: "secret-token-xyz".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::InvalidRecipient { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("\"not an address\""), "{message}");
        assert!(!message.contains("secret-token-xyz"), "{message}");
        assert!(!dir.exists(), "nothing is written for a bad address");
    }

    #[tokio::test]
    async fn unreachable_smtp_server_is_named_without_its_password() {
        // Port 1 on loopback: nothing listens there, so the connect is refused.
        let mailer = Mailer::new(&MailConfig {
            smtp_url: Some("smtp://user:hunter2@127.0.0.1:1".into()),
            ..folder_config(Path::new("unused"))
        })
        .unwrap();
        let err = mailer
            .send(OutgoingMail {
                to: "ada@example.com".into(),
                subject: "Hello".into(),
                body: "secret-token-xyz".into(),
            })
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, MailError::SmtpUnreachable { .. }), "{err:?}");
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }

    #[test]
    fn config_debug_hides_the_smtp_url() {
        let config = MailConfig {
            smtp_url: Some("smtps://user:hunter2@mail.example.com".into()),
            ..folder_config(Path::new("outbox"))
        };
        let debug = format!("{config:?}");
        assert!(debug.contains("<set>"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn mail_debug_hides_the_body() {
        let mail = OutgoingMail {
            to: "ada@example.com".into(),
            subject: "Reset".into(),
            body: "token-123".into(),
        };
        assert!(!format!("{mail:?}").contains("token-123"));
    }

    #[test]
    fn smtp_endpoint_drops_credentials_and_fills_default_ports() {
        assert_eq!(smtp_endpoint("smtp://127.0.0.1:2525"), "127.0.0.1:2525");
        assert_eq!(
            smtp_endpoint("smtps://u:p@mail.example.com"),
            "mail.example.com:465"
        );
        assert_eq!(
            smtp_endpoint("smtp://u:p@mail.example.com?tls=required"),
            "mail.example.com:587"
        );
        assert_eq!(
            smtp_endpoint("smtp://mail.example.com"),
            "mail.example.com:25"
        );
        assert_eq!(smtp_endpoint("smtp://[::1]:2525/helo"), "[::1]:2525");
        assert_eq!(smtp_endpoint("smtp://[::1]"), "[::1]:25");
    }
}
