//! Crash safety of the queue: the real `au-relay worker` binary is killed with SIGKILL at
//! random moments while it drains, 20 times, and restarted. Every document arrives; a document
//! arrives twice only when a worker died after pushing it and before recording the answer,
//! which the insurer's per-UUID deduplication absorbs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use au_relay::insurers::fake::{FakeInsurer, Mode};
use au_relay::storage::{self, Database};
use diesel::prelude::*;
use rand::Rng;

const IK: &str = "109500969";
const KILLS: usize = 20;
const CONCURRENCY: usize = 8;

fn spawn_worker(url: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_au-relay"))
        .arg("worker")
        .env("AU_RELAY_DATABASE_URL", url)
        .env("AU_RELAY_QUEUE_CONCURRENCY", CONCURRENCY.to_string())
        .env("AU_RELAY_QUEUE_LEASE_SECS", "1")
        .env("AU_RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn pending(db: &Database) -> i64 {
    storage::states(&mut db.conn().unwrap(), storage::Channel::Insurer)
        .unwrap()
        .into_iter()
        .filter(|(s, _)| *s != storage::DeliveryState::Delivered)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_replay_loses_nothing_and_duplicates_only_unanswered_pushes() {
    let (url, _dir) = common::fresh_database();
    let db = Database::connect(&url, 2).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let (insurer, server) = FakeInsurer::start(0).unwrap();
    tokio::spawn(server);
    // Slow answers widen the window between push and recorded answer.
    insurer.set_mode(Mode::Slow(Duration::from_millis(20)));
    common::point_at(&mut db.conn().unwrap(), IK, &insurer);
    let practice = common::demo_practice_id(&db);
    let ids = common::store_certificates(&db, &practice, IK, 400);

    for _ in 0..KILLS {
        let mut worker = spawn_worker(&url);
        let wait = rand::thread_rng().gen_range(150..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
    }
    // A last worker runs until the queue is empty.
    let mut worker = spawn_worker(&url);
    for _ in 0..600 {
        if pending(&db) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill().unwrap();
    worker.wait().unwrap();

    assert_eq!(pending(&db), 0, "every document delivered");
    let counts = insurer.counts();
    for id in &ids {
        assert!(counts.get(id).is_some_and(|n| *n >= 1), "{id} lost");
    }
    // Explain every duplicate: its delivery was claimed more often than attempts were
    // recorded, i.e. a worker died between pushing and recording the answer.
    use au_relay::storage::schema::{deliveries, delivery_attempts};
    let mut conn = db.conn().unwrap();
    let duplicates: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    for id in &duplicates {
        let (delivery, claims): (String, i32) = deliveries::table
            .filter(deliveries::certificate_id.eq(id.as_str()))
            .select((deliveries::id, deliveries::attempts))
            .first(&mut *conn)
            .unwrap();
        let recorded: i64 = delivery_attempts::table
            .filter(delivery_attempts::delivery_id.eq(&delivery))
            .count()
            .get_result(&mut *conn)
            .unwrap();
        assert!(
            i64::from(claims) > recorded,
            "{id}: duplicate without a lost answer"
        );
    }
    assert!(
        duplicates.len() <= KILLS * CONCURRENCY,
        "{} duplicates for {KILLS} kills",
        duplicates.len()
    );
    println!(
        "{} documents, {KILLS} kills, {} delivered twice (answer lost in a kill)",
        ids.len(),
        duplicates.len()
    );
}
