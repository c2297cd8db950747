//! The harness's check at the end of every test (`common::TestDb`): a delivery left claimed
//! fails the test, unless the test says it leaves claims on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use au_relay::storage::{self, Database, DestinationConfig};

use crate::common::{self, fresh_database, TestDb};

const IK: &str = "109500969";

/// A database with one certificate due for `IK`; `claim` claims it as a worker would.
fn one_due() -> (Database, TestDb) {
    let (url, teardown) = fresh_database();
    let db = Database::connect(&url, 2).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    storage::upsert_destination(
        &mut db.conn().unwrap(),
        &DestinationConfig {
            ik: IK.into(),
            name: "Testkasse".into(),
            // Nothing is pushed: the claim alone is under test.
            push_url: Some("http://127.0.0.1:9/eau".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let practice = common::demo_practice_id(&db);
    common::store_certificates(&db, &practice, IK, 1);
    (db, teardown)
}

fn claim(db: &Database) -> usize {
    storage::claim_due(
        &mut db.conn().unwrap(),
        chrono::Duration::seconds(60),
        10,
        &mut storage::ClaimCursor::default(),
    )
    .unwrap()
    .len()
}

#[test]
#[should_panic(expected = "left 1 deliveries claimed (in flight, under a lease)")]
fn a_claim_left_behind_fails_the_test() {
    let (db, _teardown) = one_due();
    assert_eq!(claim(&db), 1);
}

#[test]
fn a_test_that_leaves_a_claim_on_purpose_says_so() {
    let (db, teardown) = one_due();
    assert_eq!(claim(&db), 1);
    assert_eq!(teardown.claimed().unwrap().len(), 1);
    teardown.allow_claimed();
}

#[test]
fn a_database_without_deliveries_passes_the_check() {
    let (_url, teardown) = fresh_database();
    assert_eq!(teardown.claimed().unwrap(), []);
}
