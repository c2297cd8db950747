//! Storage guarantees on the backend under test: migrations round-trip, capture is atomic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, backend, fresh_database, valid_body, TestApp};
use au_relay::storage::Database;
use diesel::connection::SimpleConnection;

#[test]
fn migrations_apply_revert_and_apply_again() {
    let (url, _dir) = fresh_database();
    let db = Database::connect(&url, 2).unwrap();
    assert!(db.migrate().unwrap() >= 1);
    let tables = db.table_names().unwrap();
    for t in [
        "api_tokens",
        "audit_log",
        "certificates",
        "doctors",
        "practices",
        "sessions",
        "users",
    ] {
        assert!(tables.iter().any(|n| n == t), "{t} missing in {tables:?}");
    }
    assert_eq!(db.migrate().unwrap(), 0, "nothing pending twice");
    assert!(db.revert_all().unwrap() >= 1);
    assert!(db.table_names().unwrap().is_empty(), "everything reverted");
    assert!(db.migrate().unwrap() >= 1);
    assert_eq!(db.table_names().unwrap(), tables);
}

fn fail_audit_inserts(db: &Database) {
    let sql = if backend() == "postgres" {
        "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ \
         LANGUAGE plpgsql; \
         CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fail_audit();"
    } else {
        "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
    };
    db.conn().unwrap().batch_execute(sql).unwrap();
}

#[tokio::test]
async fn a_failure_in_the_middle_of_capture_leaves_no_partial_rows() {
    let app = TestApp::spawn().await;
    // The certificate row is written first; the audit row, second, fails.
    fail_audit_inserts(&app.db);
    let r = app.post_api(&valid_body()).await;
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains("Interner Fehler"), "{body}");
    assert!(!body.contains("Müller"), "no patient data in errors");
    assert_eq!(
        app.rows(),
        (0, 0, 0),
        "no certificate without its audit row"
    );

    app.db
        .conn()
        .unwrap()
        .batch_execute("DROP TRIGGER fail_audit ON audit_log")
        .or_else(|_| {
            app.db
                .conn()
                .unwrap()
                .batch_execute("DROP TRIGGER fail_audit")
        })
        .unwrap();
    assert_eq!(app.post_api(&valid_body()).await.status(), 201);
    assert_eq!(app.rows(), (1, 1, 1));
}

#[tokio::test]
async fn concurrent_captures_all_land() {
    let app = TestApp::spawn().await;
    let body = valid_body();
    let sends = (0..24).map(|_| app.post_api(&body));
    let results = futures_util::future::join_all(sends).await;
    assert!(results.iter().all(|r| r.status() == 201));
    assert_eq!(app.rows(), (24, 24, 24));
}

#[tokio::test]
async fn a_group_commit_keeps_every_write_and_undoes_only_a_failing_one() {
    use au_relay::storage::{self, Actor, StorageError};
    let (url, _dir) = fresh_database();
    let db = Database::connect(&url, 4).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let practice_id = common::demo_practice_id(&db);
    let audited = |db: &Database| storage::row_counts(&mut db.conn().unwrap()).unwrap().2;
    let before = audited(&db);
    // Sent at once, so they share groups; every fourth writes its row and then fails.
    let writes = (0..40).map(|n| {
        let actor = Actor {
            practice_id: practice_id.clone(),
            name: "test".into(),
            channel: "test",
        };
        db.write(move |c| {
            storage::audit(c, &actor, "test.write", None, &n.to_string())?;
            if n % 4 == 0 {
                Err(StorageError::Invalid("refused".into()))
            } else {
                Ok(n)
            }
        })
    });
    let results = futures_util::future::join_all(writes).await;
    let stored: Vec<i32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(stored.len(), 30);
    assert!(stored.iter().all(|n| n % 4 != 0));
    assert_eq!(audited(&db) - before, 30, "a failed write leaves no row");
}
