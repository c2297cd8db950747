//! Test harness: every test gets its own database (a SQLite file in a temp dir, or a fresh
//! PostgreSQL database when `AU_RELAY_TEST_BACKEND=postgres`) and its own server on port 0.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use au_relay::app::{self, ServeConfig};
use au_relay::storage::{self, Database};
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};

pub struct TestApp {
    pub base: String,
    pub db: Database,
    /// The database URL, for a second process (`au-relay` subcommands, workers).
    pub database_url: String,
    pub client: reqwest::Client,
    /// Checks at the end of the test that no delivery is left claimed (see [`TestDb`]).
    teardown: TestDb,
}

/// The backend this run tests: `sqlite` (default) or `postgres`.
pub fn backend() -> String {
    std::env::var("AU_RELAY_TEST_BACKEND").unwrap_or_else(|_| "sqlite".into())
}

/// A new, empty database for one test: its URL, and the [`TestDb`] to keep for as long as the
/// test uses it (it holds the SQLite file's directory, and checks the deliveries when dropped).
pub fn fresh_database() -> (String, TestDb) {
    au_relay::storage::init_openssl();
    if backend() == "postgres" {
        let admin = std::env::var("AU_RELAY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("aurelay_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::PgConnection::establish(&admin).expect("PostgreSQL for tests");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create test database");
        let (base, _) = admin.rsplit_once('/').expect("admin URL with a database");
        let url = format!("{base}/{name}");
        (url.clone(), TestDb::new(url, None))
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("test.db").to_string_lossy().into_owned();
        (url.clone(), TestDb::new(url, Some(dir)))
    }
}

/// A test's own database, as [`fresh_database`] made it. Dropped at the end of a test that
/// did not fail otherwise, it checks that no delivery is left claimed (in flight: pending
/// under a worker's lease) and fails the test if one is: a test that claims must finish or
/// release every claim, so a claim left behind by accident (a worker still running, a claim
/// whose answer was never recorded) cannot pass unnoticed. A test that leaves claims on
/// purpose (a killed worker, a lease left to run out) says so with [`TestDb::allow_claimed`].
pub struct TestDb {
    url: String,
    allow_claimed: std::sync::atomic::AtomicBool,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    fn new(url: String, dir: Option<tempfile::TempDir>) -> Self {
        Self {
            url,
            allow_claimed: std::sync::atomic::AtomicBool::new(false),
            _dir: dir,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// This test leaves deliveries claimed on purpose: no check at its end.
    pub fn allow_claimed(&self) {
        self.allow_claimed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn connect(&self) -> Result<au_relay::storage::AnyConnection, String> {
        use au_relay::storage::{AnyConnection, Backend};
        let mut conn = match Backend::of(&self.url) {
            Backend::Postgres => {
                diesel::PgConnection::establish(&self.url).map(AnyConnection::Postgres)
            }
            Backend::Sqlite => {
                diesel::SqliteConnection::establish(&self.url).map(AnyConnection::Sqlite)
            }
        }
        .map_err(|e| e.to_string())?;
        if let AnyConnection::Sqlite(c) = &mut conn {
            diesel::connection::SimpleConnection::batch_execute(c, "PRAGMA busy_timeout = 10000")
                .map_err(|e| e.to_string())?;
        }
        Ok(conn)
    }

    /// The deliveries in flight (pending under a lease): id and lease. Nothing for a database
    /// without the table (never migrated, or migrated back).
    pub fn claimed(&self) -> Result<Vec<(String, Option<chrono::NaiveDateTime>)>, String> {
        use au_relay::storage::schema::deliveries;
        use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
        let mut conn = self.connect()?;
        match deliveries::table
            .filter(
                deliveries::state
                    .eq(storage::DeliveryState::InFlight)
                    .or(deliveries::state
                        .eq(storage::DeliveryState::Pending)
                        .and(deliveries::lease_until.is_not_null())),
            )
            .select((deliveries::id, deliveries::lease_until))
            .order(deliveries::id)
            .load(&mut conn)
        {
            Ok(rows) => Ok(rows),
            Err(e) if is_missing_table(&e) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl TestDb {
    /// Attempt rows whose delivery does not exist. On PostgreSQL no foreign key guards them
    /// (its check cost half of every attempt's insert): the queue writes attempts only for
    /// deliveries it holds, and this check after every test keeps it so.
    pub fn attempts_without_delivery(&self) -> Result<i64, String> {
        use au_relay::storage::schema::{deliveries, delivery_attempts};
        use diesel::{ExpressionMethods, QueryDsl};
        let mut conn = self.connect()?;
        let known = deliveries::table.select(deliveries::id);
        match delivery_attempts::table
            .filter(delivery_attempts::delivery_id.ne_all(known))
            .count()
            .get_result(&mut conn)
        {
            Ok(n) => Ok(n),
            Err(e) if is_missing_table(&e) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn is_missing_table(e: &diesel::result::Error) -> bool {
    let text = e.to_string();
    text.contains("no such table") || text.contains("does not exist")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_owned();
        match self.attempts_without_delivery() {
            Ok(0) => {}
            Ok(n) => panic!(
                "{test} left {n} attempt rows without their delivery in {}",
                self.url
            ),
            Err(e) => panic!("{test}: the attempt check could not read {}: {e}", self.url),
        }
        if self.allow_claimed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        match self.claimed() {
            Ok(rows) if rows.is_empty() => {}
            Ok(rows) => panic!(
                "{test} left {} deliveries claimed (in flight, under a lease) in its database {}: {:?}. \
                 Finish or release every claim before the test ends; a test that leaves claims \
                 on purpose calls allow_claimed() and says why.",
                rows.len(),
                self.url,
                rows
            ),
            Err(e) => panic!(
                "{test}: the check for deliveries left claimed could not read its database {}: {e}",
                self.url
            ),
        }
    }
}

pub fn config() -> ServeConfig {
    ServeConfig {
        bind: "127.0.0.1:0".into(),
        demo: false,
        max_body_bytes: 64 * 1024,
        max_scan_bytes: 64 * 1024 * 1024,
        session_hours: 1,
        session_idle_minutes: 30,
        secure_cookies: false,
        workers: 2,
        metrics_token: None,
        trusted_proxies: Vec::new(),
        sdkt_file: None,
        queue: app::QueueConfig {
            enabled: false,
            queue_concurrency: 4,
            push_timeout_secs: 5,
            lease_secs: 60,
            kim_support: au_relay::kim::DEFAULT_SUPPORT.into(),
            vzd_url: None,
            kim_address_file: None,
            mail: no_mail(),
        },
    }
}

/// Mail settings without an SMTP server: consented mails wait in the queue.
pub fn no_mail() -> app::MailConfig {
    app::MailConfig {
        smtp_host: None,
        smtp_port: None,
        smtp_tls: None,
        smtp_user: None,
        smtp_password: None,
        mail_from: None,
        smtp_timeout_secs: 5,
        mail_password: au_relay::domain::PasswordPolicy::BirthDate,
    }
}

impl TestApp {
    /// A migrated database seeded with the demo practice, and a server on it.
    pub async fn spawn() -> Self {
        Self::spawn_with(config()).await
    }

    /// [`TestApp::spawn`] with these settings.
    pub async fn spawn_with(config: ServeConfig) -> Self {
        let (url, teardown) = fresh_database();
        let db = Database::connect(&url, 4).expect("connect");
        db.migrate().expect("migrate");
        app::seed_demo(&db).expect("seed");
        let running = app::start(db.clone(), &config, None).expect("start");
        tokio::spawn(running.server);
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: format!("http://127.0.0.1:{}", running.port),
            db,
            database_url: url,
            client,
            teardown,
        }
    }

    /// This test leaves deliveries claimed on purpose (see [`TestDb`]).
    pub fn allow_claimed(&self) {
        self.teardown.allow_claimed();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// (certificates, deliveries, audit rows)
    pub fn rows(&self) -> (i64, i64, i64) {
        storage::row_counts(&mut self.db.conn().expect("conn")).expect("counts")
    }

    pub async fn post_api(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/certificates"))
            .bearer_auth("demo-token")
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Captures `body` over the API with the demo practice's token; the document UUID.
    pub async fn capture_id(&self, body: &Value) -> String {
        let r = self.post_api(body).await;
        let status = r.status();
        let answer = r.json::<Value>().await.expect("JSON");
        assert_eq!(status, 201, "capture refused: {answer}");
        answer["id"].as_str().expect("an id").to_owned()
    }

    /// `GET path` with the demo practice's API token, as JSON.
    pub async fn get_api_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .bearer_auth("demo-token")
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/certificates"))
            .bearer_auth("demo-token")
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Logs in as demo/demo (the demo practice's admin); returns the CSRF token of the session.
    pub async fn login(&self) -> String {
        self.login_as("demo", "demo").await
    }

    /// Logs in as `name` in this app's client (replacing its session); returns the CSRF token.
    pub async fn login_as(&self, name: &str, password: &str) -> String {
        let r = post_login(self, &self.client, name, password).await;
        assert_eq!(r.status(), 303, "login failed");
        let page = self.get_text("/account/password").await;
        hidden(&page, "csrf")
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body")
    }
}

/// The value of a hidden input in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Today in Germany as the app sees it.
pub fn today() -> chrono::NaiveDate {
    au_relay::domain::berlin_today(chrono::Utc::now())
}

/// A valid certificate as the JSON API takes it.
pub fn valid_body() -> Value {
    let t = today();
    json!({
        "kind": "ERST",
        "patient": {
            "kvnr": "A123456780",
            "first_name": "Jürgen",
            "last_name": "Müller-Lüdenscheidt",
            "birth_date": "1980-04-01",
            "street": "Straße",
            "house_number": "5",
            "postal_code": "30159",
            "city": "Hannover"
        },
        "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "1"},
        "period": {
            "since": (t - chrono::Duration::days(1)).to_string(),
            "until": (t + chrono::Duration::days(3)).to_string(),
            "determined_on": t.to_string()
        },
        "diagnoses": [{"code": "J06.9", "certainty": "G"}]
    })
}

/// The id of the seeded demo practice.
pub fn demo_practice_id(db: &Database) -> String {
    let bsnr = au_relay::domain::demo_practice().unwrap().0.bsnr;
    storage::practice_id_by_bsnr(&mut db.conn().unwrap(), &bsnr)
        .unwrap()
        .unwrap()
}

/// Stores `n` valid certificates for insurer `ik`, each with an XML document, directly in
/// the database; returns their document UUIDs.
pub fn store_certificates(db: &Database, practice_id: &str, ik: &str, n: usize) -> Vec<String> {
    store(db, practice_id, ik, n, false)
}

/// A test signer (RSA key, self-signed certificate), made once per test binary.
fn test_signer() -> &'static (
    openssl::pkey::PKey<openssl::pkey::Private>,
    openssl::x509::X509,
) {
    static SIGNER: std::sync::OnceLock<(
        openssl::pkey::PKey<openssl::pkey::Private>,
        openssl::x509::X509,
    )> = std::sync::OnceLock::new();
    SIGNER.get_or_init(|| {
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "Dr. Test Signer").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let serial = openssl::bn::BigNum::from_u32(4711)
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        (key, b.build())
    })
}

/// A CAdES enveloping signature over `content` (as practice software would make it).
pub fn sign(content: &[u8]) -> Vec<u8> {
    let (key, cert) = test_signer();
    openssl::cms::CmsContentInfo::sign(
        Some(cert),
        Some(key),
        None,
        Some(content),
        openssl::cms::CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap()
}

/// Like [`store_certificates`], each stored with a signed file (an import from practice software).
pub fn store_signed_certificates(
    db: &Database,
    practice_id: &str,
    ik: &str,
    n: usize,
) -> Vec<String> {
    store(db, practice_id, ik, n, true)
}

fn store(db: &Database, practice_id: &str, ik: &str, n: usize, signed: bool) -> Vec<String> {
    use au_relay::domain::{demo_practice, CaptureContext, Certificate, CertificateDraft};
    let mut body = valid_body();
    body["insurer"]["ik"] = json!(ik);
    let draft: CertificateDraft = serde_json::from_value(body).unwrap();
    let (practice, doctor) = demo_practice().unwrap();
    let actor = storage::Actor {
        practice_id: practice_id.to_owned(),
        name: "test".into(),
        channel: "test",
    };
    let mut conn = db.conn().unwrap();
    let practice_signs = storage::practice_signs(&mut conn, practice_id).unwrap();
    (0..n)
        .map(|_| {
            let ctx = CaptureContext {
                practice: practice.clone(),
                doctors: vec![doctor.clone()],
                today: today(),
                document_id: uuid::Uuid::new_v4(),
            };
            let cert = Certificate::from_draft(&draft, &ctx).unwrap();
            let xml = format!(
                "<Bundle xmlns=\"http://hl7.org/fhir\"><identifier><value value=\"urn:uuid:{}\"/></identifier></Bundle>",
                cert.document_id
            );
            let new = storage::NewCertificate {
                certificate: &cert,
                origin: storage::Origin::Capture,
                submission_key: None,
                print_only: false,
                mail: None,
                created_at: storage::now(),
                encoded: &if signed {
                    let p7s = sign(xml.as_bytes());
                    let signer = au_relay::signature::verify(&p7s).unwrap().signer;
                    storage::Encoded::of(&cert, xml).unwrap().signed(storage::NewSignature {
                        p7s,
                        signer,
                        method: au_relay::signature::Method::Import,
                    })
                } else {
                    storage::Encoded::of(&cert, xml).unwrap()
                },
                practice_signs,
            };
            storage::capture(&mut conn, &actor, new).unwrap();
            cert.document_id.to_string()
        })
        .collect()
}

/// Points insurer `ik`'s destination at a fake insurer.
pub fn point_at(
    conn: &mut au_relay::storage::AnyConnection,
    ik: &str,
    insurer: &au_relay::insurers::fake::FakeInsurer,
) {
    storage::upsert_destination(
        conn,
        &storage::DestinationConfig {
            ik: ik.into(),
            name: "Testkasse".into(),
            push_url: Some(insurer.push_url()),
            health_url: Some(insurer.health_url()),
            auth_header: None,
            rate_per_minute: None,
            ..Default::default()
        },
    )
    .unwrap();
}

/// A second practice "B" (BSNR 021234567) with its API token `other-token`; returns its id.
pub fn add_practice_b(db: &Database) -> String {
    let (practice, mut doctor) = au_relay::domain::demo_practice().unwrap();
    let mut other = practice;
    other.bsnr = au_relay::domain::Bsnr::parse("021234567").unwrap();
    other.name = "Praxis B".into();
    doctor.lanr = au_relay::domain::Lanr::parse("123456699").unwrap();
    storage::add_practice(
        &mut db.conn().unwrap(),
        &other,
        &doctor,
        None,
        Some(&au_relay::auth::token_hash("other-token")),
    )
    .unwrap()
}

/// Adds a user directly; returns its id.
pub fn add_user(
    db: &Database,
    practice: Option<&str>,
    name: &str,
    password: &str,
    role: au_relay::auth::Role,
) -> String {
    let hash = au_relay::auth::hash_password(password).unwrap();
    storage::create_user(&mut db.conn().unwrap(), practice, name, &hash, role).unwrap()
}

/// A login attempt in a browser of its own: the new browser and the answer's status.
pub async fn try_login(app: &TestApp, name: &str, password: &str) -> (reqwest::Client, u16) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = post_login(app, &client, name, password).await;
    (client, r.status().as_u16())
}

/// The login form's CSRF token for this browser (it opens the login page, as a person would).
pub async fn login_token(app: &TestApp, client: &reqwest::Client) -> String {
    let page = client
        .get(app.url("/login"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("body");
    hidden(&page, "csrf")
}

/// Opens the login page in `client` and posts name and password with its form token.
pub async fn post_login(
    app: &TestApp,
    client: &reqwest::Client,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let csrf = login_token(app, client).await;
    client
        .post(app.url("/login"))
        .form(&[("username", name), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("login")
}

/// A browser of its own, logged in as `name`; returns it with its session's CSRF token.
pub async fn browser(app: &TestApp, name: &str, password: &str) -> (reqwest::Client, String) {
    let (client, status) = try_login(app, name, password).await;
    assert_eq!(status, 303, "login of {name}");
    let page = client
        .get(app.url("/account/password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (client, hidden(&page, "csrf"))
}

/// A date as the German form takes it.
pub fn de(d: chrono::NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// A filled "Neue AU" form as the browser sends it.
pub fn form_fields(csrf: &str, token: &str) -> Vec<(String, String)> {
    let t = today();
    [
        ("csrf", csrf.to_owned()),
        ("form_token", token.to_owned()),
        ("kind", "ERST".into()),
        ("issued_on", de(t)),
        ("patient.last_name", "Müller-Lüdenscheidt".into()),
        ("patient.first_name", "Jürgen".into()),
        ("patient.birth_date", "01.04.1980".into()),
        ("patient.kvnr", "A123456780".into()),
        ("patient.street", "Straße".into()),
        ("patient.house_number", "5".into()),
        ("patient.postal_code", "30159".into()),
        ("patient.city", "Hannover".into()),
        ("insurer.name", "AOK Niedersachsen".into()),
        ("insurer.ik", "109500969".into()),
        ("insurer.insured_type", "1".into()),
        ("insurer.special_group", "00".into()),
        ("insurer.dmp", "00".into()),
        ("insurer.wop", "".into()),
        ("insurer.valid_until", "".into()),
        ("doctor_lanr", "838382202".into()),
        ("period.since", de(t)),
        ("period.until", de(t + chrono::Duration::days(4))),
        ("period.determined_on", de(t)),
        ("cause", "".into()),
        ("diagnoses[0].code", "J06.9".into()),
        ("diagnoses[0].certainty", "G".into()),
        ("diagnoses[0].side", "".into()),
        ("diagnoses[1].code", "".into()),
        ("diagnoses[1].certainty", "G".into()),
        ("diagnoses[1].side", "".into()),
        ("diagnosis_text", "".into()),
        ("measures.other", "".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
