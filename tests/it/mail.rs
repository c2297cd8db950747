//! Patient mail against a real SMTP server (aiosmtpd, started per test as a child process
//! writing every accepted message into a Maildir), checked with mail-parser, qpdf and poppler.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{self, hidden, valid_body, TestApp};
use au_relay::domain::PasswordPolicy;
use au_relay::mail::{MailSettings, Mailer, TlsMode};
use au_relay::queue::{run_mail_once, WorkerSettings};
use au_relay::storage;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{json, Value};

/// The password of the birth-date policy for `valid_body()` (born 1980-04-01).
const PASSWORD: &str = "01041980";

/// A real SMTP server: `python3 -m aiosmtpd` with its Maildir handler.
struct Smtp {
    child: Child,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Smtp {
    fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        let python = std::env::var("AU_RELAY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut smtp = Self {
            child,
            maildir,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return smtp;
            }
            if let Some(status) = smtp.child.try_wait().unwrap() {
                panic!("aiosmtpd exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not listen on {port}");
    }

    /// Every message the server accepted, as received.
    fn messages(&self) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mailer(port: u16, tls: TlsMode) -> Mailer {
    Mailer::new(&MailSettings {
        host: "127.0.0.1".into(),
        port,
        tls,
        credentials: None,
        from: "Praxis Dr. Muster <praxis@example.de>".parse().unwrap(),
        timeout: Duration::from_secs(5),
        password_policy: PasswordPolicy::BirthDate,
    })
    .unwrap()
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        backoff_unit: Duration::from_millis(1),
        idle_poll: Duration::from_millis(5),
        ..WorkerSettings::default()
    }
}

fn with_mail(employer_copy: bool) -> Value {
    let mut body = valid_body();
    body["mail"] =
        json!({"address": "juergen@example.de", "consent": true, "employer_copy": employer_copy});
    body
}

/// Captures over the API; returns the certificate id.
async fn capture(app: &TestApp, body: &Value) -> String {
    let r = app.post_api(body).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

async fn mails(app: &TestApp, id: &str) -> Vec<Value> {
    let v = app
        .get_api_json(&format!("/api/v1/certificates/{id}"))
        .await;
    v["mails"].as_array().unwrap().clone()
}

/// Runs mail rounds until nothing is due or `rounds` are done.
async fn drain(app: &TestApp, mailer: &Mailer, rounds: usize) {
    for _ in 0..rounds {
        run_mail_once(&app.db, mailer, &settings()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd).args(args).output().expect(cmd)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// The text of an encrypted PDF, opened with `password`.
fn pdf_text(path: &str, password: &str) -> String {
    let out = run("pdftotext", &["-upw", password, "-enc", "UTF-8", path, "-"]);
    assert!(out.status.success(), "pdftotext -upw: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_patient_gets_one_german_mail_with_encrypted_copies_that_open_only_with_the_password() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let smtp = Smtp::start(port);
    let id = capture(&app, &with_mail(true)).await;
    let m = mailer(port, TlsMode::None);
    drain(&app, &m, 3).await;

    let received = smtp.messages();
    assert_eq!(received.len(), 1, "sent exactly once");
    let msg = MessageParser::default().parse(&received[0]).unwrap();
    let today = common::today().format("%d.%m.%Y").to_string();
    let subject = msg.subject().unwrap();
    assert_eq!(
        subject,
        format!("Ihre Arbeitsunfähigkeitsbescheinigung vom {today}")
    );
    for secret in ["J06", "A123456780", "AOK", "109500969", "Müller"] {
        assert!(!subject.contains(secret), "{secret} in the subject");
    }
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("juergen@example.de")
    );
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("praxis@example.de")
    );
    let text = msg.body_text(0).unwrap();
    assert!(
        text.contains("Guten Tag Jürgen Müller-Lüdenscheidt"),
        "{text}"
    );
    assert!(text.contains("Geburtsdatum in der Form TTMMJJJJ"), "{text}");
    assert!(!text.contains("J06"), "no diagnosis in the text");
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("Jürgen"), "{html}");

    let stored = mails(&app, &id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["state"], "delivered");
    assert_eq!(stored[0]["attempts"], 1);
    let message_id = msg.message_id().unwrap();
    // `<delivery id>@<sender domain>`; the app under test has no sender configured.
    assert!(message_id.ends_with("@au-relay.invalid"), "{message_id}");

    let names: Vec<&str> = msg
        .attachments()
        .map(|a| a.attachment_name().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "AU-Bescheinigung-Versicherte.pdf",
            "AU-Bescheinigung-Arbeitgeber.pdf"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, attachment) in msg.attachments().enumerate() {
        assert_eq!(attachment.content_type().unwrap().ctype(), "application");
        let file = write(dir.path(), &format!("{i}.pdf"), attachment.contents());
        // Locked without the password …
        assert!(
            !run("pdftotext", &[&file, "-"]).status.success(),
            "opens without password"
        );
        assert!(!run("qpdf", &["--decrypt", &file, "/dev/null"])
            .status
            .success());
        let info = run("pdfinfo", &["-upw", PASSWORD, &file]);
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains("AES-256"), "{info}");
        // … and readable with it, by two independent implementations.
        let plain = dir.path().join(format!("{i}-plain.pdf"));
        let decrypted = run(
            "qpdf",
            &[
                &format!("--password={PASSWORD}"),
                "--decrypt",
                &file,
                plain.to_str().unwrap(),
            ],
        );
        assert!(decrypted.status.success(), "{decrypted:?}");
        assert!(run("qpdf", &["--check", plain.to_str().unwrap()])
            .status
            .success());
        let content = pdf_text(&file, PASSWORD);
        assert!(content.contains("Müller-Lüdenscheidt"), "{content}");
        assert_eq!(
            content.contains("J06.9"),
            i == 0,
            "diagnosis only on the patient's copy"
        );
    }

    // Further rounds send nothing more.
    drain(&app, &m, 3).await;
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn while_the_mail_server_is_down_the_mail_waits_and_goes_out_once_when_it_is_back() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let m = mailer(port, TlsMode::None);
    let id = capture(&app, &with_mail(false)).await;
    // Capture never talks to the mail server: the mail is queued, untried.
    let queued = mails(&app, &id).await;
    assert_eq!(queued[0]["state"], "pending");
    assert_eq!(queued[0]["attempts"], 0);

    drain(&app, &m, 4).await;
    let waiting = mails(&app, &id).await;
    assert_eq!(waiting[0]["state"], "pending");
    assert!(waiting[0]["attempts"].as_i64().unwrap() >= 2, "{waiting:?}");
    let error = waiting[0]["last_error"].as_str().unwrap();
    assert!(error.contains("SMTP-Server nicht erreichbar"), "{error}");
    // Staff read it in plain German on the detail page, never the mail server's own words.
    app.login().await;
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(page.contains("Mailserver nicht erreichbar – wird automatisch erneut versucht"));
    assert!(!page.contains("SMTP-Server"), "{page}");

    let smtp = Smtp::start(port);
    drain(&app, &m, 20).await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "exactly once after the server returned"
    );
    let sent = mails(&app, &id).await;
    assert_eq!(sent[0]["state"], "delivered");
    // Every attempt is kept with its answer.
    let delivery = storage::mails_of(
        &mut app.db.conn().unwrap(),
        &common::demo_practice_id(&app.db),
        id.parse().unwrap(),
    )
    .unwrap()
    .remove(0)
    .delivery_id;
    let attempts = storage::attempts_of(&mut app.db.conn().unwrap(), &delivery).unwrap();
    assert_eq!(attempts.len() as i64, sent[0]["attempts"].as_i64().unwrap());
}

#[tokio::test]
async fn a_mail_claimed_by_a_crashed_worker_is_taken_over_with_the_same_message_id() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let smtp = Smtp::start(port);
    capture(&app, &with_mail(false)).await;
    // A worker claims the mail and dies before it records anything.
    let claimed = storage::claim_mails(
        &mut app.db.conn().unwrap(),
        chrono::Duration::milliseconds(1),
        10,
    )
    .unwrap();
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    drain(&app, &mailer(port, TlsMode::None), 2).await;
    let received = smtp.messages();
    assert_eq!(received.len(), 1);
    let msg = MessageParser::default().parse(&received[0]).unwrap();
    assert_eq!(
        format!("<{}>", msg.message_id().unwrap()),
        claimed[0].message_id,
        "the Message-ID was fixed at capture"
    );
}

#[tokio::test]
async fn a_wrong_tls_setting_is_reported_naming_the_setting() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let smtp = Smtp::start(port);
    let id = capture(&app, &with_mail(false)).await;
    drain(&app, &mailer(port, TlsMode::Starttls), 1).await;
    let error = mails(&app, &id).await[0]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("AU_RELAY_SMTP_TLS=starttls"), "{error}");
    drain(&app, &mailer(port, TlsMode::Tls), 1).await;
    let error = mails(&app, &id).await[0]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("AU_RELAY_SMTP_TLS"), "{error}");
    assert!(smtp.messages().is_empty());
    assert_eq!(
        mails(&app, &id).await[0]["state"],
        "pending",
        "still waiting"
    );
}

#[tokio::test]
async fn bad_addresses_and_missing_consent_are_refused_at_capture_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let before = app.rows();
    for (mail, field) in [
        (
            json!({"address": "juergen(at)example.de", "consent": true}),
            "mail.address",
        ),
        (
            json!({"address": "j@example.de\r\nBcc: x@example.org", "consent": true}),
            "mail.address",
        ),
        (json!({"address": "juergen@example.de"}), "mail.consent"),
        (json!({"consent": true}), "mail.address"),
    ] {
        let mut body = valid_body();
        body["mail"] = mail;
        let r = app.post_api(&body).await;
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{v}");
        assert_eq!(errors[0]["field"], field);
        let message = errors[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("E-Mail-Adresse") || message.starts_with("Einwilligung"),
            "{message}"
        );
    }
    assert_eq!(app.rows(), before, "no row written");

    // Without consent, no mail.
    let id = capture(&app, &valid_body()).await;
    assert!(mails(&app, &id).await.is_empty());
}

#[tokio::test]
async fn the_form_takes_address_and_consent_and_staff_resend_by_hand() {
    let app = TestApp::spawn().await;
    let csrf = app.login().await;
    let page = app.get_text("/certificates/new").await;
    assert!(page.contains("Kopie per E-Mail"));
    assert!(page.contains("Geburtsdatum als TTMMJJJJ"));
    let token = hidden(&page, "form_token");

    // A bad address comes back as a German field error with what was typed.
    let mut form = common::form_fields(&csrf, &token);
    form.push(("mail.address".into(), "juergen@example".into()));
    form.push(("mail.consent".into(), "on".into()));
    let r = app
        .client
        .post(app.url("/certificates"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("E-Mail-Adresse: "), "{page}");
    assert!(page.contains("value=\"juergen@example\""));

    let form: Vec<(String, String)> = form
        .into_iter()
        .map(|(k, v)| {
            if k == "mail.address" {
                (k, "juergen@example.de".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let r = app
        .client
        .post(app.url("/certificates"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = location.trim_start_matches("/certificates/").to_owned();

    let port = free_port();
    let smtp = Smtp::start(port);
    let m = mailer(port, TlsMode::None);
    drain(&app, &m, 2).await;
    assert_eq!(smtp.messages().len(), 1);
    let detail = app.get_text(&location).await;
    assert!(detail.contains("versandt"), "{detail}");
    assert!(detail.contains("juergen@example.de"));
    assert!(detail.contains("demo"), "consent recorded with who");

    // Resend by hand: a new mail with a new Message-ID.
    let r = app
        .client
        .post(app.url(&format!("/certificates/{id}/mail")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    drain(&app, &m, 2).await;
    let received = smtp.messages();
    assert_eq!(received.len(), 2);
    let ids: Vec<String> = received
        .iter()
        .map(|b| {
            MessageParser::default()
                .parse(b)
                .unwrap()
                .message_id()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);

    // Without the CSRF token nothing happens.
    let r = app
        .client
        .post(app.url(&format!("/certificates/{id}/mail")))
        .form(&[("csrf", "falsch")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn cancelling_a_certificate_withdraws_its_unsent_mail() {
    let app = TestApp::spawn().await;
    let id = capture(&app, &with_mail(false)).await;
    let r = app
        .client
        .post(app.url(&format!("/api/v1/certificates/{id}/cancel")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(mails(&app, &id).await[0]["state"], "withdrawn");
    let port = free_port();
    let smtp = Smtp::start(port);
    drain(&app, &mailer(port, TlsMode::None), 2).await;
    assert!(smtp.messages().is_empty());
}
