//! The use cases that the web handlers and the `au-relay` command line share: which rows to
//! read, the decisions, the transactions and the audit rows. A change made with
//! `au-relay token create` is recorded exactly as the same change made on the operator's page
//! (only the actor differs: `web:<user>` or `cli:<system user>`). Handlers parse the request,
//! call one function here (inside `Database::run`) and render what it returns; `main.rs`
//! subcommands call the same functions on a connection of their own.
//!
//! No SQL here: every query is a `storage` function. Errors: the service layer has no error
//! enum of its own; a failure is storage's [`StorageError`](crate::storage::StorageError)
//! (through [`storage::Result`](crate::storage::Result)), which the web maps to 500/503 and
//! the CLI prints. Outcomes that the user is told about (throttled, wrong password, nothing
//! to revoke, not found) are not errors but typed results of the use case (`Option`, `bool`
//! or an enum of its own), which the caller turns into its page, status code or message.

mod accounts;
mod audit;
mod certificates;
mod connections;
mod dashboard;
mod destinations;
mod login;
mod tokens;

pub use accounts::*;
pub use audit::*;
pub use certificates::*;
pub use connections::*;
pub use dashboard::*;
pub use destinations::*;
pub use login::*;
pub use tokens::*;

use crate::storage::Actor;

/// The actor of a command-line change: the system user who ran it.
pub fn cli_actor() -> Actor {
    let name = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unbekannt".into());
    Actor {
        practice_id: String::new(),
        name,
        channel: "cli",
    }
}
