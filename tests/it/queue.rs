//! The durable queue against a real fake insurer over HTTP, on the backend under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::common::{self, fresh_database};
use au_relay::domain::breaker::BreakerState;
use au_relay::insurers::fake::{FakeInsurer, Mode};
use au_relay::insurers::PushClient;
use au_relay::queue::{run_once, Connectors, WorkerSettings};
use au_relay::storage::{self, Database, DestinationConfig};

const IK: &str = "109500969";

struct Setup {
    db: Database,
    insurer: FakeInsurer,
    client: Connectors,
    settings: WorkerSettings,
    practice_id: String,
    /// Checks at the end of the test that no delivery is left claimed.
    teardown: common::TestDb,
}

async fn setup() -> Setup {
    let (url, teardown) = fresh_database();
    let db = Database::connect(&url, 4).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    let mut conn = db.conn().unwrap();
    common::point_at(&mut conn, IK, &insurer);
    let practice_id = common::demo_practice_id(&db);
    let settings = WorkerSettings {
        backoff_unit: Duration::from_millis(1),
        probe_every: Duration::from_millis(1),
        idle_poll: Duration::from_millis(5),
        ..WorkerSettings::default()
    };
    Setup {
        db,
        insurer,
        client: Connectors::from(PushClient::new(Duration::from_secs(5)).unwrap()),
        settings,
        practice_id,
        teardown,
    }
}

fn capture(s: &Setup, n: usize) -> Vec<String> {
    common::store_certificates(&s.db, &s.practice_id, IK, n)
}

fn states(s: &Setup) -> Vec<(String, i64)> {
    storage::states(&mut s.db.conn().unwrap(), storage::Channel::Insurer)
        .unwrap()
        .into_iter()
        .map(|(state, n)| (state.code().to_owned(), n))
        .collect()
}

async fn drain(s: &Setup, rounds: usize) {
    for _ in 0..rounds {
        run_once(&s.db, &s.client, &s.settings).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn while_the_insurer_is_down_certificates_wait_and_each_arrives_once_when_it_is_back() {
    let s = setup().await;
    s.insurer.set_mode(Mode::Down);
    let ids = capture(&s, 10);
    drain(&s, 10).await;
    assert_eq!(states(&s), [("pending".to_string(), 10)]);
    let dest = storage::destination(&mut s.db.conn().unwrap(), IK)
        .unwrap()
        .unwrap();
    assert_eq!(
        dest.breaker,
        BreakerState::Open,
        "breaker opened after repeated failures"
    );
    assert!(s.insurer.counts().is_empty());

    s.insurer.set_mode(Mode::Up);
    drain(&s, 10).await;
    assert_eq!(states(&s), [("delivered".to_string(), 10)]);
    let counts = s.insurer.counts();
    assert_eq!(counts.len(), 10);
    for id in ids {
        assert_eq!(counts.get(&id), Some(&1), "{id} accepted exactly once");
    }
    let dest = storage::destination(&mut s.db.conn().unwrap(), IK)
        .unwrap()
        .unwrap();
    assert_eq!(dest.breaker, BreakerState::Closed);
}

#[tokio::test]
async fn a_kbv_error_100_asks_for_a_new_document_but_not_during_a_stoerung() {
    let s = setup().await;
    s.insurer.set_mode(Mode::Error(100));
    capture(&s, 1);
    drain(&s, 2).await;
    assert_eq!(states(&s), [("needs_new_id".to_string(), 1)]);

    storage::set_outage(&mut s.db.conn().unwrap(), IK, true).unwrap();
    capture(&s, 1);
    drain(&s, 3).await;
    let st = states(&s);
    assert!(st.contains(&("pending".to_string(), 1)), "{st:?}");
    s.insurer.set_mode(Mode::Up);
    drain(&s, 5).await;
    assert!(states(&s).contains(&("delivered".to_string(), 1)));
}

#[tokio::test]
async fn every_attempt_is_kept_with_its_answer() {
    let s = setup().await;
    s.insurer.set_mode(Mode::Flapping);
    capture(&s, 4);
    drain(&s, 20).await;
    assert_eq!(states(&s), [("delivered".to_string(), 4)]);
    let mut conn = s.db.conn().unwrap();
    let delivery = storage::deliveries_of(
        &mut conn,
        &s.practice_id,
        s.insurer.counts().keys().next().unwrap().parse().unwrap(),
    )
    .unwrap()
    .remove(0);
    let attempts = storage::attempts_of(&mut conn, &delivery.id).unwrap();
    assert_eq!(attempts.last().unwrap().outcome, "delivered");
    assert_eq!(delivery.progress.attempts as usize, attempts.len());
}

#[tokio::test]
async fn a_paused_insurer_is_not_sent_to_until_resumed() {
    let s = setup().await;
    storage::set_paused(&mut s.db.conn().unwrap(), IK, true).unwrap();
    capture(&s, 3);
    drain(&s, 3).await;
    assert!(s.insurer.counts().is_empty());
    storage::set_paused(&mut s.db.conn().unwrap(), IK, false).unwrap();
    drain(&s, 3).await;
    assert_eq!(s.insurer.counts().len(), 3);
}

#[tokio::test]
async fn two_workers_never_push_one_document_twice() {
    let s = setup().await;
    capture(&s, 200);
    let settings = WorkerSettings {
        batch: 10,
        ..s.settings.clone()
    };
    let worker = |settings: WorkerSettings| {
        let (db, client) = (s.db.clone(), s.client.clone());
        async move {
            for _ in 0..60 {
                run_once(&db, &client, &settings).await.unwrap();
            }
        }
    };
    tokio::join!(worker(settings.clone()), worker(settings));
    assert_eq!(states(&s), [("delivered".to_string(), 200)]);
    let counts = s.insurer.counts();
    assert_eq!(counts.len(), 200);
    assert!(
        counts.values().all(|n| *n == 1),
        "a document was pushed twice"
    );
}

/// Two instances (each its own connection pool and HTTP client, as two processes would have)
/// drain one database: 10 000 documents on PostgreSQL, 2 000 on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_drain_a_large_backlog_without_pushing_a_document_twice() {
    let s = setup().await;
    let n = if common::backend() == "postgres" {
        10_000
    } else {
        2_000
    };
    let practice = s.practice_id.clone();
    let db = s.db.clone();
    tokio::task::spawn_blocking(move || common::store_certificates(&db, &practice, IK, n))
        .await
        .unwrap();
    // Each instance runs the production worker loop (claim, push and record pipelined).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let instance = |url: String| {
        let settings = WorkerSettings {
            batch: 100,
            concurrency: 16,
            ..s.settings.clone()
        };
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let db = Database::connect(&url, 4).unwrap();
            let client = Connectors::from(PushClient::new(Duration::from_secs(10)).unwrap());
            au_relay::queue::run(db, client, None, settings, stopped).await;
        })
    };
    let url = s.db.url().to_owned();
    let instances = [instance(url.clone()), instance(url)];
    for _ in 0..1200 {
        if states(&s) == [("delivered".to_string(), n as i64)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    for i in instances {
        i.await.unwrap();
    }
    assert_eq!(states(&s), [("delivered".to_string(), n as i64)]);
    let counts = s.insurer.counts();
    assert_eq!(counts.len(), n);
    assert!(
        counts.values().all(|c| *c == 1),
        "a document was pushed twice"
    );
}

#[tokio::test]
async fn a_certificate_captured_over_the_api_reaches_the_insurer_as_its_stored_document() {
    let app = common::TestApp::spawn().await;
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), IK, &insurer);
    insurer.set_mode(Mode::Error(301));
    let id = app.capture_id(&common::valid_body()).await;
    let client = Connectors::from(PushClient::new(Duration::from_secs(5)).unwrap());
    let settings = WorkerSettings {
        backoff_unit: Duration::from_millis(1),
        ..WorkerSettings::default()
    };
    run_once(&app.db, &client, &settings).await.unwrap();
    insurer.set_mode(Mode::Up);
    tokio::time::sleep(Duration::from_millis(20)).await;
    run_once(&app.db, &client, &settings).await.unwrap();
    assert_eq!(insurer.counts().get(&id), Some(&1));

    app.login().await;
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(page.contains("bei der Krankenkasse angekommen"));
    assert!(page.contains("Verlauf der Übermittlung (2 Versuche)"));
    assert!(
        page.contains("KBV 301"),
        "the error answer is kept in the history"
    );
}

async fn cancel(app: &common::TestApp, id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/certificates/{id}/cancel")))
        .bearer_auth("demo-token")
        .send()
        .await
        .unwrap()
}

async fn app_with_insurer() -> (common::TestApp, FakeInsurer) {
    let app = common::TestApp::spawn().await;
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    common::point_at(&mut app.db.conn().unwrap(), IK, &insurer);
    (app, insurer)
}

async fn drain_app(app: &common::TestApp) {
    let client = Connectors::from(PushClient::new(Duration::from_secs(5)).unwrap());
    for _ in 0..3 {
        run_once(&app.db, &client, &WorkerSettings::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn cancelling_an_unsent_eau_withdraws_it_and_a_delivered_one_gets_a_storno_behind_it() {
    let (app, insurer) = app_with_insurer().await;
    storage::set_paused(&mut app.db.conn().unwrap(), IK, true).unwrap();
    let unsent = app
        .post_api(&common::valid_body())
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let unsent = unsent["id"].as_str().unwrap().to_owned();
    let r = cancel(&app, &unsent).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "withdrawn"
    );
    assert_eq!(cancel(&app, &unsent).await.status(), 409, "twice");
    storage::set_paused(&mut app.db.conn().unwrap(), IK, false).unwrap();
    drain_app(&app).await;
    assert!(insurer.counts().is_empty(), "a withdrawn eAU is never sent");

    let sent = app
        .post_api(&common::valid_body())
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let sent = sent["id"].as_str().unwrap().to_owned();
    drain_app(&app).await;
    let r = cancel(&app, &sent).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "storno_queued"
    );
    drain_app(&app).await;
    let counts = insurer.counts();
    assert_eq!(counts.get(&sent), Some(&1));
    assert_eq!(
        counts.len(),
        2,
        "the Storno went with its own UUID: {counts:?}"
    );
    assert_eq!(
        storage::states(&mut app.db.conn().unwrap(), storage::Channel::Insurer).unwrap(),
        [
            (storage::DeliveryState::Delivered, 2),
            (storage::DeliveryState::Withdrawn, 1)
        ]
    );
}

/// A claim sets only the lease and the attempt count; the stored state stays `pending`. Every
/// reader sees the delivery in flight (the dashboard's counts, staff's detail), cancelling it
/// queues a Storno instead of withdrawing it (it may have reached the insurer), and on
/// PostgreSQL the claim is a HOT update: no index holds a column the claim changes.
#[tokio::test]
async fn a_claimed_eau_is_in_flight_for_every_reader_and_its_claim_changes_no_indexed_column() {
    use diesel::prelude::*;
    let (app, insurer) = app_with_insurer().await;
    let id = app.capture_id(&common::valid_body()).await;
    let mut conn = app.db.conn().unwrap();
    // A lease that runs out at once: the worker "died" and the next drain takes it over.
    let claim = |c: &mut storage::AnyConnection| {
        storage::claim_due(
            c,
            chrono::Duration::zero(),
            10,
            &mut storage::ClaimCursor::default(),
        )
    };
    let claimed = if common::backend() == "postgres" {
        #[derive(QueryableByName)]
        struct Updates {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n_tup_upd: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n_tup_hot_upd: i64,
        }
        let (claimed, updates) = conn
            .transaction::<_, storage::StorageError, _>(|c| {
                let claimed = claim(c)?;
                let updates: Updates = diesel::sql_query(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables \
                     WHERE relname = 'deliveries'",
                )
                .get_result(c)?;
                Ok((claimed, updates))
            })
            .unwrap();
        assert_eq!(
            (updates.n_tup_upd, updates.n_tup_hot_upd),
            (1, 1),
            "the claim updated its row in place (HOT)"
        );
        claimed
    } else {
        claim(&mut conn).unwrap()
    };
    assert_eq!(claimed.len(), 1);
    use storage::schema::deliveries;
    let stored: String = deliveries::table
        .select(deliveries::state)
        .first(&mut conn)
        .unwrap();
    assert_eq!(stored, "pending", "a claim does not write the state");
    assert_eq!(
        storage::states(&mut conn, storage::Channel::Insurer).unwrap(),
        [(storage::DeliveryState::InFlight, 1)]
    );
    app.login().await;
    let page = app.get_text(&format!("/certificates/{id}")).await;
    assert!(
        page.contains("wird gesendet"),
        "staff see it in flight: {page}"
    );
    let r = cancel(&app, &id).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "storno_queued",
        "an eAU in flight may reach the insurer: it gets a Storno"
    );
    drain_app(&app).await;
    assert_eq!(insurer.counts().get(&id), Some(&1));
    assert_eq!(insurer.counts().len(), 2, "and its Storno behind it");
    assert_eq!(
        storage::states(&mut conn, storage::Channel::Insurer).unwrap(),
        [(storage::DeliveryState::Delivered, 2)]
    );
}

/// A delivery that an older version claimed (stored state `in_flight`, as before the lease
/// claim) is counted once with those in flight now, and is taken over once its lease ran out
/// and delivered once.
#[tokio::test]
async fn a_delivery_an_older_version_left_in_flight_is_taken_over_when_its_lease_ran_out() {
    use diesel::connection::SimpleConnection;
    let s = setup().await;
    let ids = capture(&s, 2);
    let legacy = |lease: &str| {
        s.db.conn()
            .unwrap()
            .batch_execute(&format!(
                "UPDATE deliveries SET state = 'in_flight', attempts = 1, lease_until = '{lease}' \
                 WHERE certificate_id = '{}'",
                ids[0]
            ))
            .unwrap();
    };
    legacy("2999-01-01 00:00:00");
    assert_eq!(states(&s), [("in_flight".into(), 1), ("pending".into(), 1)]);
    // The other one claimed now, under a lease that runs out at once.
    let claimed = storage::claim_due(
        &mut s.db.conn().unwrap(),
        chrono::Duration::zero(),
        10,
        &mut storage::ClaimCursor::default(),
    )
    .unwrap();
    assert_eq!(claimed.len(), 1, "the old claim's lease still holds");
    assert_eq!(claimed[0].certificate_id, ids[1]);
    assert_eq!(states(&s), [("in_flight".into(), 2)], "one count per state");
    legacy("2000-01-01 00:00:00");
    drain(&s, 2).await;
    for id in &ids {
        assert_eq!(s.insurer.counts().get(id), Some(&1), "{id}");
    }
    assert_eq!(states(&s), [("delivered".into(), 2)]);
}

#[tokio::test]
async fn a_storno_never_overtakes_its_eau_and_expires_after_120_working_days() {
    use diesel::connection::SimpleConnection;
    let (app, insurer) = app_with_insurer().await;
    let id = app
        .post_api(&common::valid_body())
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let id = id["id"].as_str().unwrap().to_owned();
    // A worker has claimed the eAU (in flight) when staff cancel.
    // That worker never answers in this test: its claim stays to the end, on purpose.
    app.allow_claimed();
    let claimed = storage::claim_due(
        &mut app.db.conn().unwrap(),
        chrono::Duration::seconds(60),
        10,
        &mut storage::ClaimCursor::default(),
    )
    .unwrap();
    assert_eq!(claimed.len(), 1);
    let r = cancel(&app, &id).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "storno_queued"
    );
    let again = storage::claim_due(
        &mut app.db.conn().unwrap(),
        chrono::Duration::seconds(60),
        10,
        &mut storage::ClaimCursor::default(),
    )
    .unwrap();
    assert!(
        again.is_empty(),
        "the Storno waits while its eAU is not delivered"
    );
    assert!(insurer.counts().is_empty());

    // Another certificate, delivered long ago: too late for a Storno.
    let old = app
        .post_api(&common::valid_body())
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let old = old["id"].as_str().unwrap().to_owned();
    app.db
        .conn()
        .unwrap()
        .batch_execute(&format!(
            "UPDATE deliveries SET state = 'delivered', delivered_at = '2025-01-02 10:00:00' WHERE certificate_id = '{old}'"
        ))
        .unwrap();
    let r = cancel(&app, &old).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("120 Werktagen"));
}

#[tokio::test]
async fn an_insurers_rate_limit_caps_pushes_per_minute_without_slowing_others() {
    let s = setup().await;
    let mut conn = s.db.conn().unwrap();
    storage::upsert_destination(
        &mut conn,
        &DestinationConfig {
            ik: IK.into(),
            name: "AOK".into(),
            push_url: Some(s.insurer.push_url()),
            health_url: Some(s.insurer.health_url()),
            auth_header: None,
            rate_per_minute: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    const OTHER: &str = "104212059";
    storage::upsert_destination(
        &mut conn,
        &DestinationConfig {
            ik: OTHER.into(),
            name: "Andere Kasse".into(),
            push_url: Some(s.insurer.push_url()),
            health_url: None,
            auth_header: None,
            rate_per_minute: None,
            ..Default::default()
        },
    )
    .unwrap();
    drop(conn);
    capture(&s, 20);
    common::store_certificates(&s.db, &s.practice_id, OTHER, 20);
    drain(&s, 5).await;
    let st = states(&s);
    assert!(
        st.contains(&("delivered".to_string(), 25)),
        "5 of the limited insurer, all 20 of the other: {st:?}"
    );
    assert!(st.contains(&("pending".to_string(), 15)), "{st:?}");
}

#[tokio::test]
async fn a_practice_wide_stoerung_makes_every_error_retryable() {
    let s = setup().await;
    s.insurer.set_mode(Mode::Error(101));
    storage::set_practice_outage(&mut s.db.conn().unwrap(), &s.practice_id, true).unwrap();
    capture(&s, 1);
    drain(&s, 2).await;
    assert_eq!(states(&s), [("pending".to_string(), 1)]);
    storage::set_practice_outage(&mut s.db.conn().unwrap(), &s.practice_id, false).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drain(&s, 2).await;
    assert_eq!(states(&s), [("needs_new_id".to_string(), 1)]);
}

#[tokio::test]
async fn an_insurer_that_refuses_connections_gets_its_backlog_once_it_listens_again() {
    let s = setup().await;
    s.insurer.refuse_connections().await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", s.insurer.port)).is_err(),
        "connection refused"
    );
    let ids = capture(&s, 5);
    drain(&s, 10).await;
    assert_eq!(states(&s), [("pending".to_string(), 5)]);
    let unsent = storage::unsent(&mut s.db.conn().unwrap(), &s.practice_id, 10).unwrap();
    assert_eq!(unsent.len(), 5);
    assert!(unsent
        .iter()
        .all(|u| u.progress.attempts >= 1 && u.progress.last_error.is_some()));

    s.insurer.listen_again().unwrap();
    drain(&s, 20).await;
    assert_eq!(states(&s), [("delivered".to_string(), 5)]);
    let counts = s.insurer.counts();
    for id in ids {
        assert_eq!(counts.get(&id), Some(&1), "{id} accepted exactly once");
    }
}

#[tokio::test]
async fn the_fake_insurers_totals_count_documents_and_pushes_over_http() {
    let s = setup().await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", s.insurer.port);
    for key in ["a", "a", "b"] {
        http.post(format!("{base}/eau"))
            .header("Idempotency-Key", key)
            .body("<Bundle/>")
            .send()
            .await
            .unwrap();
    }
    let totals: serde_json::Value = http
        .get(format!("{base}/control/totals"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(totals, serde_json::json!({"documents": 2, "pushes": 3}));
}

#[tokio::test]
async fn claims_go_on_after_the_last_one_claimed_and_a_rewind_finds_what_became_due_behind() {
    let s = setup().await;
    // Only the claims are under test: nothing is pushed, so they stay in flight at the end.
    s.teardown.allow_claimed();
    let ids = capture(&s, 6);
    let mut cursor = storage::ClaimCursor::default();
    let claim = |lease_secs: i64, cursor: &mut storage::ClaimCursor| {
        std::thread::sleep(Duration::from_millis(5));
        let claimed = storage::claim_due(
            &mut s.db.conn().unwrap(),
            chrono::Duration::seconds(lease_secs),
            2,
            cursor,
        )
        .unwrap();
        claimed
            .into_iter()
            .map(|c| c.certificate_id)
            .collect::<Vec<_>>()
    };
    // Claimed with a lease that runs out at once: due again right away.
    assert_eq!(claim(0, &mut cursor), ids[0..2]);
    assert_eq!(claim(60, &mut cursor), ids[2..4], "the next claim goes on");
    cursor.rewind();
    assert_eq!(
        claim(60, &mut cursor),
        ids[0..2],
        "after a rewind: the oldest due"
    );
    assert_eq!(claim(60, &mut cursor), ids[4..6]);
    assert!(claim(60, &mut cursor).is_empty(), "everything is in flight");
    let fresh = &mut storage::ClaimCursor::default();
    assert!(claim(60, fresh).is_empty(), "from the oldest too");
}

/// The outage at the counter (issue #18): one failed attempt makes the insurer "gestört" (red)
/// on "Versand", puts the banner on every staff page and offers KK + V on the certificate;
/// once the insurer's health answers again its backlog is due at once, not at the next
/// scheduled retry a minute later, and the banner goes.
#[tokio::test]
async fn one_failed_attempt_shows_the_outage_at_the_counter_and_a_healthy_probe_starts_the_backlog()
{
    let (app, insurer) = app_with_insurer().await;
    insurer.set_mode(Mode::Down);
    let id = app.capture_id(&common::valid_body()).await;
    let client = Connectors::from(PushClient::new(Duration::from_secs(5)).unwrap());
    // The production retry schedule (a minute for the first retry), a quick probe.
    let settings = WorkerSettings {
        probe_every: Duration::from_millis(1),
        ..WorkerSettings::default()
    };
    run_once(&app.db, &client, &settings).await.unwrap();
    let dest = storage::destination(&mut app.db.conn().unwrap(), IK)
        .unwrap()
        .unwrap();
    assert_eq!(
        (dest.consecutive_failures, dest.breaker.code()),
        (1, "closed")
    );

    app.login().await;
    let queue = app.get_text("/queue").await;
    assert!(
        queue.contains(r#"<td class="status disturbed">gestört</td>"#),
        "red after one failed attempt"
    );
    let banner = "Übermittlung an Testkasse gestört – KK-Ausfertigung mitgeben";
    for page in [
        "/certificates".to_owned(),
        "/certificates/new".to_owned(),
        "/queue".to_owned(),
        "/signatur".to_owned(),
        "/account/password".to_owned(),
        format!("/certificates/{id}"),
    ] {
        assert!(
            app.get_text(&page).await.contains(banner),
            "banner on {page}"
        );
    }
    let detail = app.get_text(&format!("/certificates/{id}")).await;
    assert!(detail.contains("KK + Versicherte jetzt drucken"));
    assert!(detail.contains(&format!("/certificates/{id}/pdf?copy=all")));

    let mut conn = app.db.conn().unwrap();
    let due = storage::deliveries_of(
        &mut conn,
        &common::demo_practice_id(&app.db),
        id.parse().unwrap(),
    )
    .unwrap()[0]
        .progress
        .next_attempt_at;
    assert!(
        due > storage::now() + chrono::Duration::seconds(30),
        "the next retry is scheduled about a minute later"
    );
    // The probe sees the insurer down: the breaker opens, nothing more is tried.
    tokio::time::sleep(Duration::from_millis(5)).await;
    run_once(&app.db, &client, &settings).await.unwrap();
    let dest = storage::destination(&mut conn, IK).unwrap().unwrap();
    assert_eq!(
        (dest.consecutive_failures, dest.breaker.code()),
        (1, "open")
    );
    assert!(app
        .get_text("/queue")
        .await
        .contains("gestört – nicht erreichbar"));
    insurer.set_mode(Mode::Up);
    tokio::time::sleep(Duration::from_millis(5)).await;
    // One round: the probe answers, the backlog is due now and goes out in the same round.
    run_once(&app.db, &client, &settings).await.unwrap();
    assert_eq!(insurer.counts().get(&id), Some(&1));
    let dest = storage::destination(&mut conn, IK).unwrap().unwrap();
    assert_eq!(
        (dest.consecutive_failures, dest.breaker.code()),
        (0, "closed")
    );
    assert!(!app.get_text("/certificates").await.contains(banner));
    let queue = app.get_text("/queue").await;
    assert!(queue.contains(r#"<td class="status">erreichbar</td>"#));
    let detail = app.get_text(&format!("/certificates/{id}")).await;
    assert!(!detail.contains("KK + Versicherte jetzt drucken"));
}

/// A declared practice-wide (TI) Störung is the banner of every staff page, for every insurer.
#[tokio::test]
async fn a_ti_outage_is_the_banner_of_every_staff_page() {
    let (app, _insurer) = app_with_insurer().await;
    let practice = common::demo_practice_id(&app.db);
    storage::set_practice_outage(&mut app.db.conn().unwrap(), &practice, true).unwrap();
    app.login().await;
    let page = app.get_text("/certificates").await;
    assert!(page.contains("TI-Störung seit"), "{page}");
    assert!(page.contains("Übermittlung an alle Krankenkassen gestört – KK-Ausfertigung mitgeben"));
    // Another practice does not see it.
    let b = common::add_practice_b(&app.db);
    common::add_user(
        &app.db,
        Some(&b),
        "mfa-b",
        "Lange-Passphrase-1",
        au_relay::auth::Role::Staff,
    );
    let (other, _) = common::browser(&app, "mfa-b", "Lange-Passphrase-1").await;
    let page = other
        .get(app.url("/certificates"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Bescheinigungen") && !page.contains("TI-Störung"));
}

/// A failing insurer without a health URL (KIM, or push without one) is not probed every few
/// seconds: only an open breaker is retried, and less often.
#[tokio::test]
async fn an_insurer_without_a_health_url_is_not_hammered_by_probes() {
    let s = setup().await;
    let mut conn = s.db.conn().unwrap();
    storage::upsert_destination(
        &mut conn,
        &storage::DestinationConfig {
            ik: IK.into(),
            name: "Ohne Prüfadresse".into(),
            push_url: Some(s.insurer.push_url()),
            health_url: None,
            ..Default::default()
        },
    )
    .unwrap();
    s.insurer.set_mode(Mode::Down);
    capture(&s, 1);
    let settings = WorkerSettings {
        probe_every: Duration::from_millis(1),
        ..WorkerSettings::default()
    };
    run_once(&s.db, &s.client, &settings).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(storage::due_probes(&mut conn).unwrap().is_empty());
    run_once(&s.db, &s.client, &settings).await.unwrap();
    let dest = storage::destination(&mut conn, IK).unwrap().unwrap();
    assert_eq!(
        dest.consecutive_failures, 1,
        "no second attempt before the retry is due"
    );
}

/// The trial after an outage (a half-open breaker) goes through: the insurer is back, and its
/// other documents waiting for a later retry are due at once.
#[tokio::test]
async fn a_successful_trial_after_an_outage_makes_the_insurers_backlog_due_at_once() {
    use diesel::connection::SimpleConnection;
    let s = setup().await;
    s.insurer.set_mode(Mode::Down);
    capture(&s, 3);
    let settings = WorkerSettings {
        // Production backoff: the next retry a minute away; no probe in this test's time.
        probe_every: Duration::from_secs(3600),
        ..WorkerSettings::default()
    };
    run_once(&s.db, &s.client, &settings).await.unwrap();
    let mut conn = s.db.conn().unwrap();
    let later = storage::now() + chrono::Duration::seconds(30);
    // Half-open (as a probe without health URL leaves it), one document due for its trial.
    conn.batch_execute(
        "UPDATE destinations SET breaker = 'half_open'; \
         UPDATE deliveries SET next_attempt_at = created_at \
         WHERE id = (SELECT MIN(id) FROM deliveries)",
    )
    .unwrap();
    s.insurer.set_mode(Mode::Up);
    run_once(&s.db, &s.client, &settings).await.unwrap();
    assert_eq!(s.insurer.counts().len(), 1);
    let practice = s.practice_id.clone();
    let due: Vec<_> = storage::unsent(&mut conn, &practice, 10)
        .unwrap()
        .into_iter()
        .map(|u| u.progress.next_attempt_at)
        .collect();
    assert_eq!(due.len(), 2);
    assert!(
        due.iter().all(|t| *t < later),
        "due now, not in a minute: {due:?}"
    );
    run_once(&s.db, &s.client, &settings).await.unwrap();
    assert_eq!(states(&s), [("delivered".to_string(), 3)]);
}

/// An insurer whose health answers while its intake fails (a resend code, a balancer in front
/// of a broken backend) is not flooded: a healthy probe moves nothing forward, the documents
/// keep their backoff, and nothing is given up within minutes.
#[tokio::test]
async fn a_healthy_probe_does_not_pull_the_backlog_forward_while_the_intake_fails() {
    let s = setup().await;
    s.insurer.set_mode(Mode::Error(201));
    capture(&s, 2);
    let settings = WorkerSettings {
        probe_every: Duration::from_millis(1),
        ..WorkerSettings::default()
    };
    for _ in 0..20 {
        run_once(&s.db, &s.client, &settings).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let unsent = storage::unsent(&mut s.db.conn().unwrap(), &s.practice_id, 10).unwrap();
    assert_eq!(unsent.len(), 2);
    for u in &unsent {
        assert_eq!(
            (u.progress.state.code(), u.progress.attempts),
            ("pending", 1),
            "one attempt, then its backoff"
        );
    }
}
