//! Signed eAU documents: CAdES enveloping signatures (CMS `SignedData` with the KBV bundle as
//! encapsulated content, the `.p7s` a Konnektor makes with `SignDocument`, TA eAU chapter 4).
//!
//! [`verify`] checks that a file is cryptographically intact: the signer's certificate is
//! embedded, the digest of the content matches the signed `messageDigest` attribute, and the
//! signature verifies against that certificate's key (OpenSSL, so RSA and the brainpool curves
//! of eHBA and SMC-B cards work alike). It does **not** validate the certificate's chain to the
//! TI trust anchors (that needs the gematik TSL and OCSP): the signer is recorded as found, and
//! the staff UI says so.
//!
//! The structure (signer identifier, signed attributes, certificates) is read with RustCrypto's
//! `cms` from the DER form OpenSSL re-encodes, so files in BER (indefinite lengths, as some
//! signers stream them) are read as well; the stored file is always the bytes as received.

use chrono::NaiveDateTime;
use cms::cert::x509::der::{self, oid::ObjectIdentifier, Decode, Encode};
use cms::cert::{x509::Certificate, CertificateChoices};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use openssl::cms::{CMSOptions, CmsContentInfo};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The MIME type of a signed eAU file.
pub const CONTENT_TYPE: &str = "application/pkcs7-mime";

/// How a document was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Signed by practice software and imported as a `.p7s`.
    Import,
    /// QES with the doctor's eHBA through the practice's Konnektor.
    Hba,
    /// With the practice's SMC-B (BMV-Ä Anlage 2b): the patient's copy is signed by hand.
    SmcB,
}

impl Method {
    pub fn code(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::Hba => "hba",
            Self::SmcB => "smcb",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "import" => Some(Self::Import),
            "hba" => Some(Self::Hba),
            "smcb" => Some(Self::SmcB),
            _ => None,
        }
    }

    /// German, for staff.
    pub fn label(self) -> &'static str {
        match self {
            Self::Import => "signiert von der Praxissoftware",
            Self::Hba => "QES mit eHBA",
            Self::SmcB => "mit SMC-B (Anlage 2b)",
        }
    }
}

/// Who signed, as the embedded certificate says (not validated against the TSL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Subject DN (RFC 4514), e.g. `CN=Dr. Maria Muster,…`.
    pub subject: String,
    /// Certificate serial number, upper-case hex.
    pub serial: String,
    /// Issuer DN (RFC 4514).
    pub issuer: String,
    /// The signed `signingTime` attribute, if present (UTC).
    pub signing_time: Option<NaiveDateTime>,
}

/// A signed file that is intact, with what it signs.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The encapsulated content: the exact bytes that were signed.
    pub content: Vec<u8>,
    pub signer: Signer,
}

/// Why a file is not an intact enveloping signature. Each has a German text for staff and
/// practice software.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Datei ist keine CMS-Signatur (CAdES/PKCS#7): {0}")]
    NotCms(String),
    #[error("Dokument ist unsigniertes XML, wurde aber als signierte Datei (application/pkcs7-mime) gesendet")]
    Unsigned,
    #[error("CMS-Datei enthält keine Signatur (SignedData erwartet, gefunden: {0})")]
    NotSignedData(String),
    #[error("Signatur enthält das Dokument nicht (abgesetzte Signatur); erwartet wird eine umschließende CAdES-Signatur mit dem eAU-Bundle als Inhalt")]
    Detached,
    #[error("signierter Inhalt hat den Typ {0}, erwartet wird id-data (1.2.840.113549.1.7.1)")]
    ContentType(String),
    #[error("Datei enthält keinen Unterzeichner (SignerInfo fehlt)")]
    NoSigner,
    #[error("Zertifikat des Unterzeichners ist nicht in der Signatur enthalten")]
    SignerCertificateMissing,
    #[error("Hashwert-Algorithmus {0} wird nicht unterstützt (SHA-256, SHA-384, SHA-512)")]
    UnsupportedDigest(String),
    #[error("Inhalt wurde nach dem Signieren verändert: Hashwert stimmt nicht mit dem signierten Hashwert überein")]
    DigestMismatch,
    #[error("Signatur ist ungültig: sie passt nicht zum Schlüssel des enthaltenen Zertifikats")]
    SignatureInvalid,
}

/// Reads a signed file: DER, or the same as Base64 / PEM (as some practice software stores it).
fn der_bytes(input: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = match std::str::from_utf8(input) {
        Ok(t) => t.trim(),
        Err(_) => return input.to_vec(),
    };
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .unwrap_or_else(|_| input.to_vec())
}

/// Checks a signed eAU file and returns its content and signer. See the module docs for what
/// is checked and what is not.
pub fn verify(input: &[u8]) -> Result<Verified, SignatureError> {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &input[i..]);
    if start.starts_with(b"<") || start.starts_with("\u{feff}<".as_bytes()) {
        return Err(SignatureError::Unsigned);
    }
    let der = der_bytes(input);
    // DER is read as it is; BER (indefinite lengths, unsorted sets) through OpenSSL's DER
    // re-encoding.
    let (info, mut openssl_parsed) = match ContentInfo::from_der(&der) {
        Ok(info) => (info, None),
        Err(_) => {
            let parsed = CmsContentInfo::from_der(&der)
                .map_err(|e| SignatureError::NotCms(first_reason(&e)))?;
            let canonical = parsed
                .to_der()
                .map_err(|e| SignatureError::NotCms(first_reason(&e)))?;
            let info = ContentInfo::from_der(&canonical)
                .map_err(|e| SignatureError::NotCms(e.to_string()))?;
            (info, Some(parsed))
        }
    };
    if info.content_type != ID_SIGNED_DATA {
        return Err(SignatureError::NotSignedData(info.content_type.to_string()));
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| SignatureError::NotCms(e.to_string()))?;
    let econtent = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or(SignatureError::Detached)?;
    if signed.encap_content_info.econtent_type != ID_DATA {
        return Err(SignatureError::ContentType(
            signed.encap_content_info.econtent_type.to_string(),
        ));
    }
    let content = der::asn1::OctetString::from_der(
        &econtent
            .to_der()
            .map_err(|e| SignatureError::NotCms(e.to_string()))?,
    )
    .map_err(|e| SignatureError::NotCms(e.to_string()))?
    .into_bytes();
    let signer_info = signed
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or(SignatureError::NoSigner)?;
    let certificate = signer_certificate(&signed, signer_info)?;
    check_digest(signer_info, &content)?;
    // The signature over the signed attributes with the certificate's key, directly; where
    // that does not apply or does not succeed, OpenSSL's complete CMS verification decides.
    if !signature_over_attributes(signer_info, certificate) {
        let parsed = match openssl_parsed.as_mut() {
            Some(p) => p,
            None => openssl_parsed.insert(
                CmsContentInfo::from_der(&der)
                    .map_err(|e| SignatureError::NotCms(first_reason(&e)))?,
            ),
        };
        let mut out = Vec::new();
        parsed
            .verify(
                None,
                None,
                None,
                Some(&mut out),
                CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
            )
            .map_err(|_| SignatureError::SignatureInvalid)?;
        if out != content {
            // OpenSSL and the structure disagree about what was signed: never accept that.
            return Err(SignatureError::SignatureInvalid);
        }
    }
    let tbs = &certificate.tbs_certificate;
    Ok(Verified {
        content,
        signer: Signer {
            subject: tbs.subject.to_string(),
            serial: hex::encode_upper(tbs.serial_number.as_bytes()),
            issuer: tbs.issuer.to_string(),
            signing_time: signing_time(signer_info),
        },
    })
}

/// Whether the signature value verifies over the DER of the signed attributes (RFC 5652 5.4)
/// with the key of `certificate`: RSA (PKCS#1 v1.5 or PSS with the digest's length as salt)
/// or ECDSA, digest SHA-256/384/512. `false` also when this check does not apply.
fn signature_over_attributes(signer: &SignerInfo, certificate: &Certificate) -> bool {
    use openssl::hash::MessageDigest;
    use openssl::rsa::Padding;
    use openssl::sign::{RsaPssSaltlen, Verifier};
    const RSA: &str = "1.2.840.113549.1.1.1";
    const RSA_PSS: &str = "1.2.840.113549.1.1.10";
    const RSA_WITH: [&str; 3] = [
        "1.2.840.113549.1.1.11",
        "1.2.840.113549.1.1.12",
        "1.2.840.113549.1.1.13",
    ];
    const ECDSA_WITH: [&str; 3] = [
        "1.2.840.10045.4.3.2",
        "1.2.840.10045.4.3.3",
        "1.2.840.10045.4.3.4",
    ];
    let Some(attributes) = signer.signed_attrs.as_ref() else {
        return false;
    };
    let oid = signer.digest_alg.oid;
    let digest = if oid == ID_SHA256 {
        MessageDigest::sha256()
    } else if oid == ID_SHA384 {
        MessageDigest::sha384()
    } else if oid == ID_SHA512 {
        MessageDigest::sha512()
    } else {
        return false;
    };
    let algorithm = signer.signature_algorithm.oid.to_string();
    let pss = algorithm == RSA_PSS;
    let known = pss
        || algorithm == RSA
        || RSA_WITH.contains(&algorithm.as_str())
        || ECDSA_WITH.contains(&algorithm.as_str());
    let (Ok(signed), Ok(spki)) = (
        attributes.to_der(),
        certificate.tbs_certificate.subject_public_key_info.to_der(),
    ) else {
        return false;
    };
    let Some(key) = public_key(&spki) else {
        return false;
    };
    let Ok(mut verifier) = Verifier::new(digest, &key) else {
        return false;
    };
    if pss
        && (verifier.set_rsa_padding(Padding::PKCS1_PSS).is_err()
            || verifier
                .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .is_err()
            || verifier.set_rsa_mgf1_md(digest).is_err())
    {
        return false;
    }
    known
        && verifier
            .verify_oneshot(signer.signature.as_bytes(), &signed)
            .unwrap_or(false)
}

/// The signer's public key, decoded once per key: decoding a key is most of what a verification
/// costs with OpenSSL 3 (its decoder framework), and an import batch comes from the same few
/// doctors' cards. At most [`KNOWN_KEYS`] keys are kept.
fn public_key(spki: &[u8]) -> Option<openssl::pkey::PKey<openssl::pkey::Public>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Keys = Mutex<HashMap<Vec<u8>, openssl::pkey::PKey<openssl::pkey::Public>>>;
    static KEYS: OnceLock<Keys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(key) = keys.lock().ok()?.get(spki) {
        return Some(key.clone());
    }
    let key = openssl::pkey::PKey::public_key_from_der(spki).ok()?;
    let mut known = keys.lock().ok()?;
    if known.len() >= KNOWN_KEYS {
        known.clear();
    }
    known.insert(spki.to_vec(), key.clone());
    Some(key)
}

/// Signer keys kept decoded (see [`public_key`]).
const KNOWN_KEYS: usize = 256;

fn first_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|e| e.reason())
        .unwrap_or("unlesbar")
        .to_owned()
}

/// The embedded certificate the signer info names.
fn signer_certificate<'a>(
    signed: &'a SignedData,
    signer: &SignerInfo,
) -> Result<&'a Certificate, SignatureError> {
    let certificates = signed
        .certificates
        .as_ref()
        .ok_or(SignatureError::SignerCertificateMissing)?;
    certificates
        .0
        .iter()
        .find_map(|choice| match choice {
            CertificateChoices::Certificate(c) if names(c, &signer.sid) => Some(c),
            _ => None,
        })
        .ok_or(SignatureError::SignerCertificateMissing)
}

fn names(certificate: &Certificate, sid: &SignerIdentifier) -> bool {
    let tbs = &certificate.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            id.issuer == tbs.issuer && id.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            let key = tbs.subject_public_key_info.subject_public_key.raw_bytes();
            // RFC 5280 4.2.1.2 method 1: SHA-1 of the key; certificates may carry any value,
            // so the extension itself is compared when present.
            let extension = tbs.extensions.as_ref().and_then(|exts| {
                exts.iter()
                    .find(|e| e.extn_id == ObjectIdentifier::new_unwrap("2.5.29.14"))
                    .and_then(|e| der::asn1::OctetString::from_der(e.extn_value.as_bytes()).ok())
            });
            match extension {
                Some(value) => value.as_bytes() == ski.0.as_bytes(),
                None => sha1_of(key) == ski.0.as_bytes(),
            }
        }
    }
}

fn sha1_of(bytes: &[u8]) -> Vec<u8> {
    openssl::sha::sha1(bytes).to_vec()
}

/// With signed attributes (CAdES always has them), the signature covers the attributes and the
/// `messageDigest` attribute covers the content: a changed byte of the content shows here.
fn check_digest(signer: &SignerInfo, content: &[u8]) -> Result<(), SignatureError> {
    let Some(attributes) = signer.signed_attrs.as_ref() else {
        return Ok(());
    };
    let oid = signer.digest_alg.oid;
    let computed = if oid == ID_SHA256 {
        openssl::sha::sha256(content).to_vec()
    } else if oid == ID_SHA384 {
        openssl::sha::sha384(content).to_vec()
    } else if oid == ID_SHA512 {
        openssl::sha::sha512(content).to_vec()
    } else {
        return Err(SignatureError::UnsupportedDigest(oid.to_string()));
    };
    let signed = attributes
        .iter()
        .find(|a| a.oid == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
        .ok_or(SignatureError::DigestMismatch)?;
    if signed.as_bytes() == computed.as_slice() {
        Ok(())
    } else {
        Err(SignatureError::DigestMismatch)
    }
}

fn signing_time(signer: &SignerInfo) -> Option<NaiveDateTime> {
    let value = signer
        .signed_attrs
        .as_ref()?
        .iter()
        .find(|a| a.oid == ID_SIGNING_TIME)?
        .values
        .iter()
        .next()?;
    let time = cms::cert::x509::time::Time::from_der(&value.to_der().ok()?).ok()?;
    let since_epoch = time.to_unix_duration();
    chrono::DateTime::from_timestamp(i64::try_from(since_epoch.as_secs()).ok()?, 0)
        .map(|t| t.naive_utc())
}

/// The file name of a signed document (TA eAU P5-02): `EEAU0_<uuid>.p7s`, a Storno
/// `EEAU0_Storno_<uuid>.p7s`; unsigned ones end in `.xml`.
pub fn file_name(storno: bool, document_id: &str, signed: bool) -> String {
    let kind = if storno { "Storno_" } else { "" };
    let ext = if signed { "p7s" } else { "xml" };
    format!("EEAU0_{kind}{document_id}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_cms() {
        assert!(matches!(
            verify(b"not a signature"),
            Err(SignatureError::NotCms(_))
        ));
        assert!(matches!(verify(&[]), Err(SignatureError::NotCms(_))));
    }

    /// A CAdES file as OpenSSL (and the test Konnektor) make it.
    fn signed(content: &[u8]) -> Vec<u8> {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "Unit Signer").unwrap();
        let name = name.build();
        let mut cert = x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        let (from, until) = (
            Asn1Time::days_from_now(0).unwrap(),
            Asn1Time::days_from_now(1).unwrap(),
        );
        cert.set_not_before(&from).unwrap();
        cert.set_not_after(&until).unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = cert.build();
        CmsContentInfo::sign(
            Some(&cert),
            Some(&key),
            None,
            Some(content),
            CMSOptions::BINARY,
        )
        .unwrap()
        .to_der()
        .unwrap()
    }

    fn signer_of(p7s: &[u8]) -> SignedData {
        ContentInfo::from_der(p7s)
            .unwrap()
            .content
            .decode_as()
            .unwrap()
    }

    #[test]
    fn the_direct_signature_check_applies_and_fails_on_a_changed_signature() {
        let p7s = signed(b"<Bundle/>");
        let data = signer_of(&p7s);
        let info = data.signer_infos.0.iter().next().unwrap();
        let cert = signer_certificate(&data, info).unwrap();
        assert!(signature_over_attributes(info, cert), "no fallback needed");
        let mut broken = p7s.clone();
        let last = broken.len() - 1;
        broken[last] ^= 1;
        let data = signer_of(&broken);
        let info = data.signer_infos.0.iter().next().unwrap();
        let cert = signer_certificate(&data, info).unwrap();
        assert!(!signature_over_attributes(info, cert));
        assert_eq!(
            verify(&broken).unwrap_err(),
            SignatureError::SignatureInvalid
        );
        let v = verify(&p7s).unwrap();
        assert_eq!(v.content, b"<Bundle/>");
        assert_eq!(v.signer.subject, "CN=Unit Signer");
    }

    #[test]
    fn file_names_follow_the_ta() {
        assert_eq!(file_name(false, "u", true), "EEAU0_u.p7s");
        assert_eq!(file_name(true, "u", true), "EEAU0_Storno_u.p7s");
        assert_eq!(file_name(false, "u", false), "EEAU0_u.xml");
    }
}
