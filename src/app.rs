//! Start-up: configuration, database, demo seed, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::{middleware, web, App, HttpServer};

use crate::auth;
use crate::capture::MailOptions;
use crate::domain::demo_practice;
use crate::domain::PasswordPolicy;
use crate::insurers::fake::FakeInsurer;
use crate::insurers::PushClient;
use crate::konnektor::fake::FakeKonnektor;
use crate::mail::{MailSettings, Mailer, TlsMode};
use crate::queue::WorkerSettings;
use crate::secret::Secret;
use crate::storage::{self, Database};
use crate::web::proxy::TrustedProxies;
use crate::web::{catch_panics, routes, security_headers, AppState, Settings};
use lettre::message::Mailbox;

/// Settings of `au-relay serve`, from flags or `AU_RELAY_…` variables.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on. Demo mode always uses 127.0.0.1.
    #[arg(long, env = "AU_RELAY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Seed a demo practice, its admin demo/demo, API token demo-token and the operator
    /// operator/operator into an empty database.
    #[arg(long, env = "AU_RELAY_DEMO", default_value_t = false)]
    pub demo: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "AU_RELAY_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Largest accepted scan upload of an insurer (all files of one request), in bytes.
    #[arg(long, env = "AU_RELAY_MAX_SCAN_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub max_scan_bytes: u64,
    /// Lifetime of a staff session in hours.
    #[arg(long, env = "AU_RELAY_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u64,
    /// A staff session unused this many minutes ends (idle timeout).
    #[arg(long, env = "AU_RELAY_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u64,
    /// Mark cookies Secure (set when served over TLS).
    #[arg(long, env = "AU_RELAY_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "AU_RELAY_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// `GET /metrics` requires `Authorization: Bearer <this>`. Without it `/metrics` is open
    /// only when the server listens on a loopback address (or in demo mode), else refused.
    #[arg(long, env = "AU_RELAY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,
    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose
    /// `X-Forwarded-For` names the client, e.g. `127.0.0.1` or `172.16.0.0/12` for nginx in
    /// compose. Empty: the header is ignored and the peer address is the client.
    #[arg(long, env = "AU_RELAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// The KBV Kostenträgerstammdatei as `scripts/update-sdkt.py` writes it (CSV): the capture
    /// form's insurer lookup and its warning on an expired IK. Without it the lookup offers
    /// the configured insurers only.
    #[arg(long, env = "AU_RELAY_SDKT_FILE")]
    pub sdkt_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub queue: QueueConfig,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone who reaches the server (it listens on loopback only, or the demo).
    Open,
    /// Bearer token with this SHA-256.
    Token(String),
    /// Listening beyond loopback without a token: refused.
    Closed,
}

impl ServeConfig {
    /// `/metrics` access from the token and the listen address.
    pub fn metrics_access(&self, bind: &str) -> MetricsAccess {
        let loopback = bind
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        match self.metrics_token.as_ref().map(|t| t.expose().trim()) {
            Some(t) if !t.is_empty() => MetricsAccess::Token(auth::token_hash(t)),
            _ if loopback || self.demo => MetricsAccess::Open,
            _ => MetricsAccess::Closed,
        }
    }
}

/// Settings of the queue workers (`serve` and `worker`).
#[derive(Debug, Clone, clap::Args)]
pub struct QueueConfig {
    /// Run the insurer queue workers in this process.
    #[arg(long = "queue", env = "AU_RELAY_QUEUE", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// Pushes in flight at once per process.
    #[arg(long, env = "AU_RELAY_QUEUE_CONCURRENCY", default_value_t = 16)]
    pub queue_concurrency: usize,
    /// Overall timeout of one push to an insurer, in seconds.
    #[arg(long, env = "AU_RELAY_PUSH_TIMEOUT_SECS", default_value_t = 30)]
    pub push_timeout_secs: u64,
    /// How long a claimed delivery stays with its worker before another may take it over
    /// (after a crash), in seconds. Keep it well above the push timeout.
    #[arg(long, env = "AU_RELAY_QUEUE_LEASE_SECS", default_value_t = 300)]
    pub lease_secs: u64,
    /// `X-KIM-Support` of every KIM mail: where insurers and the KIM provider reach the
    /// operator of this AU-Relay.
    #[arg(long, env = "AU_RELAY_KIM_SUPPORT", default_value = crate::kim::DEFAULT_SUPPORT)]
    pub kim_support: String,
    /// The TI directory (VZD) through the Konnektor's LDAP proxy, e.g. `ldaps://konnektor:636`:
    /// insurers' KIM addresses are looked up there by IK.
    #[arg(long, env = "AU_RELAY_VZD_URL")]
    pub vzd_url: Option<String>,
    /// A static file of insurers' KIM addresses (`<IK> <address>` per line), used where the
    /// directory is not reachable or has no entry.
    #[arg(long, env = "AU_RELAY_KIM_ADDRESS_FILE")]
    pub kim_address_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub mail: MailConfig,
}

/// Settings of the patient mail channel. Without `AU_RELAY_SMTP_HOST`, consented mails are
/// queued and wait until a server is configured.
#[derive(Debug, Clone, clap::Args)]
pub struct MailConfig {
    /// SMTP server for patient mails.
    #[arg(long, env = "AU_RELAY_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port (default by TLS mode: 25, 587 or 465).
    #[arg(long, env = "AU_RELAY_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// How the SMTP connection is secured; required with a host, no guessing.
    #[arg(long, env = "AU_RELAY_SMTP_TLS", value_enum)]
    pub smtp_tls: Option<TlsMode>,
    #[arg(long, env = "AU_RELAY_SMTP_USER")]
    pub smtp_user: Option<String>,
    #[arg(long, env = "AU_RELAY_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<Secret>,
    /// Sender of patient mails, e.g. "Praxis Dr. Muster <praxis@example.de>".
    #[arg(long, env = "AU_RELAY_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Overall timeout of one send, in seconds.
    #[arg(long, env = "AU_RELAY_SMTP_TIMEOUT_SECS", default_value_t = 30)]
    pub smtp_timeout_secs: u64,
    /// Password of the mailed PDF: `birthdate` (TTMMJJJJ) or `random` (shown to staff).
    #[arg(long, env = "AU_RELAY_MAIL_PASSWORD", default_value = "birthdate", value_parser = parse_policy)]
    pub mail_password: PasswordPolicy,
}

fn parse_policy(s: &str) -> Result<PasswordPolicy, String> {
    PasswordPolicy::parse(s).map_err(|e| e.to_string())
}

impl MailConfig {
    fn sender(&self) -> anyhow::Result<Option<Mailbox>> {
        self.mail_from
            .as_deref()
            .map(|from| {
                from.parse::<Mailbox>()
                    .map_err(|e| anyhow::anyhow!("AU_RELAY_MAIL_FROM {from:?}: {e}"))
            })
            .transpose()
    }

    /// The mailer's settings, `None` when no SMTP host is configured.
    pub fn settings(&self) -> anyhow::Result<Option<MailSettings>> {
        let Some(host) = &self.smtp_host else {
            return Ok(None);
        };
        let Some(tls) = self.smtp_tls else {
            anyhow::bail!("AU_RELAY_SMTP_TLS is required with AU_RELAY_SMTP_HOST: none, starttls or tls, as the server expects");
        };
        let Some(from) = self.sender()? else {
            anyhow::bail!("AU_RELAY_MAIL_FROM is required with AU_RELAY_SMTP_HOST");
        };
        let credentials = match (&self.smtp_user, &self.smtp_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.expose().to_owned())),
            (None, None) => None,
            _ => anyhow::bail!("AU_RELAY_SMTP_USER and AU_RELAY_SMTP_PASSWORD go together"),
        };
        Ok(Some(MailSettings {
            host: host.clone(),
            port: self.smtp_port.unwrap_or(tls.default_port()),
            tls,
            credentials,
            from,
            timeout: Duration::from_secs(self.smtp_timeout_secs.max(1)),
            password_policy: self.mail_password,
        }))
    }

    /// What capture needs: the password policy and the Message-ID domain.
    pub fn options(&self) -> anyhow::Result<MailOptions> {
        let mut options = MailOptions {
            policy: self.mail_password,
            ..MailOptions::default()
        };
        if let Some(from) = self.sender()? {
            options.message_domain = from.email.domain().to_owned();
        }
        Ok(options)
    }

    /// The mailer, if configured; a wrong setting is an error now, an unreachable server only a
    /// warning (its mails wait in the queue).
    pub fn mailer(&self) -> anyhow::Result<Option<Mailer>> {
        let Some(settings) = self.settings()? else {
            tracing::info!("no SMTP host configured: patient mails wait in the queue");
            return Ok(None);
        };
        let mailer = Mailer::new(&settings)?;
        let probe = mailer.clone();
        tokio::spawn(async move {
            match probe.check().await {
                Ok(()) => tracing::info!("SMTP server reachable"),
                Err(e) => tracing::warn!(error = %e, "SMTP server check failed; mails are retried"),
            }
        });
        Ok(Some(mailer))
    }
}

impl QueueConfig {
    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            concurrency: self.queue_concurrency.max(1),
            // Enough claimed to keep every push slot busy while the next batch is claimed.
            batch: i64::try_from((self.queue_concurrency.max(1) * 4).clamp(64, 1024)).unwrap_or(64),
            lease: Duration::from_secs(self.lease_secs.max(1)),
            ..WorkerSettings::default()
        }
    }

    pub fn client(&self) -> anyhow::Result<PushClient> {
        Ok(PushClient::new(Duration::from_secs(
            self.push_timeout_secs.max(1),
        ))?)
    }
}

/// The demo insurer's IK (AOK Niedersachsen in the KBV examples).
pub const DEMO_IK: &str = "109500969";

/// Starts the in-process fake insurer of the demo and points the demo IK's destination at it.
pub fn start_demo_insurer(db: &Database) -> anyhow::Result<(FakeInsurer, actix_web::dev::Server)> {
    let (fake, server) = FakeInsurer::start(0)?;
    storage::upsert_destination(
        &mut *db.conn()?,
        &storage::DestinationConfig {
            ik: DEMO_IK.into(),
            name: "Demo-Krankenkasse (AOK Niedersachsen)".into(),
            push_url: Some(fake.push_url()),
            health_url: Some(fake.health_url()),
            auth_header: None,
            rate_per_minute: None,
            kim_address: None,
            kim_source: None,
        },
    )?;
    Ok((fake, server))
}

/// Starts the in-process test Konnektor of the demo and makes the demo practice sign with it
/// (its doctor's test eHBA, no PIN terminal: signing works out of the box).
pub fn start_demo_konnektor(
    db: &Database,
) -> anyhow::Result<(FakeKonnektor, actix_web::dev::Server)> {
    let (fake, server) = FakeKonnektor::start(0)?;
    let mut conn = db.conn()?;
    let bsnr = demo_practice()?.0.bsnr;
    let practice_id = storage::practice_id_by_bsnr(&mut conn, &bsnr)?
        .ok_or_else(|| anyhow::anyhow!("demo practice missing"))?;
    let row = storage::KonnektorRow::unauthenticated(&practice_id, fake.base_url(), fake.context());
    let actor = storage::Actor {
        practice_id,
        name: "demo".into(),
        channel: "demo",
    };
    crate::service::save_konnektor(&mut conn, &actor, &row)?;
    Ok((fake, server))
}

/// The demo's KIM insurer (a second demo insurer, reached by KIM only).
pub const DEMO_KIM_IK: &str = "104212059";
pub const DEMO_KIM_PRACTICE: &str = "praxis-muster@arzt.kim.telematik-test";
pub const DEMO_KIM_INSURER: &str = "eau@demo-bkk.kim.telematik-test";

/// The demo's KIM client module stand-in (Postfix and Dovecot) and its insurer robot; both stop
/// when this is dropped.
pub struct DemoKim {
    pub standin: crate::kim::standin::StandIn,
    robot: tokio::task::JoinHandle<()>,
}

impl Drop for DemoKim {
    fn drop(&mut self) {
        self.robot.abort();
    }
}

/// Starts the demo's KIM route when this machine can run the stand-in (root, Debian's
/// `postfix` and `dovecot-pop3d`): the demo practice gets a KIM account, the Demo-BKK
/// (IK 104212059) a KIM address, and a robot reads the Demo-BKK's mailbox every two seconds.
/// Returns `None` (and the demo runs without KIM) otherwise.
pub fn start_demo_kim(db: &Database) -> anyhow::Result<Option<DemoKim>> {
    use crate::kim::standin::{Mailbox, StandIn};
    if !StandIn::available() {
        return Ok(None);
    }
    let mut conn = db.conn()?;
    let bsnr = demo_practice()?.0.bsnr;
    let practice_id = storage::practice_id_by_bsnr(&mut conn, &bsnr)?
        .ok_or_else(|| anyhow::anyhow!("demo practice missing"))?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let mut row = storage::KimAccountRow {
        fachdienst_smtp: Some("kim.arzt.kim.telematik-test:465".into()),
        fachdienst_pop3: Some("kim.arzt.kim.telematik-test:995".into()),
        poll_minutes: 1,
        ..storage::KimAccountRow::local(&practice_id, DEMO_KIM_PRACTICE, "env:UNUSED".into())
    };
    let (smtp_login, pop3_login) = crate::kim::logins_of(&row)?;
    let standin = StandIn::start(
        &["arzt.kim.telematik-test", "demo-bkk.kim.telematik-test"],
        vec![
            Mailbox {
                address: DEMO_KIM_PRACTICE.into(),
                password: password.clone(),
                logins: vec![smtp_login, pop3_login],
            },
            Mailbox {
                address: DEMO_KIM_INSURER.into(),
                password: password.clone(),
                logins: vec![],
            },
        ],
    )
    .map_err(|e| anyhow::anyhow!("KIM stand-in: {e}"))?;
    let secret = standin.dir().join("demo-kim-password");
    std::fs::write(&secret, &password)?;
    row.secret_ref = format!("file:{}", secret.display());
    row.smtp_port = i32::from(standin.smtp_port);
    row.pop3_port = i32::from(standin.pop3_port);
    row.ca_pem = Some(standin.ca_pem.clone());
    let actor = storage::Actor {
        practice_id,
        name: "demo".into(),
        channel: "demo",
    };
    crate::service::save_kim_account(&mut conn, &actor, &row)?;
    storage::upsert_destination(
        &mut conn,
        &storage::DestinationConfig {
            ik: DEMO_KIM_IK.into(),
            name: "Demo-BKK (per KIM)".into(),
            kim_address: Some(DEMO_KIM_INSURER.into()),
            kim_source: Some("operator".into()),
            ..Default::default()
        },
    )?;
    let robot = crate::kim::robot::Robot::new(
        DEMO_KIM_INSURER,
        &password,
        standin.smtp_port,
        standin.pop3_port,
        &standin.ca_pem,
    );
    let robot = tokio::spawn(async move {
        loop {
            match robot.fetch().await {
                Ok(got) if !got.is_empty() => {
                    tracing::info!(mails = got.len(), "Demo-BKK received eAU mails over KIM")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Demo-BKK robot could not read its mailbox"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    Ok(Some(DemoKim { standin, robot }))
}

/// Spawns the queue workers on the current runtime; they stop when `stop` turns true.
pub fn spawn_workers(
    db: Database,
    config: &QueueConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let routes = crate::queue::Connectors {
        http: config.client()?,
        kim: crate::kim::Transport::new(
            Duration::from_secs(config.push_timeout_secs.max(1)),
            &config.kim_support,
        ),
    };
    let mailer = config.mail.mailer()?;
    let settings = config.worker_settings();
    let timeout = Duration::from_secs(config.push_timeout_secs.max(1));
    let poll = crate::kim::poller::PollSettings {
        timeout,
        directory: crate::kim::vzd::DirectorySettings {
            url: config.vzd_url.clone(),
            mapping_file: config.kim_address_file.clone(),
            timeout,
        },
        ..Default::default()
    };
    // Each loop is started again after a panic instead of leaving the queue stopped.
    let pause = Duration::from_secs(5);
    let poller = tokio::spawn(crate::queue::supervised(
        "kim-poller",
        pause,
        stop.clone(),
        {
            let (db, stop) = (db.clone(), stop.clone());
            move || crate::kim::poller::run(db.clone(), poll.clone(), stop.clone())
        },
    ));
    Ok(tokio::spawn(async move {
        crate::queue::supervised("queue", pause, stop.clone(), move || {
            let (db, routes, mailer) = (db.clone(), routes.clone(), mailer.clone());
            crate::queue::run(db, routes, mailer, settings.clone(), stop.clone())
        })
        .await;
        let _ = poller.await;
    }))
}

/// Creates the demo practice, its doctor, its practice admin `demo`/`demo`, the API token
/// `demo-token` and the operator `operator`/`operator`, if the database holds no practice yet.
/// Returns whether it seeded. (The demo passwords are below the password rules on purpose:
/// they exist only in `--demo` mode, which listens on 127.0.0.1.)
pub fn seed_demo(db: &Database) -> anyhow::Result<bool> {
    let mut conn = db.conn()?;
    if storage::count_practices(&mut conn)? > 0 {
        return Ok(false);
    }
    let (practice, doctor) = demo_practice()?;
    let (hash, operator, insurer) = (
        auth::hash_password("demo")?,
        auth::hash_password("operator")?,
        auth::hash_password("kasse")?,
    );
    storage::atomically(&mut conn, |c| {
        storage::add_practice(
            c,
            &practice,
            &doctor,
            Some(("demo", &hash)),
            Some(&auth::token_hash("demo-token")),
        )?;
        storage::create_user(c, None, "operator", &operator, auth::Role::Operator)?;
        // A clerk of the demo insurer (IK 109500969): "Papier-AU abgleichen".
        storage::create_insurer_user(c, DEMO_IK, "kasse", &insurer).map(drop)
    })?;
    Ok(true)
}

/// The SDKT file, read once at start-up; a broken file stops the start (better than a lookup
/// that silently offers nothing).
fn insurer_directory(
    path: Option<&std::path::Path>,
) -> anyhow::Result<crate::domain::InsurerDirectory> {
    let Some(path) = path else {
        return Ok(crate::domain::InsurerDirectory::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("AU_RELAY_SDKT_FILE {}: {e}", path.display()))?;
    let directory = crate::domain::InsurerDirectory::parse(&text)
        .map_err(|e| anyhow::anyhow!("AU_RELAY_SDKT_FILE {}: {e}", path.display()))?;
    tracing::info!(entries = directory.len(), "insurer directory (SDKT) loaded");
    Ok(directory)
}

/// A running server and the address it listens on.
pub struct Running {
    pub server: actix_web::dev::Server,
    pub port: u16,
}

/// Binds and builds the server (not yet awaited). Port 0 picks a free port (tests).
pub fn start(
    db: Database,
    config: &ServeConfig,
    demo_insurer: Option<FakeInsurer>,
) -> anyhow::Result<Running> {
    let bind = if config.demo {
        let port = config.bind.rsplit(':').next().unwrap_or("8080");
        format!("127.0.0.1:{port}")
    } else {
        config.bind.clone()
    };
    let listener = TcpListener::bind(&bind)?;
    let port = listener.local_addr()?.port();
    // A scan upload cut off by the last stop keeps its pages and says so. The server starts
    // without a database too (it answers 503 until there is one): then the insurer's page does
    // it when the uploads are listed.
    match db
        .conn()
        .and_then(|mut c| crate::storage::interrupt_running_scan_uploads(&mut c))
    {
        Ok(0) => {}
        Ok(interrupted) => tracing::warn!(interrupted, "scan uploads cut off by the last stop"),
        Err(e) => tracing::warn!(error = %e, "scan uploads not checked at start"),
    }
    // Their files too: scans are health data.
    let removed = crate::scan::remove_stale_temp_dirs(
        &std::env::temp_dir(),
        std::time::Duration::from_secs(3600),
    );
    if removed > 0 {
        tracing::warn!(removed, "scan files left by the last stop removed");
    }
    let state = AppState {
        db,
        settings: Arc::new(Settings {
            max_body_bytes: config.max_body_bytes,
            max_scan_bytes: config.max_scan_bytes,
            session_ttl: Duration::from_secs(config.session_hours.max(1) * 3600),
            session_idle: Duration::from_secs(config.session_idle_minutes.max(1) * 60),
            secure_cookies: config.secure_cookies,
            mail: config.queue.mail.options()?,
            metrics: config.metrics_access(&bind),
            trusted_proxies: TrustedProxies::parse(&config.trusted_proxies).map_err(|e| {
                anyhow::anyhow!("AU_RELAY_TRUSTED_PROXIES: {e} is no address or network")
            })?,
            insurers: insurer_directory(config.sdkt_file.as_deref())?,
        }),
        demo_insurer,
        http_metrics: Arc::default(),
    };
    let http_metrics = state.http_metrics.clone();
    let secure_cookies = config.secure_cookies;
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        let observed = http_metrics.clone();
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |req, srv| {
                let started = std::time::Instant::now();
                let observed = observed.clone();
                let call = srv.call(req);
                async move {
                    let res = call.await?;
                    observed.observe(res.status().as_u16(), started.elapsed());
                    Ok(res)
                }
            })
            .wrap(middleware::from_fn(catch_panics))
            .wrap(security_headers(secure_cookies))
            // Path only, never the query string: no health data in logs.
            .wrap(
                middleware::Logger::new("%{METHOD}xi %U %s %Dms")
                    .custom_request_replace("METHOD", |r| r.method().to_string()),
            )
            .configure(routes)
    })
    .listen(listener)?;
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    tracing::info!(%bind, port, "listening");
    Ok(Running {
        server: server.run(),
        port,
    })
}
