//! The `au-relay` command: serve (default), migrate, practice/user/token administration.

use std::io::BufRead;

use anyhow::{bail, Context};
use au_relay::app::{self, ServeConfig};
use au_relay::auth;
use au_relay::domain::{Bsnr, Doctor, Lanr, Practice};
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
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a staff user; the password is read from AU_RELAY_PASSWORD or the first line of stdin.
    Add {
        #[arg(long)]
        bsnr: String,
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "staff")]
        role: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a practice and print it once.
    Create {
        #[arg(long)]
        bsnr: String,
        #[arg(long, default_value = "Praxissoftware")]
        label: String,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AU_RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
    match storage::practice_id_by_bsnr(&mut conn, &bsnr)? {
        Some(id) => Ok(id),
        None => bail!("no practice with BSNR {bsnr}: add it with `au-relay practice add`"),
    }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("AU_RELAY_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 8 {
        bail!("the password needs at least 8 characters");
    }
    Ok(password)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let db = open(&cli)?;
    match &cli.command {
        None => serve(db, &cli.serve).await,
        Some(Command::Serve(config)) => serve(db, config).await,
        Some(Command::Migrate) => Ok(()),
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
        })) => {
            let practice = Practice {
                bsnr: Bsnr::parse(bsnr)?,
                name: name.clone(),
                street: street.clone(),
                postal_code: postal_code.clone(),
                city: city.clone(),
                phone: phone.clone(),
                id_kind: Default::default(),
            };
            let doctor = Doctor {
                lanr: Lanr::parse(lanr)?,
                name: doctor_name.clone(),
                specialty: specialty.clone(),
                qualification: Default::default(),
                id_kind: Default::default(),
                name_parts: None,
            };
            let mut conn = db.conn()?;
            storage::add_practice(&mut conn, &practice, &doctor, None, None)?;
            println!("practice {} added", practice.bsnr);
            Ok(())
        }
        Some(Command::User(UserCommand::Add {
            bsnr,
            username,
            role,
        })) => {
            let id = practice_id(&db, bsnr)?;
            let hash = auth::hash_password(&read_password()?)?;
            let mut conn = db.conn()?;
            storage::create_user(&mut conn, &id, username, &hash, role)?;
            println!("user {username} added");
            Ok(())
        }
        Some(Command::Token(TokenCommand::Create { bsnr, label })) => {
            let id = practice_id(&db, bsnr)?;
            let token = auth::new_token();
            let mut conn = db.conn()?;
            storage::create_api_token(&mut conn, &auth::token_hash(&token), &id, label)?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(db: Database, config: &ServeConfig) -> anyhow::Result<()> {
    if config.demo {
        if app::seed_demo(&db)? {
            tracing::info!("demo data seeded: practice \"Praxis Dr. Muster\", user demo/demo, API token demo-token");
        }
        tracing::warn!("demo mode: listening on 127.0.0.1 only");
    }
    let running = app::start(db, config)?;
    tracing::info!("AU-Relay at http://127.0.0.1:{}/", running.port);
    running.server.await?;
    Ok(())
}
