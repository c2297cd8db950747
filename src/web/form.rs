//! Request bodies: `application/x-www-form-urlencoded` (with nested names such as
//! `patient.kvnr` and `diagnoses[2].code`) and JSON, both decoded into the same types, with
//! errors that name the failing field.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::domain::{has_control, FieldError};

/// A decoding failure, located at a field path.
fn located(path: String, message: impl Into<String>) -> FieldError {
    let message = message.into();
    if path.is_empty() || path == "." || path == "?" {
        FieldError::new("body", format!("Anfrage: {message}"))
    } else {
        FieldError::new(path.clone(), format!("{path}: {message}"))
    }
}

/// Decodes a JSON body; type errors name the field (`patient.first_name: …`). Refused as a
/// whole: trailing data after the value, nesting deeper than serde_json's limit (128), and a
/// string anywhere with a control character (NUL and the like; tab and line breaks aside).
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, FieldError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(located(
            String::new(),
            "Anfrage ist leer: JSON-Objekt erwartet",
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // Read again into `T`, only to say where: `{"kind": "\xff"}` fails at `kind`.
        Err(_) => return Err(locate_syntax_error::<T>(body)),
    };
    control_characters(&value, &mut String::new())?;
    from_value(value)
}

fn locate_syntax_error<T: DeserializeOwned>(body: &[u8]) -> FieldError {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let syntax = "ungültiges JSON (oder kein gültiges UTF-8)";
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(_) => located(String::new(), syntax),
        Err(e) => {
            let path = e.path().to_string();
            let message = match e.into_inner().classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    syntax.to_owned()
                }
                _ => "ungültiger Wert".to_owned(),
            };
            located(path, message)
        }
    }
}

/// The first string (or object key) holding a control character other than tab, CR and LF,
/// located at its path.
fn control_characters(value: &Value, path: &mut String) -> Result<(), FieldError> {
    match value {
        Value::String(s) if has_control(s) => Err(located(path.clone(), CONTROL)),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, v)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let r = control_characters(v, path);
            path.truncate(len);
            r
        }),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            if has_control(k) {
                return Err(located(String::new(), "Feldname mit Steuerzeichen"));
            }
            let r = control_characters(v, path);
            path.truncate(len);
            r
        }),
        _ => Ok(()),
    }
}

const CONTROL: &str = "enthält ein Steuerzeichen (z. B. NUL) – bitte entfernen";

fn german_serde_message(english: &str) -> String {
    if english.starts_with("invalid type") {
        "falscher Datentyp".to_owned()
    } else if english.starts_with("unknown field") {
        "unbekanntes Feld".to_owned()
    } else if english.contains("erwartet") {
        english
            .split(" at line")
            .next()
            .unwrap_or(english)
            .to_owned()
    } else {
        "ungültiger Wert".to_owned()
    }
}

/// Decodes an urlencoded form into `T` through a nested JSON value.
pub fn from_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, FieldError> {
    from_value(form_value(body)?)
}

/// Decodes a value built by [`form_value`] (possibly adjusted) into `T`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        located(path, german_serde_message(&e.into_inner().to_string()))
    })
}

/// Pairs of an urlencoded body. Bytes that are not UTF-8 are refused, naming the field.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, FieldError> {
    body.split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut kv = part.splitn(2, |b| *b == b'=');
            let key = String::from_utf8(percent_decode(kv.next().unwrap_or_default()))
                .map_err(|_| located(String::new(), "Feldname ist kein gültiges UTF-8"))?;
            let value =
                String::from_utf8(percent_decode(kv.next().unwrap_or_default())).map_err(|_| {
                    FieldError::new(key.clone(), format!("{key}: kein gültiger Text (UTF-8)"))
                })?;
            if has_control(&key) {
                return Err(located(String::new(), "Feldname mit Steuerzeichen"));
            }
            if has_control(&value) {
                return Err(located(key, CONTROL));
            }
            Ok((key, value))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = input
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Builds `{"patient": {"kvnr": …}, "diagnoses": [{…}]}` from dotted/indexed names. Empty
/// values are left out (an empty input means "not given"); diagnosis rows that are entirely
/// empty are dropped.
pub fn form_value(body: &[u8]) -> Result<Value, FieldError> {
    let mut root = Map::new();
    for (key, value) in form_pairs(body)? {
        // Checked before anything is built: a name nested thousands of levels deep would make
        // the recursive decoder below overflow the worker's stack and abort the process.
        if key.len() > MAX_NAME_BYTES || key.split('.').count() > MAX_NESTING {
            return Err(FieldError::new(
                "body",
                "Anfrage: Feldname zu lang oder zu tief verschachtelt",
            ));
        }
        if value.trim().is_empty() {
            continue;
        }
        insert(&mut root, &key, Value::String(value))
            .ok_or_else(|| FieldError::new(key.clone(), format!("{key}: unbekanntes Feld")))?;
    }
    for list in root.values_mut() {
        if let Value::Array(items) = list {
            items.retain(|v| v.as_object().is_some_and(|o| !o.is_empty()));
        }
    }
    Ok(Value::Object(root))
}

/// Levels of a form field name (`diagnoses[2].code` has 2; the forms use at most 3).
const MAX_NESTING: usize = 4;

/// Longest form field name.
const MAX_NAME_BYTES: usize = 128;

/// Longest list accepted from a form (guards against `diagnoses[100000]`).
const MAX_INDEX: usize = 32;

fn insert(root: &mut Map<String, Value>, key: &str, value: Value) -> Option<()> {
    let mut parts = key.split('.').peekable();
    let mut map = root;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (part, None),
        };
        if name.is_empty() {
            return None;
        }
        match index {
            None if last => {
                map.insert(name.to_owned(), value);
                return Some(());
            }
            None => {
                let entry = map.entry(name).or_insert_with(|| Value::Object(Map::new()));
                map = entry.as_object_mut()?;
            }
            Some(i) => {
                if i >= MAX_INDEX || last {
                    return None;
                }
                let list = map.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                let items = list.as_array_mut()?;
                while items.len() <= i {
                    items.push(Value::Object(Map::new()));
                }
                map = items.get_mut(i)?.as_object_mut()?;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_names_become_nested_values_and_empty_rows_vanish() {
        let body = b"patient.kvnr=A123456780&patient.last_name=M%C3%BCller+L%C3%BCdenscheidt\
&diagnoses[0].code=&diagnoses[1].code=J06.9&sick_pay_case=on";
        let v = form_value(body).unwrap();
        assert_eq!(v["patient"]["last_name"], "Müller Lüdenscheidt");
        assert_eq!(v["diagnoses"].as_array().unwrap().len(), 1);
        assert_eq!(v["diagnoses"][0]["code"], "J06.9");
        assert_eq!(v["sick_pay_case"], "on");
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let err = form_pairs(b"patient.first_name=J%00rgen").unwrap_err();
        assert_eq!(err.field, "patient.first_name");
        assert!(form_pairs(b"a%01=x").is_err());
        assert!(
            form_pairs(b"text=Zeile+1%0D%0AZeile+2%09").is_ok(),
            "tab and line breaks"
        );
        let err = from_json::<Value>(br#"{"patient": {"last_name": "M\u0000ller"}}"#).unwrap_err();
        assert_eq!(err.field, "patient.last_name");
        let err = from_json::<Value>(br#"{"diagnoses": [{"code": "J06.9"}, {"code": "\u001b"}]}"#)
            .unwrap_err();
        assert_eq!(err.field, "diagnoses[1].code");
        assert!(
            from_json::<Value>("{\"a\": \"\u{85}\"}".as_bytes()).is_err(),
            "C1 too"
        );
    }

    #[test]
    fn json_with_trailing_data_is_refused() {
        assert!(from_json::<Value>(br#"{"kind": "ERST"}"#).is_ok());
        assert!(from_json::<Value>(br#"{"kind": "ERST"} "#).is_ok());
        assert_eq!(
            from_json::<Value>(br#"{"kind": "ERST"}{}"#)
                .unwrap_err()
                .field,
            "body"
        );
        assert!(from_json::<Value>(br#"{"kind": "ERST"} x"#).is_err());
        assert!(from_json::<Value>(&[b'['; 200]).is_err(), "deeper than 128");
    }

    #[test]
    fn broken_utf8_is_refused_naming_the_field() {
        let err = form_pairs(b"patient.first_name=J%FCrgen").unwrap_err();
        assert_eq!(err.field, "patient.first_name");
    }

    #[test]
    fn odd_names_and_huge_indexes_are_refused() {
        assert!(form_value(b"diagnoses[99999].code=A").is_err());
        assert!(form_value(b"a[x]=1").is_err());
        assert!(form_value(b".=1").is_err());
        assert_eq!(percent_decode(b"100%"), b"100%");
        assert_eq!(percent_decode(b"%4"), b"%4");
    }
}
