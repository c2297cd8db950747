//! Replay over KIM against real mail servers: Postfix (submission, genuine RFC 3464 delivery
//! status notifications) and Dovecot (POP3S) as the KIM client module, an insurer robot reading
//! the insurer's mailbox. On the backend under test (`AU_RELAY_TEST_BACKEND`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{self, fresh_database};
use au_relay::kim::poller::{poll_account, Ending, PollReport, PollSettings};
use au_relay::kim::robot::{Received, Robot};
use au_relay::kim::standin::{Mailbox, StandIn};
use au_relay::kim::{self, Tls};
use au_relay::queue::{run_once, Connectors, WorkerSettings};
use au_relay::storage::{self, Database, DestinationConfig, KimAccountRow};
use sha2::Digest;

const IK: &str = "109500969";
const PRAXIS: &str = "praxis@arzt.kim.telematik-test";
const KASSE: &str = "eau-eingang@kk.kim.telematik-test";
const PASSWORD: &str = "kim-geheim-1";

struct Kim {
    standin: StandIn,
    db: Database,
    practice_id: String,
    robot: Robot,
    routes: Connectors,
    settings: WorkerSettings,
    _dirs: (common::TestDb, tempfile::TempDir),
}

fn account_row(practice_id: &str, secret: &std::path::Path) -> KimAccountRow {
    KimAccountRow {
        fachdienst_smtp: Some("kim.arzt.kim.telematik-test:465".into()),
        fachdienst_pop3: Some("kim.arzt.kim.telematik-test:995".into()),
        ..KimAccountRow::local(practice_id, PRAXIS, format!("file:{}", secret.display()))
    }
}

async fn setup() -> Kim {
    assert!(
        StandIn::available(),
        "the KIM tests need root, postfix and dovecot-pop3d (installed by .ci/run)"
    );
    let (url, dir) = fresh_database();
    let db = Database::connect(&url, 4).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let practice_id = common::demo_practice_id(&db);
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("kim-password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let mut row = account_row(&practice_id, &secret);
    let account = kim::account_of(&row).unwrap();
    let standin = StandIn::start(
        &["arzt.kim.telematik-test", "kk.kim.telematik-test"],
        vec![
            Mailbox {
                address: PRAXIS.into(),
                password: PASSWORD.into(),
                // The client module knows the practice only by its `#` login names.
                logins: vec![account.smtp_login(), account.pop3_login()],
            },
            Mailbox {
                address: KASSE.into(),
                password: "kasse".into(),
                logins: vec![],
            },
        ],
    )
    .unwrap();
    row.smtp_port = i32::from(standin.smtp_port);
    row.pop3_port = i32::from(standin.pop3_port);
    row.ca_pem = Some(standin.ca_pem.clone());
    let actor = storage::Actor {
        practice_id: practice_id.clone(),
        name: "test".into(),
        channel: "test",
    };
    let mut conn = db.conn().unwrap();
    au_relay::service::save_kim_account(&mut conn, &actor, &row).unwrap();
    storage::upsert_destination(
        &mut conn,
        &DestinationConfig {
            ik: IK.into(),
            name: "Testkasse (KIM)".into(),
            kim_address: Some(KASSE.into()),
            kim_source: Some("operator".into()),
            ..Default::default()
        },
    )
    .unwrap();
    drop(conn);
    let robot = Robot::new(
        KASSE,
        "kasse",
        standin.smtp_port,
        standin.pop3_port,
        &standin.ca_pem,
    );
    let routes = Connectors {
        http: au_relay::insurers::PushClient::new(Duration::from_secs(5)).unwrap(),
        kim: kim::Transport::new(Duration::from_secs(20), "support@au-relay.test"),
    };
    let settings = WorkerSettings {
        backoff_unit: Duration::from_millis(1),
        probe_every: Duration::from_millis(1),
        batch: 256,
        concurrency: 8,
        ..WorkerSettings::default()
    };
    Kim {
        standin,
        db,
        practice_id,
        robot,
        routes,
        settings,
        _dirs: (dir, secrets),
    }
}

impl Kim {
    async fn drain(&self) {
        for _ in 0..100 {
            if run_once(&self.db, &self.routes, &self.settings)
                .await
                .unwrap()
                == 0
            {
                return;
            }
        }
    }

    fn account(&self) -> KimAccountRow {
        storage::kim_account(&mut self.db.conn().unwrap(), &self.practice_id)
            .unwrap()
            .unwrap()
    }

    async fn poll(&self, ending: Ending) -> PollReport {
        poll_account(&self.db, &self.account(), &PollSettings::default(), ending)
            .await
            .unwrap()
    }

    fn states(&self) -> Vec<(String, i64)> {
        storage::states(&mut self.db.conn().unwrap(), storage::Channel::Insurer)
            .unwrap()
            .into_iter()
            .map(|(state, n)| (state.code().to_owned(), n))
            .collect()
    }

    /// Waits until the practice's mailbox holds `n` mails (receipts arrive asynchronously).
    fn wait_for_mails(&self, address: &str, n: usize) {
        let until = Instant::now() + Duration::from_secs(120);
        while self.standin.mail_files(address).len() < n {
            assert!(
                Instant::now() < until,
                "{} of {n} mails for {address}\n{}",
                self.standin.mail_files(address).len(),
                self.standin.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn fetch(&self, n: usize) -> Vec<Received> {
        self.wait_for_mails(KASSE, n);
        let got = self.robot.fetch().await.unwrap();
        assert_eq!(got.len(), n);
        got
    }

    /// The signed file stored for each document id.
    fn signed_files(&self) -> std::collections::HashMap<String, Vec<u8>> {
        let mut conn = self.db.conn().unwrap();
        deliveries(&mut conn)
            .into_iter()
            .map(|(doc, _)| {
                let bytes =
                    storage::signed_file(&mut conn, &self.practice_id, doc.parse().unwrap())
                        .unwrap()
                        .unwrap();
                (doc, bytes)
            })
            .collect()
    }
}

/// (document id, state) of every insurer delivery.
fn deliveries(conn: &mut storage::AnyConnection) -> Vec<(String, String)> {
    use au_relay::storage::schema::deliveries::dsl as d;
    use diesel::prelude::*;
    d::deliveries
        .filter(d::channel.eq("insurer"))
        .select((d::certificate_id, d::document_id, d::state))
        .load::<(String, Option<String>, String)>(conn)
        .unwrap()
        .into_iter()
        .map(|(c, doc, state)| (doc.unwrap_or(c), state))
        .collect()
}

fn attempts_with_outcome(conn: &mut storage::AnyConnection, outcome: &str) -> i64 {
    use au_relay::storage::schema::delivery_attempts::dsl as a;
    use diesel::prelude::*;
    a::delivery_attempts
        .filter(a::outcome.eq(outcome))
        .count()
        .get_result(conn)
        .unwrap()
}

#[tokio::test]
async fn a_backlog_of_200_drains_over_kim_and_each_document_is_delivered_only_when_its_receipt_is_read(
) {
    let k = setup().await;
    common::store_signed_certificates(&k.db, &k.practice_id, IK, 200);
    k.drain().await;
    // Accepted by the client module is not delivered: the receipt decides.
    assert_eq!(k.states(), [("sent".to_string(), 200)]);

    let files = k.signed_files();
    let received = k.fetch(200).await;
    let mut seen = HashSet::new();
    for r in &received {
        let id = r.document_id.unwrap().to_string();
        assert!(seen.insert(id.clone()), "one mail per document");
        assert_eq!(r.subject, format!("EEAU0_{id}"));
        assert_eq!(r.dienstkennung, "eAU;Lieferung;V1.2");
        assert_eq!(r.from, PRAXIS);
        assert_eq!(r.reply_to, PRAXIS);
        assert_eq!(r.attachments, 1, "exactly one file");
        assert_eq!(
            r.attachment_name.as_deref(),
            Some(&*format!("EEAU0_{id}.p7s"))
        );
        assert_eq!(r.content_type.as_deref(), Some("application/octet-stream"));
        assert_eq!(r.content_description.as_deref(), Some("eAU"));
        assert_eq!(
            sha2::Sha256::digest(&r.bytes),
            sha2::Sha256::digest(&files[&id]),
            "the signed bytes as stored"
        );
    }

    k.wait_for_mails(PRAXIS, 200);
    let report = k.poll(Ending::Quit).await;
    assert_eq!(
        (report.recorded, report.matched, report.deleted),
        (200, 200, 200)
    );
    assert_eq!(k.states(), [("delivered".to_string(), 200)]);
    assert!(
        k.standin.mail_files(PRAXIS).is_empty(),
        "receipts leave the mailbox once recorded"
    );
}

#[tokio::test]
async fn an_insurer_error_101_asks_for_a_new_document_201_resends_the_same_file_and_a_virus_notice_is_shown(
) {
    let k = setup().await;
    common::store_signed_certificates(&k.db, &k.practice_id, IK, 3);
    k.drain().await;
    let mut received = k.fetch(3).await;
    received.sort_by_key(|r| r.document_id);
    // 101 names the bundle, 201 the KIM message, the third is 101 with the virus notice.
    k.robot
        .answer(&received[0], 101, false, "FHIR ungültig")
        .await
        .unwrap();
    k.robot
        .answer(&received[1], 201, true, "Signatur ungültig")
        .await
        .unwrap();
    k.robot
        .answer(&received[2], 101, false, "Achtung möglicher Virenbefall")
        .await
        .unwrap();
    // Three receipts, three error messages (each error message has its own receipt at the
    // insurer's mailbox, which the robot ignores).
    k.wait_for_mails(PRAXIS, 6);
    let report = k.poll(Ending::Quit).await;
    assert_eq!(report.matched, 6);

    let mut conn = k.db.conn().unwrap();
    let state_of = |conn: &mut storage::AnyConnection, doc: &str| {
        deliveries(conn)
            .into_iter()
            .find(|(d, _)| d == doc)
            .unwrap()
            .1
    };
    let first = received[0].document_id.unwrap().to_string();
    let second = received[1].document_id.unwrap().to_string();
    let third = received[2].document_id.unwrap().to_string();
    assert_eq!(state_of(&mut conn, &first), "needs_new_id");
    assert_eq!(state_of(&mut conn, &second), "pending");
    assert_eq!(state_of(&mut conn, &third), "needs_new_id");
    let (_, inbox) = storage::kim_history(&mut conn, &k.practice_id, &third).unwrap();
    assert!(
        inbox.iter().any(|m| m.summary.contains("Virenbefall")),
        "{inbox:?}"
    );
    drop(conn);

    // 201: the same signed file goes again.
    k.drain().await;
    let again = k.fetch(1).await;
    assert_eq!(again[0].document_id, received[1].document_id);
    assert_eq!(again[0].bytes, received[1].bytes);
    assert_ne!(
        again[0].message_id, received[1].message_id,
        "a new Message-ID per attempt"
    );
}

#[tokio::test]
async fn a_receipt_that_never_comes_puts_the_certificate_on_the_post_list_after_24_hours() {
    let k = setup().await;
    // The insurer's mailbox is full: the mail waits at the Fachdienst, no receipt comes.
    k.standin.set_mailbox_full(KASSE, true).unwrap();
    let ids = common::store_signed_certificates(&k.db, &k.practice_id, IK, 2);
    k.drain().await;
    assert_eq!(k.states(), [("sent".to_string(), 2)]);
    let report = k.poll(Ending::Quit).await;
    assert_eq!(report.recorded, 0);
    let mut conn = k.db.conn().unwrap();
    let now = storage::now();
    assert!(
        storage::overdue_receipts(&mut conn, Some(&k.practice_id), now)
            .unwrap()
            .is_empty()
    );
    let later = now + chrono::Duration::hours(25);
    let overdue = storage::overdue_receipts(&mut conn, Some(&k.practice_id), later).unwrap();
    let mut overdue: Vec<String> = overdue.into_iter().map(|o| o.certificate_id).collect();
    overdue.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(overdue, ids);
    // Nothing was lost: both still wait, and arrive once the mailbox has room.
    drop(conn);
    k.standin.set_mailbox_full(KASSE, false).unwrap();
    k.fetch(2).await;
    k.wait_for_mails(PRAXIS, 2);
    k.poll(Ending::Quit).await;
    assert_eq!(k.states(), [("delivered".to_string(), 2)]);
}

#[tokio::test]
async fn a_poller_killed_between_reading_and_deleting_loses_no_receipt_and_records_none_twice() {
    let k = setup().await;
    common::store_signed_certificates(&k.db, &k.practice_id, IK, 5);
    k.drain().await;
    k.wait_for_mails(PRAXIS, 5);
    let killed = k.poll(Ending::Killed).await;
    assert_eq!((killed.recorded, killed.matched), (5, 5));
    assert_eq!(
        k.standin.mail_files(PRAXIS).len(),
        5,
        "nothing deleted without QUIT"
    );
    assert_eq!(k.states(), [("delivered".to_string(), 5)]);

    let again = k.poll(Ending::Quit).await;
    assert_eq!((again.recorded, again.deleted), (0, 5));
    let receipts = attempts_with_outcome(&mut k.db.conn().unwrap(), "receipt");
    assert_eq!(receipts, 5, "each receipt recorded once");
    assert!(k.standin.mail_files(PRAXIS).is_empty());
}

#[tokio::test]
async fn an_unreachable_client_module_or_a_failed_delivery_leaves_everything_queued() {
    let mut k = setup().await;
    k.standin.stop_postfix().unwrap();
    common::store_signed_certificates(&k.db, &k.practice_id, IK, 3);
    run_once(&k.db, &k.routes, &k.settings).await.unwrap();
    assert_eq!(k.states(), [("pending".to_string(), 3)]);
    let unsent = storage::unsent(&mut k.db.conn().unwrap(), &k.practice_id, 10).unwrap();
    assert!(
        unsent.iter().all(|u| u.progress.last_error.is_some()),
        "{unsent:?}"
    );

    // Back, but the insurer's address is gone from its Fachdienst: the mail is accepted and
    // fails later; a failed receipt is a transient error, retried every 4 hours (TA P5-04 AK15).
    k.standin.start_postfix().unwrap();
    k.standin.set_unknown(KASSE, true).unwrap();
    storage::retry_all(&mut k.db.conn().unwrap(), IK).unwrap();
    k.drain().await;
    assert_eq!(k.states(), [("sent".to_string(), 3)]);
    k.wait_for_mails(PRAXIS, 3);
    let report = k.poll(Ending::Quit).await;
    assert_eq!(report.matched, 3);
    assert_eq!(k.states(), [("pending".to_string(), 3)]);
    let unsent = storage::unsent(&mut k.db.conn().unwrap(), &k.practice_id, 10).unwrap();
    for u in &unsent {
        let wait = u.progress.next_attempt_at - storage::now();
        assert!(wait > chrono::Duration::hours(3), "{wait:?}");
        assert!(u
            .progress
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("gescheitert"));
    }
}

#[tokio::test]
async fn the_client_module_refuses_a_wrong_password_and_staff_see_its_answer() {
    let k = setup().await;
    let mut row = k.account();
    let wrong = k._dirs.1.path().join("wrong");
    std::fs::write(&wrong, "falsch").unwrap();
    row.secret_ref = format!("file:{}", wrong.display());
    let actor = storage::Actor {
        practice_id: k.practice_id.clone(),
        name: "test".into(),
        channel: "test",
    };
    au_relay::service::save_kim_account(&mut k.db.conn().unwrap(), &actor, &row).unwrap();
    common::store_signed_certificates(&k.db, &k.practice_id, IK, 1);
    run_once(&k.db, &k.routes, &k.settings).await.unwrap();
    assert_eq!(k.states(), [("dead".to_string(), 1)]);
    let unsent = storage::unsent(&mut k.db.conn().unwrap(), &k.practice_id, 10).unwrap();
    let error = unsent[0].progress.last_error.clone().unwrap();
    assert!(error.contains("535"), "{error}");
    assert!(!error.contains("falsch"), "no password in the error");
}

#[tokio::test]
async fn an_unsigned_document_is_not_sent_over_kim() {
    let k = setup().await;
    common::store_certificates(&k.db, &k.practice_id, IK, 1);
    run_once(&k.db, &k.routes, &k.settings).await.unwrap();
    assert_eq!(k.states(), [("dead".to_string(), 1)]);
    let unsent = storage::unsent(&mut k.db.conn().unwrap(), &k.practice_id, 10).unwrap();
    assert!(unsent[0]
        .progress
        .last_error
        .as_deref()
        .unwrap()
        .contains("signiert"));
    assert!(k.standin.mail_files(KASSE).is_empty());
}

#[tokio::test]
async fn a_mail_for_the_practice_software_stays_in_the_mailbox_and_only_its_header_is_kept() {
    let k = setup().await;
    let letter = format!(
        "From: {KASSE}\r\nTo: {PRAXIS}\r\nSubject: Arztbrief\r\nMessage-ID: <brief-1@kk.kim.telematik-test>\r\n\r\nBefund: Diagnose vertraulich\r\n"
    );
    k.robot.send(PRAXIS, letter.as_bytes()).await.unwrap();
    k.wait_for_mails(PRAXIS, 1);
    let first = k.poll(Ending::Quit).await;
    assert_eq!((first.recorded, first.matched, first.deleted), (1, 0, 0));
    let again = k.poll(Ending::Quit).await;
    assert_eq!(
        (again.recorded, again.deleted),
        (0, 0),
        "recorded once, never deleted"
    );
    assert_eq!(
        k.standin.mail_files(PRAXIS).len(),
        1,
        "the practice software still finds it"
    );
    let mut conn = k.db.conn().unwrap();
    let listed = storage::unmatched_inbox(&mut conn, Some(&k.practice_id), 10).unwrap();
    assert_eq!(listed.len(), 1);
    let kept = storage::inbox_raw(&mut conn, Some(&k.practice_id), &listed[0].id)
        .unwrap()
        .unwrap();
    let kept = String::from_utf8(kept).unwrap();
    assert!(kept.contains("Subject: Arztbrief"));
    assert!(
        !kept.contains("Diagnose"),
        "no body of a foreign mail is stored"
    );
}

#[tokio::test]
async fn two_instances_never_take_the_same_mailbox_reading() {
    let (url, _dir) = fresh_database();
    let db = Database::connect(&url, 2).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let practice_id = common::demo_practice_id(&db);
    let secrets = tempfile::tempdir().unwrap();
    let row = account_row(&practice_id, &secrets.path().join("pw"));
    let actor = storage::Actor {
        practice_id: practice_id.clone(),
        name: "t".into(),
        channel: "test",
    };
    let mut conn = db.conn().unwrap();
    au_relay::service::save_kim_account(&mut conn, &actor, &row).unwrap();
    let due = storage::accounts_due_for_poll(&mut conn).unwrap();
    assert_eq!(due.len(), 1);
    // Both instances read the same due list; one takes the reading.
    assert!(storage::claim_poll(&mut conn, &due[0]).unwrap());
    assert!(!storage::claim_poll(&mut conn, &due[0]).unwrap());
    assert!(storage::accounts_due_for_poll(&mut conn)
        .unwrap()
        .is_empty());
    // "Postfach jetzt abrufen" makes it due again, for one of them.
    storage::request_poll(&mut conn, &practice_id).unwrap();
    let due = storage::accounts_due_for_poll(&mut conn).unwrap();
    assert!(storage::claim_poll(&mut conn, &due[0]).unwrap());
    assert!(!storage::claim_poll(&mut conn, &due[0]).unwrap());
}

#[tokio::test]
async fn receipts_are_recorded_while_the_queue_goes_on_sending() {
    let k = setup().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(au_relay::queue::run(
        k.db.clone(),
        k.routes.clone(),
        None,
        k.settings.clone(),
        stopped,
    ));
    // Documents keep coming while the mailbox is read: every reading must record, none may
    // fail on a busy database.
    let until = Instant::now() + Duration::from_secs(120);
    for _ in 0..10 {
        common::store_signed_certificates(&k.db, &k.practice_id, IK, 20);
        k.poll(Ending::Quit).await;
    }
    while k.states() != [("delivered".to_string(), 200)] {
        assert!(Instant::now() < until, "{:?}", k.states());
        k.poll(Ending::Quit).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
    assert_eq!(
        attempts_with_outcome(&mut k.db.conn().unwrap(), "receipt"),
        200
    );
}

#[tokio::test]
async fn starttls_and_a_plain_connection_to_the_client_module_work_as_well() {
    let k = setup().await;
    let actor = storage::Actor {
        practice_id: k.practice_id.clone(),
        name: "test".into(),
        channel: "test",
    };
    for (tls, n) in [(Tls::StartTls, 2), (Tls::None, 3)] {
        let mut row = k.account();
        row.tls = tls.code().into();
        row.smtp_port = i32::from(k.standin.smtp_plain_port);
        row.pop3_port = i32::from(k.standin.pop3_plain_port);
        au_relay::service::save_kim_account(&mut k.db.conn().unwrap(), &actor, &row).unwrap();
        common::store_signed_certificates(&k.db, &k.practice_id, IK, 2);
        // A fresh transport: the account is read anew.
        let routes = Connectors {
            kim: kim::Transport::new(Duration::from_secs(20), "support@au-relay.test"),
            ..k.routes.clone()
        };
        while run_once(&k.db, &routes, &k.settings).await.unwrap() > 0 {}
        k.wait_for_mails(PRAXIS, 2);
        let report = k.poll(Ending::Quit).await;
        assert_eq!(report.matched, 2, "{tls:?}");
        let delivered = k.states().into_iter().find(|(s, _)| s == "delivered");
        assert_eq!(delivered.map(|d| d.1), Some(2 * (n - 1)), "{tls:?}");
    }
    assert_eq!(k.fetch(4).await.len(), 4);
}
