//! Insurers' KIM addresses from the TI directory (VZD), against a real OpenLDAP server: slapd
//! with a private configuration on 127.0.0.1, the VZD's attribute names (`domainID`,
//! `entryType`, `mail`, `komLeData`, `kimData`) in a test schema, entries as the eEB guide
//! shows them for the reference environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use au_relay::domain::InsurerIk;
use au_relay::kim::vzd::{self, DirectorySettings};
use au_relay::storage::{self, Database, DestinationConfig, KimAccountRow};

/// The VZD attributes, under the documentation enterprise number 32473 (the real OIDs are
/// gematik's; names and syntax are what a client sees).
const SCHEMA: &str = r#"
attributetype ( 1.3.6.1.4.1.32473.1.1 NAME 'domainID' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.2 NAME 'entryType' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.3 NAME 'komLeData' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.4 NAME 'kimData' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.5 NAME 'telematikID' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.6 NAME 'professionOID' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.7 NAME 'personalEntry' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.32473.2.1 NAME 'vzd-komleview' SUP top STRUCTURAL MUST uid
  MAY ( mail $ displayName $ domainID $ entryType $ komLeData $ kimData $ telematikID $ professionOID $ personalEntry $ street $ postalCode $ l ) )
"#;

const ENTRIES: &str = "dn: dc=data,dc=vzd
objectClass: top
objectClass: dcObject
objectClass: organization
o: VZD
dc: data

dn: uid=fc695fd6-b6e9-4754-9684-fee70f743086,dc=data,dc=vzd
objectClass: vzd-komleview
uid: fc695fd6-b6e9-4754-9684-fee70f743086
mail: tk-dt03@akquinet.kim.telematik-test
displayName: Techniker Krankenkasse
personalEntry: false
domainID: 101575519
entryType: 5
telematikID: 8-01-0000000090
professionOID: 1.2.276.0.76.4.59
komLeData: 1.0,tk-dt03@akquinet.kim.telematik-test
street: Bramfelder Str. 140
postalCode: 22305
l: Hamburg

dn: uid=0b8d2f0e-1111-4c3a-9a0e-3c1e5b2d7a10,dc=data,dc=vzd
objectClass: vzd-komleview
uid: 0b8d2f0e-1111-4c3a-9a0e-3c1e5b2d7a10
mail: poststelle@kk.kim.telematik-test
displayName: Testkasse
domainID: 104212059
entryType: 5
professionOID: 1.2.276.0.76.4.59
kimData: eau-eingang@kk.kim.telematik-test,1.5+

dn: uid=5d1e0c9a-2222-4b8e-8f4c-7b0a9e3c2d11,dc=data,dc=vzd
objectClass: vzd-komleview
uid: 5d1e0c9a-2222-4b8e-8f4c-7b0a9e3c2d11
mail: praxis@arzt.kim.telematik-test
displayName: Praxis mit derselben Nummer
domainID: 109500969
entryType: 1
komLeData: 1.5,praxis@arzt.kim.telematik-test
";

/// A private slapd on 127.0.0.1.
struct Slapd {
    dir: tempfile::TempDir,
    url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("slapd and slapadd (Debian packages slapd, ldap-utils)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Slapd {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::write(d.join("vzd.schema"), SCHEMA).unwrap();
        std::fs::write(d.join("data.ldif"), ENTRIES).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
include /etc/ldap/schema/inetorgperson.schema\ninclude {d}/vzd.schema\n\
pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
database mdb\nmaxsize 10485760\nsuffix \"dc=data,dc=vzd\"\nrootdn \"cn=admin,dc=data,dc=vzd\"\n\
rootpw geheim\ndirectory {d}/db\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        run(Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif")));
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}/");
        // slapd writes its output to a file: it daemonizes and keeps its descriptors.
        let log = std::fs::File::create(d.join("slapd.log")).unwrap();
        run(Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(&url)
            .stdout(log.try_clone().unwrap())
            .stderr(log));
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "slapd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { dir, url }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("slapd.pid")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn ik(s: &str) -> InsurerIk {
    InsurerIk::parse_structure(s).unwrap()
}

#[tokio::test]
async fn the_directory_names_an_insurers_kim_address_by_ik_and_entry_type() {
    let slapd = Slapd::start();
    let t = Duration::from_secs(5);
    // komLeData (the reference environment's TK entry), kimData before mail.
    assert_eq!(
        vzd::lookup(&slapd.url, &ik("101575519"), t)
            .await
            .unwrap()
            .as_deref(),
        Some("tk-dt03@akquinet.kim.telematik-test")
    );
    assert_eq!(
        vzd::lookup(&slapd.url, &ik("104212059"), t)
            .await
            .unwrap()
            .as_deref(),
        Some("eau-eingang@kk.kim.telematik-test")
    );
    // Same number, but not an insurer (entryType 1): no address.
    assert_eq!(
        vzd::lookup(&slapd.url, &ik("109500969"), t).await.unwrap(),
        None
    );
    assert_eq!(
        vzd::lookup(&slapd.url, &ik("100696012"), t).await.unwrap(),
        None
    );
    // No directory there: an error, not "no address".
    let closed = format!("ldap://127.0.0.1:{}/", free_port());
    assert!(vzd::lookup(&closed, &ik("104212059"), t).await.is_err());
}

fn kim_account(db: &Database, practice_id: &str) {
    let row = KimAccountRow {
        smtp_port: 9,
        pop3_port: 9,
        ..KimAccountRow::local(
            practice_id,
            "praxis@arzt.kim.telematik-test",
            "env:UNUSED".into(),
        )
    };
    let actor = storage::Actor {
        practice_id: practice_id.to_owned(),
        name: "t".into(),
        channel: "test",
    };
    au_relay::service::save_kim_account(&mut db.conn().unwrap(), &actor, &row).unwrap();
}

fn mapping(dir: &Path) -> PathBuf {
    let file = dir.join("kim-adressen.txt");
    std::fs::write(
        &file,
        "# IK Adresse\n100696012 eau@aus-der-liste.kim.telematik-test\n",
    )
    .unwrap();
    file
}

#[tokio::test]
async fn insurers_with_waiting_documents_get_their_address_from_the_directory_or_the_list() {
    let slapd = Slapd::start();
    let (url, dir) = common::fresh_database();
    let db = Database::connect(&url, 2).unwrap();
    db.migrate().unwrap();
    au_relay::app::seed_demo(&db).unwrap();
    let practice = common::demo_practice_id(&db);
    kim_account(&db, &practice);
    // The operator's own address for one insurer stays.
    storage::upsert_destination(
        &mut db.conn().unwrap(),
        &DestinationConfig {
            ik: "101575519".into(),
            name: "TK".into(),
            kim_address: Some("vom-betrieb@tk.kim.telematik-test".into()),
            kim_source: Some("operator".into()),
            ..Default::default()
        },
    )
    .unwrap();
    for ik in ["104212059", "101575519", "100696012", "109500969"] {
        common::store_certificates(&db, &practice, ik, 1);
    }
    let files = tempfile::tempdir().unwrap();
    let settings = DirectorySettings {
        url: Some(slapd.url.clone()),
        mapping_file: Some(mapping(files.path())),
        timeout: Duration::from_secs(5),
    };
    let found = vzd::resolve_due(&db, &settings).await.unwrap();
    assert_eq!(found, 2, "directory for 104212059, list for 100696012");
    let mut conn = db.conn().unwrap();
    let dest = |conn: &mut storage::AnyConnection, ik: &str| {
        storage::destination(conn, ik).unwrap().unwrap()
    };
    let kk = dest(&mut conn, "104212059");
    assert_eq!(
        kk.kim_address.as_deref(),
        Some("eau-eingang@kk.kim.telematik-test")
    );
    assert_eq!(kk.kim_source.as_deref(), Some("vzd"));
    let listed = dest(&mut conn, "100696012");
    assert_eq!(
        listed.kim_address.as_deref(),
        Some("eau@aus-der-liste.kim.telematik-test")
    );
    assert_eq!(listed.kim_source.as_deref(), Some("file"));
    assert_eq!(
        dest(&mut conn, "101575519").kim_address.as_deref(),
        Some("vom-betrieb@tk.kim.telematik-test")
    );
    let none = dest(&mut conn, "109500969");
    assert_eq!(none.kim_address, None);
    assert!(none.last_error.unwrap().contains("Post"));
    drop(conn);
    // Looked up today: not asked again until tomorrow.
    assert_eq!(vzd::resolve_due(&db, &settings).await.unwrap(), 0);
    drop(dir);
}
