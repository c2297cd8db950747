//! Password protection of a finished PDF: AES-256 (security handler V5, revision 6), readable
//! by every current PDF viewer, through lopdf (already in the tree through printpdf).

use std::collections::BTreeMap;
use std::sync::Arc;

use lopdf::encryption::crypt_filters::{Aes256CryptFilter, CryptFilter};
use lopdf::{Document, EncryptionState, EncryptionVersion, Object, Permissions, StringFormat};
use rand::RngCore;

use super::PdfError;

/// Encrypts `pdf` so that it opens only with `user_password`. The owner password is random and
/// forgotten: nobody can lift the protection or the permissions (print and copy are allowed,
/// changes are not) without breaking AES-256.
pub fn protect(pdf: &[u8], user_password: &str) -> Result<Vec<u8>, PdfError> {
    let failed = |e: lopdf::Error| PdfError::Protect(e.to_string());
    let mut doc = Document::load_mem(pdf).map_err(failed)?;
    let mut rng = rand::thread_rng();
    // An encrypted file needs a file identifier; a random one says nothing about the patient.
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let id = Object::String(id.to_vec(), StringFormat::Hexadecimal);
    doc.trailer.set("ID", vec![id.clone(), id]);
    let mut owner = [0u8; 24];
    rng.fill_bytes(&mut owner);
    let owner = hex::encode(owner);
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let filter: Arc<dyn CryptFilter> = Arc::new(Aes256CryptFilter);
    let state = EncryptionState::try_from(EncryptionVersion::V5 {
        encrypt_metadata: true,
        crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
        file_encryption_key: &key,
        stream_filter: b"StdCF".to_vec(),
        string_filter: b"StdCF".to_vec(),
        owner_password: &owner,
        user_password,
        permissions: Permissions::PRINTABLE
            | Permissions::COPYABLE
            | Permissions::COPYABLE_FOR_ACCESSIBILITY,
    })
    .map_err(|e| PdfError::Protect(e.to_string()))?;
    key.fill(0);
    // AES-256 belongs to PDF 2.0 (ISO 32000-2).
    doc.version = "2.0".into();
    doc.encrypt(&state).map_err(failed)?;
    declare_key_length(&mut doc).map_err(failed)?;
    let mut out = Vec::with_capacity(pdf.len() + 1024);
    doc.save_to(&mut out)
        .map_err(|e| PdfError::Protect(e.to_string()))?;
    Ok(out)
}

/// States the key length in the encryption dictionary and its crypt filter, as qpdf and Acrobat
/// write it (`/Length 256`, `/Length 32`, `/AuthEvent /DocOpen`). lopdf leaves both out, and
/// poppler (evince, okular, pdftotext) then derives a short key and shows garbage.
fn declare_key_length(doc: &mut Document) -> Result<(), lopdf::Error> {
    let id = doc.trailer.get(b"Encrypt")?.as_reference()?;
    let dict = doc.get_object_mut(id)?.as_dict_mut()?;
    dict.set("Length", 256);
    let filter = dict
        .get_mut(b"CF")?
        .as_dict_mut()?
        .get_mut(b"StdCF")?
        .as_dict_mut()?;
    filter.set("Length", 32);
    filter.set("AuthEvent", Object::Name(b"DocOpen".to_vec()));
    Ok(())
}
