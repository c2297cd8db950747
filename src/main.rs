//! The `au-relay` command: serve (default), migrate, practice/user/token administration.
// No silent truncation or wrap: integer conversions go through From/TryFrom, geometry through
// `num` (the one module that allows `as`).
#![deny(clippy::as_conversions)]

use std::io::BufRead;

use anyhow::{bail, Context};
use au_relay::app::{self, ServeConfig};
use au_relay::auth;
use au_relay::domain::{Bsnr, Doctor, Lanr, Practice};
use au_relay::service;
use au_relay::storage::{self, Database};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "au-relay",
    version,
    about = "Keeps German sick notes flowing when the eAU route fails"
)]
struct Cli {
    /// SQLite file (default) or postgres:// URL.
    #[arg(
        long,
        global = true,
        env = "AU_RELAY_DATABASE_URL",
        default_value = "au-relay.db"
    )]
    database_url: String,
    /// Largest number of pooled database connections.
    #[arg(
        long,
        global = true,
        env = "AU_RELAY_DB_POOL_SIZE",
        default_value_t = 8
    )]
    db_pool_size: u32,
    /// Log format: text or json.
    #[arg(
        long,
        global = true,
        env = "AU_RELAY_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve(ServeConfig),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run only the insurer queue workers (no web server).
    Worker(au_relay::app::QueueConfig),
    /// Run a fake insurer implementing the push contract (for demos and tests).
    FakeInsurer {
        #[arg(long, default_value_t = 8090)]
        port: u16,
        /// Address to listen on (0.0.0.0 in a container).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Run a test Konnektor (connector.sds, EventService, SignatureService with a generated
    /// test eHBA and SMC-B); `PUT /control/fault` switches it to answer a fault.
    FakeKonnektor {
        #[arg(long, default_value_t = 8091)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Manage insurer destinations.
    #[command(subcommand)]
    Destination(DestinationCommand),
    /// Exit 0 when the URL answers 2xx (container health checks; the image has no curl).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
    /// Manage practices.
    #[command(subcommand)]
    Practice(PracticeCommand),
    /// Manage staff users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage practice API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum PracticeCommand {
    /// Add a practice with its first doctor.
    Add {
        #[arg(long)]
        bsnr: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        street: String,
        #[arg(long)]
        postal_code: String,
        #[arg(long)]
        city: String,
        #[arg(long)]
        phone: String,
        #[arg(long)]
        lanr: String,
        #[arg(long)]
        doctor_name: String,
        #[arg(long, default_value = "")]
        specialty: String,
        /// Land (ISO code such as NI, BY, BE) whose public holidays count for deadlines.
        #[arg(long, default_value = "NI")]
        land: String,
    },
}

#[derive(Subcommand)]
enum DestinationCommand {
    /// Add or reconfigure where an insurer (IK) receives pushed documents.
    Set {
        #[arg(long)]
        ik: String,
        #[arg(long)]
        name: String,
        /// Omit for an insurer that imports its queue itself (pull only).
        #[arg(long)]
        push_url: Option<String>,
        #[arg(long)]
        health_url: Option<String>,
        /// Sent as the Authorization header, e.g. "Bearer …".
        #[arg(long, env = "AU_RELAY_DESTINATION_AUTH")]
        auth_header: Option<au_relay::secret::Secret>,
        /// At most this many pushes per minute to this insurer.
        #[arg(long)]
        rate_per_minute: Option<i32>,
    },
    /// Declare (--on true) or clear (--on false) a Störung for an insurer.
    Outage {
        #[arg(long)]
        ik: String,
        #[arg(long, action = clap::ArgAction::Set)]
        on: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from AU_RELAY_PASSWORD or the first line of stdin
    /// (at least 12 characters, not containing the username).
    Add {
        /// The practice of a staff member or practice admin (none for an operator).
        #[arg(long)]
        bsnr: Option<String>,
        #[arg(long)]
        username: String,
        /// staff (capture, print, cancel), admin (also users, master data, audit), operator
        /// (destinations, practices, tokens; no practice, no patient data) or insurer (a clerk
        /// of the insurer `--ik`: scanned KK copies; no practice data).
        #[arg(long, default_value = "staff", value_parser = ["staff", "admin", "operator", "insurer"])]
        role: String,
        /// The insurer's IK of an insurer account.
        #[arg(long)]
        ik: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print it once: for practice software (--bsnr) or for an
    /// insurer's pull import (--insurer <IK>).
    Create {
        #[arg(long, conflicts_with = "insurer", required_unless_present = "insurer")]
        bsnr: Option<String>,
        #[arg(long)]
        insurer: Option<String>,
        #[arg(long, default_value = "API")]
        label: String,
    },
    /// List the tokens of a practice or an insurer (id, label, created, last use, revoked).
    List {
        #[arg(long, conflicts_with = "insurer", required_unless_present = "insurer")]
        bsnr: Option<String>,
        #[arg(long)]
        insurer: Option<String>,
    },
    /// Revoke a token by the id shown in the list.
    Revoke {
        #[arg(long, conflicts_with = "insurer", required_unless_present = "insurer")]
        bsnr: Option<String>,
        #[arg(long)]
        insurer: Option<String>,
        #[arg(long)]
        id: String,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AU_RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn open(cli: &Cli) -> anyhow::Result<Database> {
    let db =
        Database::connect(&cli.database_url, cli.db_pool_size).context("opening the database")?;
    let ran = db.migrate()?;
    if ran > 0 {
        tracing::info!(migrations = ran, "database migrated");
    }
    Ok(db)
}

fn practice_id(db: &Database, bsnr: &str) -> anyhow::Result<String> {
    let bsnr = Bsnr::parse(bsnr)?;
    let mut conn = db.conn()?;
    match service::practice_id_by_bsnr(&mut conn, &bsnr)? {
        Some(id) => Ok(id),
        None => bail!("no practice with BSNR {bsnr}: add it with `au-relay practice add`"),
    }
}

/// The owner of a token named by `--bsnr` or `--insurer`.
fn token_owner(
    db: &Database,
    bsnr: Option<&str>,
    insurer: Option<&str>,
) -> anyhow::Result<service::TokenOwner> {
    match (bsnr, insurer) {
        (Some(bsnr), _) => Ok(service::TokenOwner::Practice {
            id: practice_id(db, bsnr)?,
            bsnr: Bsnr::parse(bsnr)?.to_string(),
        }),
        (None, Some(ik)) => Ok(service::TokenOwner::Insurer {
            ik: au_relay::domain::InsurerIk::parse(ik)?.to_string(),
        }),
        (None, None) => bail!("--bsnr or --insurer is required"),
    }
}

fn read_password(username: &str) -> anyhow::Result<String> {
    let password = match std::env::var("AU_RELAY_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if let Err(rule) = auth::check_new_password(username, &password) {
        bail!("{rule}");
    }
    Ok(password)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Before anything loads OpenSSL (libpq, reqwest's peers): no exit handler (see there).
    au_relay::storage::init_openssl();
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    // A panic is logged with where it happened, never with its message: that could carry a
    // value of the request, i.e. health data. Handlers' panics become a 500 (see
    // `web::catch_panics`); the process never aborts on one.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(at, "panic");
    }));
    if let Some(Command::Healthcheck { url }) = &cli.command {
        // Before opening the database: the check must not touch it.
        let client = au_relay::insurers::PushClient::new(std::time::Duration::from_secs(5))?;
        return if client.probe(url).await {
            Ok(())
        } else {
            bail!("{url} is not healthy")
        };
    }
    // The test servers need no database (and create no file).
    match &cli.command {
        Some(Command::FakeInsurer { port, host }) => {
            let (fake, server) = au_relay::insurers::fake::FakeInsurer::start_on(host, *port)?;
            tracing::info!(push = %fake.push_url(), health = %fake.health_url(), "fake insurer running");
            // The server stops and restarts in `refused:<ms>` mode; the process runs until Ctrl-C.
            tokio::spawn(server);
            return stopped().await;
        }
        Some(Command::FakeKonnektor { port, host }) => {
            let (fake, server) = au_relay::konnektor::fake::FakeKonnektor::start_on(host, *port)?;
            tracing::info!(url = %fake.base_url(), "test Konnektor running");
            tokio::spawn(server);
            return stopped().await;
        }
        _ => {}
    }
    let db = open(&cli)?;
    match &cli.command {
        None => serve(db, &cli.serve).await,
        Some(Command::Serve(config)) => serve(db, config).await,
        Some(Command::Migrate | Command::Healthcheck { .. }) => Ok(()),
        Some(Command::Worker(config)) => {
            let (_tx, rx) = tokio::sync::watch::channel(false);
            tracing::info!("queue worker running");
            app::spawn_workers(db, config, rx)?.await?;
            Ok(())
        }
        Some(Command::FakeInsurer { .. } | Command::FakeKonnektor { .. }) => Ok(()),
        Some(Command::Destination(DestinationCommand::Set {
            ik,
            name,
            push_url,
            health_url,
            auth_header,
            rate_per_minute,
        })) => {
            let ik = au_relay::domain::InsurerIk::parse(ik)?;
            let config = storage::DestinationConfig {
                ik: ik.to_string(),
                name: name.clone(),
                push_url: push_url.clone(),
                health_url: health_url.clone(),
                auth_header: auth_header.clone(),
                rate_per_minute: *rate_per_minute,
                ..Default::default()
            };
            service::save_destination(&mut *db.conn()?, &service::cli_actor(), &config)?;
            println!("destination {ik} saved");
            Ok(())
        }
        Some(Command::Destination(DestinationCommand::Outage { ik, on })) => {
            let ik = au_relay::domain::InsurerIk::parse(ik)?;
            let action = service::DestinationAction::Outage(*on);
            let actor = service::cli_actor();
            if !service::destination_action(&mut *db.conn()?, &actor, ik.as_str(), action)? {
                bail!("no destination for IK {ik}: add it with `au-relay destination set`");
            }
            println!("Störung {ik}: {on}");
            Ok(())
        }
        Some(Command::Practice(PracticeCommand::Add {
            bsnr,
            name,
            street,
            postal_code,
            city,
            phone,
            lanr,
            doctor_name,
            specialty,
            land,
        })) => {
            let land = au_relay::domain::Land::parse(land)
                .ok_or_else(|| anyhow::anyhow!("unknown Land {land}: use BW, BY, BE, BB, HB, HH, HE, MV, NI, NW, RP, SL, SN, ST, SH or TH"))?;
            let practice = Practice {
                bsnr: Bsnr::parse(bsnr)?,
                name: name.clone(),
                street: street.clone(),
                postal_code: postal_code.clone(),
                city: city.clone(),
                phone: phone.clone(),
                more: Default::default(),
                id_kind: Default::default(),
            };
            let doctor = Doctor {
                lanr: Lanr::parse(lanr)?,
                name: doctor_name.clone(),
                specialty: specialty.clone(),
                qualification: Default::default(),
                id_kind: Default::default(),
                name_parts: None,
                telematik_id: None,
            };
            let actor = service::cli_actor();
            service::add_practice(&mut *db.conn()?, &actor, &practice, &doctor, land, None)?;
            println!("practice {} added", practice.bsnr);
            Ok(())
        }
        Some(Command::User(UserCommand::Add {
            bsnr,
            username,
            role,
            ik,
        })) => {
            let role =
                auth::Role::parse(role).context("role: staff, admin, operator or insurer")?;
            if let Some(ik) = ik {
                if role != auth::Role::Insurer || bsnr.is_some() {
                    bail!("--ik belongs to --role insurer only, without --bsnr");
                }
                let ik = au_relay::domain::InsurerIk::parse(ik)?;
                if let Err(rule) = auth::check_username(username) {
                    bail!("{rule}");
                }
                let hash = auth::hash_password(&read_password(username)?)?;
                let actor = service::cli_actor();
                service::add_insurer_user(&mut *db.conn()?, &actor, ik.as_str(), username, &hash)?;
                println!("user {username} added (insurer {})", ik.as_str());
                return Ok(());
            }
            if role == auth::Role::Insurer {
                bail!("--ik is required for an insurer account");
            }
            let id = match (bsnr, role.in_practice()) {
                (Some(bsnr), true) => Some(practice_id(&db, bsnr)?),
                (None, false) => None,
                (Some(_), false) => bail!("an operator belongs to no practice: leave out --bsnr"),
                (None, true) => bail!("--bsnr is required for staff and admin"),
            };
            if let Err(rule) = auth::check_username(username) {
                bail!("{rule}");
            }
            let hash = auth::hash_password(&read_password(username)?)?;
            let actor = service::cli_actor();
            service::add_user(
                &mut *db.conn()?,
                &actor,
                id.as_deref(),
                username,
                &hash,
                role,
            )?;
            println!("user {username} added ({})", role.as_str());
            Ok(())
        }
        Some(Command::Token(TokenCommand::List { bsnr, insurer })) => {
            let owner = match (bsnr, insurer) {
                (Some(bsnr), _) => service::TokenOwner::Practice {
                    id: practice_id(&db, bsnr)?,
                    bsnr: bsnr.clone(),
                },
                (None, Some(ik)) => service::TokenOwner::Insurer { ik: ik.clone() },
                (None, None) => bail!("--bsnr or --insurer is required"),
            };
            let tokens = service::tokens(&mut *db.conn()?, &owner)?;
            let when = |t: Option<chrono::NaiveDateTime>| {
                t.map_or_else(|| "-".to_owned(), |t| t.to_string())
            };
            for t in tokens {
                println!(
                    "{}  {}  created {}  last used {}  revoked {}",
                    t.id,
                    t.label,
                    t.created_at,
                    when(t.last_used_at),
                    when(t.revoked_at)
                );
            }
            Ok(())
        }
        Some(Command::Token(TokenCommand::Revoke { bsnr, insurer, id })) => {
            let owner = token_owner(&db, bsnr.as_deref(), insurer.as_deref())?;
            let actor = service::cli_actor();
            let revoked = service::revoke_token(&mut *db.conn()?, &actor, &owner, id)?;
            if !revoked {
                bail!("no active token with id {id}");
            }
            println!("token {id} revoked");
            Ok(())
        }
        Some(Command::Token(TokenCommand::Create {
            bsnr,
            insurer,
            label,
        })) => {
            let owner = token_owner(&db, bsnr.as_deref(), insurer.as_deref())?;
            let token = auth::new_token();
            let actor = service::cli_actor();
            let hash = auth::token_hash(&token);
            service::create_token(&mut *db.conn()?, &actor, &owner, &hash, label)?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(db: Database, config: &ServeConfig) -> anyhow::Result<()> {
    let mut demo_insurer = None;
    // Kept until the server stops: dropping it stops the demo's mail servers.
    let mut _demo_kim = None;
    if config.demo {
        if app::seed_demo(&db)? {
            tracing::info!("demo data seeded: practice \"Praxis Dr. Muster\", practice admin demo/demo, operator operator/operator, API token demo-token");
        }
        let (fake, server) = app::start_demo_insurer(&db)?;
        tokio::spawn(server);
        tracing::info!(port = fake.port, ik = app::DEMO_IK, "demo insurer running");
        demo_insurer = Some(fake);
        let (konnektor, server) = app::start_demo_konnektor(&db)?;
        tokio::spawn(server);
        tracing::info!(url = %konnektor.base_url(), "demo Konnektor running (test eHBA)");
        match app::start_demo_kim(&db) {
            Ok(Some(kim)) => {
                tracing::info!(
                    smtp = kim.standin.smtp_port,
                    pop3 = kim.standin.pop3_port,
                    ik = app::DEMO_KIM_IK,
                    "demo KIM route running (Postfix and Dovecot as the client module)"
                );
                _demo_kim = Some(kim);
            }
            Ok(None) => tracing::warn!(
                "demo without KIM: the KIM stand-in needs root and Debian's postfix and dovecot-pop3d"
            ),
            Err(e) => tracing::warn!(error = %e, "demo without KIM"),
        }
        tracing::warn!("demo mode: listening on 127.0.0.1 only");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = if config.queue.enabled {
        Some(app::spawn_workers(db.clone(), &config.queue, stopped)?)
    } else {
        None
    };
    let running = app::start(db, config, demo_insurer)?;
    // SIGTERM (docker stop, systemd, kill) stops as gracefully as SIGINT: the workers finish
    // their round and the demo's mail servers are stopped.
    #[cfg(unix)]
    {
        let handle = running.server.handle();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                tracing::info!("SIGTERM received: stopping");
                handle.stop(true).await;
            }
        });
    }
    tracing::info!("AU-Relay at http://127.0.0.1:{}/", running.port);
    running.server.await?;
    // The server stopped (SIGINT/SIGTERM): let the workers finish their round.
    let _ = stop.send(true);
    if let Some(w) = workers {
        let _ = w.await;
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM (a test server's whole life).
async fn stopped() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
