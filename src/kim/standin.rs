//! A KIM client module stand-in made of real mail servers from Debian, for the tests, the
//! benchmark and the demo: Postfix accepts the submission (SMTPS, SASL through Dovecot, the
//! login name in the client module's `#` form, `MAIL FROM` bound to the login) and writes the
//! genuine RFC 3464 delivery status notifications; Dovecot serves the mailboxes over POP3S.
//! Both run with a private configuration on 127.0.0.1 and free ports, under a directory of
//! their own that is removed when the stand-in is dropped. Needs root (Postfix's master) and
//! the packages `postfix`, `dovecot-pop3d` and `openssl`.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A mailbox of the stand-in: its address, password and the login names that open it (the
/// address itself, and the client module's `#` forms for the practice).
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub address: String,
    pub password: String,
    pub logins: Vec<String>,
}

/// The running stand-in.
#[derive(Debug)]
pub struct StandIn {
    dir: PathBuf,
    /// SMTPS and POP3S (TLS from the first byte).
    pub smtp_port: u16,
    pub pop3_port: u16,
    /// Plain SMTP and POP3 that offer STARTTLS / STLS (and take plain logins, as a client
    /// module on the same machine may).
    pub smtp_plain_port: u16,
    pub pop3_plain_port: u16,
    /// The certificate authority of the servers' certificate (what a practice imports).
    pub ca_pem: String,
    domains: Vec<String>,
    mailboxes: Vec<Mailbox>,
    /// Addresses taken off the Fachdienst.
    failing: Vec<String>,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs a command to its end. Its output goes to a file, not a pipe: a daemon it starts
/// inherits the descriptors and would keep a pipe open for as long as it runs.
fn run(cmd: &mut Command) -> Result<(), String> {
    let log = std::env::temp_dir().join(format!(
        "au-relay-kim-cmd-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"));
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    match status? {
        s if s.success() => Ok(()),
        _ => Err(format!("{cmd:?}: {output}")),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn md5_hex(s: &str) -> Result<String, String> {
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::md5(), s.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(hex::encode(digest))
}

fn wait_for(port: u16) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("port {port} did not open"))
}

/// The mail user the mailboxes belong to (Dovecot refuses root).
const MAIL_UID: u32 = 65534;

impl StandIn {
    /// Whether this machine can run the stand-in (root, Postfix, Dovecot).
    pub fn available() -> bool {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        root && Path::new("/usr/sbin/postfix").exists() && Path::new("/usr/sbin/dovecot").exists()
    }

    /// Starts Postfix and Dovecot for `domains` with `mailboxes`.
    pub fn start(domains: &[&str], mailboxes: Vec<Mailbox>) -> Result<Self, String> {
        let dir = PathBuf::from(format!(
            "/tmp/au-relay-kim-{}",
            uuid::Uuid::new_v4().simple()
        ));
        for sub in [
            "postfix",
            "queue",
            "data",
            "dovecot/run",
            "dovecot/state",
            "mail",
            "tls",
        ] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        let mut standin = Self {
            dir,
            smtp_port: free_port()?,
            pop3_port: free_port()?,
            smtp_plain_port: free_port()?,
            pop3_plain_port: free_port()?,
            ca_pem: String::new(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            mailboxes,
            failing: Vec::new(),
        };
        standin.prepare()?;
        standin.start_dovecot()?;
        standin.start_postfix()?;
        Ok(standin)
    }

    /// The stand-in's own directory (removed with it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    fn prepare(&mut self) -> Result<(), String> {
        run(Command::new("chmod").args(["755", &self.path("")]))?;
        run(Command::new("chown").args([&format!("{MAIL_UID}"), &self.path("mail")]))?;
        run(Command::new("chown").args(["postfix", &self.path("data")]))?;
        let tls = self.path("tls");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", "/CN=KIM Test-CA", "-keyout"])
            .arg(format!("{tls}/ca.key"))
            .arg("-out")
            .arg(format!("{tls}/ca.pem")))?;
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=kim-clientmodul",
            ])
            .arg("-keyout")
            .arg(format!("{tls}/key.pem"))
            .arg("-out")
            .arg(format!("{tls}/req.pem")))?;
        write(
            &self.dir.join("tls/ext.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )?;
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
            .arg("-in")
            .arg(format!("{tls}/req.pem"))
            .arg("-CA")
            .arg(format!("{tls}/ca.pem"))
            .arg("-CAkey")
            .arg(format!("{tls}/ca.key"))
            .arg("-extfile")
            .arg(format!("{tls}/ext.cnf"))
            .arg("-out")
            .arg(format!("{tls}/cert.pem")))?;
        run(Command::new("chmod").args([
            "644",
            &format!("{tls}/key.pem"),
            &format!("{tls}/cert.pem"),
        ]))?;
        self.ca_pem =
            std::fs::read_to_string(format!("{tls}/ca.pem")).map_err(|e| e.to_string())?;
        self.write_accounts()?;
        self.write_dovecot_conf()?;
        self.write_postfix_conf()
    }

    fn write_accounts(&self) -> Result<(), String> {
        let mut passwd = String::new();
        let mut maps = String::new();
        for m in &self.mailboxes {
            let mut logins = vec![m.address.clone()];
            logins.extend(m.logins.iter().cloned());
            for login in logins {
                // Keyed by the MD5 of the login name: `#` and `:` of the client module's
                // login names cannot appear in a passwd-file key.
                passwd.push_str(&format!(
                    "{}:{{PLAIN}}{}::::::user={}\n",
                    md5_hex(&login)?,
                    m.password,
                    m.address
                ));
            }
            if !self.failing.contains(&m.address) {
                maps.push_str(&format!("{0} {0}/Maildir/\n", m.address));
            }
        }
        write(&self.dir.join("dovecot/passwd"), &passwd)?;
        write(&self.dir.join("postfix/mailboxes"), &maps)
    }

    fn write_dovecot_conf(&self) -> Result<(), String> {
        let d = self.path("");
        let conf = format!(
            r#"base_dir = {d}/dovecot/run
state_dir = {d}/dovecot/state
instance_name = au-relay-kim-{pop3}
listen = 127.0.0.1
protocols = pop3
ssl = yes
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
log_path = {d}/dovecot/log
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_username_chars =
first_valid_uid = 100
passdb {{
  driver = passwd-file
  args = username_format=%Mu {d}/dovecot/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_plain}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3}
    ssl = yes
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
"#,
            pop3 = self.pop3_port,
            pop3_plain = self.pop3_plain_port,
            uid = MAIL_UID,
        );
        write(&self.dir.join("dovecot/dovecot.conf"), &conf)
    }

    fn write_postfix_conf(&self) -> Result<(), String> {
        let d = self.path("");
        let main = format!(
            r#"compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = kim-fachdienst.test
mydomain = kim-fachdienst.test
myorigin = kim-fachdienst.test
mydestination =
relayhost =
mynetworks = 127.0.0.0/8
maillog_file_prefixes = /tmp
maillog_file = {d}/postfix.log
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = texthash:{d}/postfix/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
virtual_minimum_uid = 100
virtual_destination_concurrency_limit = 50
smtpd_reject_unlisted_recipient = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {d}/dovecot/run/auth-postfix
smtpd_sender_login_maps = regexp:{d}/postfix/sender_login
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_tls_cert_file = {d}/tls/cert.pem
smtpd_tls_key_file = {d}/tls/key.pem
smtpd_tls_security_level = may
smtpd_client_connection_count_limit = 200
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
message_size_limit = 35882577
biff = no
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1d
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
"#,
            domains = self.domains.join(" "),
            uid = MAIL_UID,
        );
        write(&self.dir.join("postfix/main.cf"), &main)?;
        write(&self.dir.join("postfix/sender_login"), "/^(.*)$/ ${1}\n")?;
        let master = format!(
            "127.0.0.1:{smtp} inet n - n - 100 smtpd -o smtpd_tls_wrappermode=yes\n\
             127.0.0.1:{plain} inet n - n - 100 smtpd\n{}",
            [
                "pickup unix n - n 60 1 pickup",
                "cleanup unix n - n - 0 cleanup",
                "qmgr unix n - n 300 1 qmgr",
                "tlsmgr unix - - n 1000? 1 tlsmgr",
                "rewrite unix - - n - - trivial-rewrite",
                "bounce unix - - n - 0 bounce",
                "defer unix - - n - 0 bounce",
                "trace unix - - n - 0 bounce",
                "verify unix - - n - 1 verify",
                "flush unix n - n 1000? 0 flush",
                "proxymap unix - - n - - proxymap",
                "smtp unix - - n - - smtp",
                "relay unix - - n - - smtp",
                "showq unix n - n - - showq",
                "error unix - - n - - error",
                "retry unix - - n - - error",
                "discard unix - - n - - discard",
                "virtual unix - n n - - virtual",
                "anvil unix - - n - 1 anvil",
                "scache unix - - n - 1 scache",
                "postlog unix-dgram n - n - 1 postlogd",
            ]
            .join("\n")
                + "\n",
            smtp = self.smtp_port,
            plain = self.smtp_plain_port,
        );
        write(&self.dir.join("postfix/master.cf"), &master)
    }

    fn start_dovecot(&self) -> Result<(), String> {
        run(Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(self.path("dovecot/dovecot.conf")))?;
        wait_for(self.pop3_port)?;
        wait_for(self.pop3_plain_port)
    }

    /// Starts (again) the SMTP side. `postfix start` prints nothing on failure (its words go to
    /// its log): a failed start is tried twice more, and the error carries the log's end.
    pub fn start_postfix(&self) -> Result<(), String> {
        let mut failed = String::new();
        for attempt in 1..=3u64 {
            let started = run(Command::new("/usr/sbin/postfix")
                .arg("-c")
                .arg(self.path("postfix"))
                .arg("start"));
            match started {
                Ok(()) => {
                    wait_for(self.smtp_port)?;
                    return wait_for(self.smtp_plain_port);
                }
                Err(e) => {
                    let log = std::fs::read_to_string(self.path("postfix.log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    failed = format!("{e} (postfix.log: {})", tail.join(" | "));
                    std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
                }
            }
        }
        Err(failed)
    }

    /// Stops the SMTP side (the client module unreachable).
    pub fn stop_postfix(&self) -> Result<(), String> {
        run(Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.path("postfix"))
            .arg("stop"))?;
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.smtp_port)).is_ok()
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Makes the mailbox of `address` full (`true`: the Fachdienst keeps the mail and retries,
    /// no receipt comes) or usable again (`false`, and the waiting mail is delivered at once).
    pub fn set_mailbox_full(&self, address: &str, full: bool) -> Result<(), String> {
        let mailbox = self.dir.join("mail").join(address);
        std::fs::create_dir_all(&mailbox).map_err(|e| e.to_string())?;
        run(Command::new("chown")
            .arg(format!("{MAIL_UID}"))
            .arg(&mailbox))?;
        run(Command::new("chmod")
            .arg(if full { "000" } else { "700" })
            .arg(&mailbox))?;
        if !full {
            self.flush()?;
        }
        Ok(())
    }

    /// Takes the mailbox of `address` off the Fachdienst (`true`): mail to it is accepted and
    /// then fails, with a failed delivery status notification to the sender, as KIM 1.5 does
    /// for recipients it cannot serve.
    pub fn set_unknown(&mut self, address: &str, unknown: bool) -> Result<(), String> {
        self.failing.retain(|a| a != address);
        if unknown {
            self.failing.push(address.to_owned());
        }
        self.write_accounts()?;
        run(Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.path("postfix"))
            .arg("reload"))
    }

    /// Delivers deferred mail now.
    fn flush(&self) -> Result<(), String> {
        run(Command::new("/usr/sbin/postqueue")
            .arg("-c")
            .arg(self.path("postfix"))
            .arg("-f"))
    }

    /// Mails in the mailbox of `address` (read or not, not yet deleted).
    pub fn mail_files(&self, address: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) =
                std::fs::read_dir(self.dir.join(format!("mail/{address}/Maildir/{sub}")))
            {
                out.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
        out.sort();
        out
    }

    /// Mails still in Postfix's queue (accepted, not yet delivered or bounced).
    pub fn queued(&self) -> usize {
        ["incoming", "active", "deferred", "maildrop"]
            .iter()
            .map(|q| count_files(&self.dir.join("queue").join(q)))
            .sum()
    }

    /// Appends a line to the stand-in's log (for failure reports).
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.join("postfix.log")).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(self.dir.join("dovecot/log")).unwrap_or_default());
        text
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.path("postfix"))
            .arg("abort")
            .output();
        let _ = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(self.path("dovecot/dovecot.conf"))
            .arg("stop")
            .output();
        let _ = std::io::stderr().flush();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
