//! A small real SMTP server on loopback that keeps every mail it receives, so a
//! test can send through the platform's real SMTP path and read what arrived.
//! It speaks plain ESMTP (no STARTTLS, no AUTH), which is what lettre needs for
//! an `smtp://127.0.0.1:<port>` URL. Dropping the sink stops it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The MAIL FROM address, without angle brackets.
    pub from: String,
    /// The RCPT TO addresses, without angle brackets.
    pub to: Vec<String>,
    /// The message as sent after DATA (headers and body, CRLF line ends), with
    /// dot-stuffing undone and without the final CRLF.CRLF.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_message(&self.data);
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_owned());
                }
            }
        }
        found
    }

    /// The body after the header block, quoted-printable decoded when the mail
    /// says it is, with `\n` line ends.
    pub fn body(&self) -> String {
        let (_, body) = split_message(&self.data);
        let quoted_printable = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("quoted-printable"));
        let body = if quoted_printable {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        };
        body.replace("\r\n", "\n")
    }

    /// The text after the first `prefix` in the body, up to whitespace, e.g.
    /// `find_token("token=")` on a link.
    pub fn find_token(&self, prefix: &str) -> Option<String> {
        let body = self.body();
        let start = body.find(prefix)? + prefix.len();
        let token: String = body[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(token)
    }
}

fn split_message(data: &str) -> (&str, &str) {
    data.split_once("\r\n\r\n").unwrap_or((data, ""))
}

fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Mailbox {
    mails: Mutex<Vec<(ReceivedMail, bool)>>,
    arrived: Notify,
    /// How long the sink waits before accepting a mail (a slow SMTP server).
    delay: Duration,
}

impl Mailbox {
    fn take_first_to(&self, to: &str) -> Option<ReceivedMail> {
        let mut mails = self.mails.lock().unwrap();
        let (mail, taken) = mails.iter_mut().find(|(mail, taken)| {
            !*taken && mail.to.iter().any(|rcpt| rcpt.eq_ignore_ascii_case(to))
        })?;
        *taken = true;
        Some(mail.clone())
    }
}

pub struct SmtpSink {
    addr: SocketAddr,
    mailbox: Arc<Mailbox>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        Self::start_slow(Duration::ZERO).await
    }

    /// A sink that takes `delay` to accept each mail, as a slow server would.
    pub async fn start_slow(delay: Duration) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink on 127.0.0.1");
        let addr = listener.local_addr().expect("SMTP sink address");
        let mailbox = Arc::new(Mailbox {
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            delay,
        });
        let server = tokio::spawn(serve(listener, mailbox.clone()));
        SmtpSink {
            addr,
            mailbox,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The first mail to `to` that no earlier `wait_for` returned.
    pub async fn wait_for(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a mail arriving in between wakes us.
            let arrived = self.mailbox.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(mail) = self.mailbox.take_first_to(to) {
                return mail;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let seen: Vec<String> = self
                    .all()
                    .iter()
                    .map(|m| format!("to {:?}, subject {:?}", m.to, m.header("Subject")))
                    .collect();
                panic!(
                    "no new mail to {to} reached the SMTP sink within {timeout:?}; it received: {seen:?}"
                );
            }
        }
    }

    /// Every mail received so far, taken or not, in arrival order.
    pub fn all(&self) -> Vec<ReceivedMail> {
        let mails = self.mailbox.mails.lock().unwrap();
        mails.iter().map(|(mail, _)| mail.clone()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // The accept task owns the connection tasks, so this ends them too.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, mailbox: Arc<Mailbox>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(session(stream, mailbox.clone()));
                }
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn session(stream: TcpStream, mailbox: Arc<Mailbox>) {
    // A broken connection ends the session; the test sees the missing mail.
    let _ = converse(stream, &mailbox).await;
}

async fn converse(stream: TcpStream, mailbox: &Mailbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    write.write_all(b"220 127.0.0.1 ESMTP sink\r\n").await?;
    loop {
        let mut raw = Vec::new();
        if lines.read_until(b'\n', &mut raw).await? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => b"250-127.0.0.1\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n",
            "HELO" => b"250 127.0.0.1\r\n",
            "MAIL" => {
                from = Some(angle_address(arg));
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" if from.is_none() => b"503 MAIL first\r\n",
            "RCPT" => {
                to.push(angle_address(arg));
                b"250 OK\r\n"
            }
            "DATA" if to.is_empty() => b"503 RCPT first\r\n",
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut lines).await?;
                tokio::time::sleep(mailbox.delay).await;
                let mail = ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                };
                mailbox.mails.lock().unwrap().push((mail, false));
                mailbox.arrived.notify_waiters();
                b"250 OK queued\r\n"
            }
            "RSET" => {
                from = None;
                to.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address in `FROM:<a@b> SIZE=1` or `TO:<a@b>`.
fn angle_address(arg: &str) -> String {
    let after_colon = arg.split_once(':').map_or(arg, |(_, rest)| rest).trim();
    match (after_colon.find('<'), after_colon.find('>')) {
        (Some(open), Some(close)) if open < close => after_colon[open + 1..close].to_owned(),
        _ => after_colon
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Reads DATA lines up to the lone `.`, undoing dot-stuffing; the CRLF before
/// the `.` belongs to the terminator.
async fn read_data<R: AsyncBufReadExt + Unpin>(lines: &mut R) -> std::io::Result<String> {
    let mut data = Vec::new();
    loop {
        let mut raw = Vec::new();
        if lines.read_until(b'\n', &mut raw).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if raw == b".\r\n" || raw == b".\n" {
            break;
        }
        let line = raw.strip_prefix(b".").unwrap_or(&raw);
        data.extend_from_slice(line);
    }
    if data.ends_with(b"\r\n") {
        data.truncate(data.len() - 2);
    } else if data.ends_with(b"\n") {
        data.truncate(data.len() - 1);
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}
