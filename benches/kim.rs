//! KIM drain benchmark (issue #15): the same backlog of signed documents once over the HTTP push
//! (the fake insurer) and once over KIM (Postfix and Dovecot as the client module, as in
//! `tests/it/kim.rs`), in one run: documents/s handed over, and for KIM the time until every
//! delivery status notification has been read and recorded.
//!
//!   cargo bench --bench kim                      # N = 10 000, SQLite
//!   AU_RELAY_TEST_BACKEND=postgres BENCH_KIM_N=10000 cargo bench --bench kim
//!
//! Needs root, postfix, dovecot-pop3d and openssl (as the KIM tests). Prints the figures for
//! BENCHMARKS.md; asserts only that every document arrived exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use au_relay::insurers::fake::FakeInsurer;
use au_relay::insurers::PushClient;
use au_relay::kim;
use au_relay::kim::poller::{poll_account, Ending, PollSettings};
use au_relay::kim::robot::Robot;
use au_relay::kim::standin::{Mailbox, StandIn};
use au_relay::queue::{Connectors, WorkerSettings};
use au_relay::storage::{self, Database, DestinationConfig, KimAccountRow};

const HTTP_IK: &str = "109500969";
const KIM_IK: &str = "104212059";
const PRAXIS: &str = "praxis@arzt.kim.telematik-test";
const KASSE: &str = "eau@kk.kim.telematik-test";

fn count(db: &Database, ik: &str, states: &[&str]) -> i64 {
    use au_relay::storage::schema::deliveries::dsl as d;
    use diesel::prelude::*;
    d::deliveries
        .filter(d::insurer_ik.eq(ik))
        .filter(d::state.eq_any(states))
        .count()
        .get_result(&mut db.conn().unwrap())
        .unwrap()
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(3600);
    while !done() {
        assert!(Instant::now() < until, "{what}: not within an hour");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_KIM_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (url, _dir) = common::fresh_database();
    let db = Database::connect(&url, 8).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let practice_id = common::demo_practice_id(&db);
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("pw");
    std::fs::write(&secret, "bench").unwrap();
    let mut row = KimAccountRow {
        fachdienst_smtp: Some("kim.arzt.kim.telematik-test:465".into()),
        fachdienst_pop3: Some("kim.arzt.kim.telematik-test:995".into()),
        ..KimAccountRow::local(&practice_id, PRAXIS, format!("file:{}", secret.display()))
    };
    let account = kim::account_of(&row).unwrap();
    let standin = StandIn::start(
        &["arzt.kim.telematik-test", "kk.kim.telematik-test"],
        vec![
            Mailbox {
                address: PRAXIS.into(),
                password: "bench".into(),
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
        name: "bench".into(),
        channel: "bench",
    };
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    {
        let mut conn = db.conn().unwrap();
        au_relay::service::save_kim_account(&mut conn, &actor, &row).unwrap();
        common::point_at(&mut conn, HTTP_IK, &insurer);
        storage::upsert_destination(
            &mut conn,
            &DestinationConfig {
                ik: KIM_IK.into(),
                name: "KIM".into(),
                kim_address: Some(KASSE.into()),
                kim_source: Some("operator".into()),
                ..Default::default()
            },
        )
        .unwrap();
        // The KIM backlog waits while the HTTP one drains.
        storage::set_paused(&mut conn, KIM_IK, true).unwrap();
    }
    let seeded = Instant::now();
    common::store_signed_certificates(&db, &practice_id, HTTP_IK, n);
    common::store_signed_certificates(&db, &practice_id, KIM_IK, n);
    println!(
        "seeded 2 × {n} signed certificates in {:.1} s ({} backend)",
        seeded.elapsed().as_secs_f64(),
        common::backend()
    );

    let routes = Connectors {
        http: PushClient::new(Duration::from_secs(30)).unwrap(),
        kim: kim::Transport::new(Duration::from_secs(30), "bench@au-relay.test"),
    };
    let settings = WorkerSettings {
        concurrency: 16,
        batch: 256,
        ..WorkerSettings::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(au_relay::queue::run(
        db.clone(),
        routes,
        None,
        settings,
        stopped,
    ));

    let started = Instant::now();
    wait("HTTP drain", || {
        count(&db, HTTP_IK, &["delivered"]) == n as i64
    });
    let http = started.elapsed();

    storage::set_paused(&mut db.conn().unwrap(), KIM_IK, false).unwrap();
    let started = Instant::now();
    wait("KIM submission", || {
        count(&db, KIM_IK, &["sent", "delivered"]) == n as i64
    });
    let submitted = started.elapsed();
    // The mailbox is read continuously from now on (a practice reads it every 10 minutes, or
    // on demand): the time until the last receipt is recorded.
    let poll = PollSettings::default();
    let mut polls = 0;
    let mut largest = 0;
    while count(&db, KIM_IK, &["delivered"]) < n as i64 {
        let account = storage::kim_account(&mut db.conn().unwrap(), &practice_id)
            .unwrap()
            .unwrap();
        let report = poll_account(&db, &account, &poll, Ending::Quit)
            .await
            .unwrap();
        polls += 1;
        largest = largest.max(report.recorded);
        assert!(started.elapsed() < Duration::from_secs(3600), "receipts");
    }
    let receipts = started.elapsed();
    stop.send(true).unwrap();
    worker.await.unwrap();

    let robot = Robot::new(
        KASSE,
        "kasse",
        standin.smtp_port,
        standin.pop3_port,
        &standin.ca_pem,
    );
    let at_insurer = robot.fetch().await.unwrap();
    let unique: std::collections::HashSet<_> = at_insurer.iter().map(|r| r.document_id).collect();
    assert_eq!(at_insurer.len(), n, "one mail per document at the insurer");
    assert_eq!(unique.len(), n);
    assert_eq!(insurer.counts().len(), n, "HTTP: every document once");

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "HTTP push: {n} in {:.1} s = {:.0} documents/s",
        http.as_secs_f64(),
        rate(http)
    );
    println!(
        "KIM: {n} handed to the client module in {:.1} s = {:.0} documents/s; every receipt recorded after {:.1} s ({:.0} documents/s end to end, {polls} mailbox readings, at most {largest} receipts in one)",
        submitted.as_secs_f64(),
        rate(submitted),
        receipts.as_secs_f64(),
        rate(receipts)
    );
}
