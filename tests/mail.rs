//! Mail over real SMTP: the platform's `Mailer` talks to the test SMTP sink on
//! loopback. Needs no other service.

#[path = "common/smtp.rs"]
mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use fresco_platform::mail::{MailConfig, Mailer, OutgoingMail};
use smtp::SmtpSink;

fn smtp_config(sink: &SmtpSink) -> MailConfig {
    MailConfig {
        smtp_url: Some(sink.url()),
        mail_from: "Fresco Platform <no-reply@fresco.localhost>".into(),
        mail_dir: PathBuf::from("unused-when-smtp-is-set"),
    }
}

#[tokio::test]
async fn mail_sent_over_smtp_arrives_at_the_listener() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&smtp_config(&sink)).unwrap();
    // The non-ASCII dash makes lettre pick quoted-printable and the long link
    // gets soft line breaks, so the sink's decoding is exercised too; the lone
    // dot exercises dot-stuffing.
    let link = format!(
        "https://fresco.localhost/account/confirm?token=tok{}",
        "x".repeat(80)
    );
    let body = format!("Welcome to Fresco \u{2014} your own workspace.\n\nConfirm your address: {link}\n.\nThe Fresco team");
    mailer
        .send(OutgoingMail {
            to: "Ada Lovelace <ada@example.com>".into(),
            subject: "Confirm your address".into(),
            body: body.clone(),
        })
        .await
        .unwrap();

    let mail = sink
        .wait_for("ada@example.com", Duration::from_secs(10))
        .await;
    assert_eq!(mail.from, "no-reply@fresco.localhost");
    assert_eq!(mail.to, vec!["ada@example.com".to_string()]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm your address")
    );
    assert_eq!(
        mail.header("To").as_deref(),
        Some("\"Ada Lovelace\" <ada@example.com>")
    );
    assert!(mail.header("Date").is_some(), "{}", mail.data);
    assert_eq!(
        mail.header("Content-Transfer-Encoding").as_deref(),
        Some("quoted-printable")
    );
    assert_eq!(mail.body(), body);
    assert_eq!(
        mail.find_token("token=").as_deref(),
        Some(format!("tok{}", "x".repeat(80)).as_str())
    );
}

#[tokio::test]
async fn each_mail_is_returned_once_in_arrival_order() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&smtp_config(&sink)).unwrap();
    for n in 1..=2 {
        mailer
            .send(OutgoingMail {
                to: "bob@example.com".into(),
                subject: format!("Mail {n}"),
                body: format!("number {n}"),
            })
            .await
            .unwrap();
    }

    let first = sink
        .wait_for("bob@example.com", Duration::from_secs(10))
        .await;
    let second = sink
        .wait_for("bob@example.com", Duration::from_secs(10))
        .await;
    assert_eq!(first.body(), "number 1");
    assert_eq!(second.body(), "number 2");
    assert_eq!(sink.all().len(), 2);
}
