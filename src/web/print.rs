//! Paper copies: `GET /certificates/{id}/pdf?copy=kk|ag|v|all|all-ag|prefilled&size=a5|a4`
//! (staff), the same under `/api/v1/…` (practice software), and `/forms/blank.pdf`.
//! Rendering runs on the blocking pool; every print is recorded (who, when, which copies).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiClient, ApiError, AppState, Staff, WebError};
use crate::domain::FieldError;
use crate::pdf::{self, Copy, PaperSize};
use crate::service;
use crate::storage::Actor;

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/certificates/{id}/pdf", staff_pdf)
        .get("/forms/blank.pdf", blank)
        .get("/api/v1/certificates/{id}/pdf", api_pdf);
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PrintQuery {
    copy: Option<String>,
    size: Option<String>,
}

/// What to print.
#[derive(Debug, Clone)]
enum Selection {
    /// "Drucken": KK + V while the eAU is not at the insurer (Ersatzverfahren), V alone once
    /// it is; `employer` adds the AG copy.
    Usual {
        employer: bool,
    },
    Copies(Vec<Copy>),
    /// Only patient and practice data (TA P6-02).
    Prefilled,
}

impl Selection {
    /// The copies, knowing whether the eAU has reached the insurer.
    fn resolve(self, delivered: bool) -> Self {
        match self {
            Self::Usual { employer } => Self::Copies(match (delivered, employer) {
                (false, false) => Copy::PRINT_ALL.to_vec(),
                (false, true) => Copy::ALL.to_vec(),
                (true, false) => vec![Copy::V],
                (true, true) => vec![Copy::Ag, Copy::V],
            }),
            other => other,
        }
    }
}

fn parse(req: &HttpRequest) -> Result<(Selection, PaperSize), WebError> {
    let q: PrintQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| FieldError::new("query", "Abfrage ungültig: erlaubt sind copy und size"))?;
    let size = match q.size.as_deref() {
        // `size=` says nothing: an error, not the default (as for `copy=`).
        None => PaperSize::default(),
        Some(s) => {
            PaperSize::parse(s).map_err(|_| FieldError::new("size", "Papierformat: a5 oder a4"))?
        }
    };
    let selection = match q.copy.as_deref().unwrap_or("all") {
        "all" => Selection::Usual { employer: false },
        "all-ag" => Selection::Usual { employer: true },
        "prefilled" => Selection::Prefilled,
        one => Selection::Copies(vec![Copy::parse(one).map_err(|_| {
            FieldError::new(
                "copy",
                "Ausfertigung: kk, ag, v, all, all-ag oder prefilled",
            )
        })?]),
    };
    Ok((selection, size))
}

fn describe(selection: &Selection, size: PaperSize) -> String {
    let what = match selection {
        Selection::Usual { employer: false } => "KK+V".into(),
        Selection::Usual { employer: true } => "KK+AG+V".into(),
        Selection::Copies(copies) => copies
            .iter()
            .map(|c| c.code().to_uppercase())
            .collect::<Vec<_>>()
            .join("+"),
        Selection::Prefilled => "Personalien".into(),
    };
    format!("{what} {}", if size == PaperSize::A4 { "A4" } else { "A5" })
}

/// The download's file name: what was printed, for which day, and the document's short id,
/// e.g. `AU_2026-12-07_KK-Ausfertigung_1a2b3c4d.pdf` (ASCII, no patient data).
fn file_name(selection: &Selection, size: PaperSize, day: chrono::NaiveDate, id: Uuid) -> String {
    let what = match selection {
        Selection::Prefilled => "Personalien",
        Selection::Copies(copies) => match copies.as_slice() {
            [Copy::Kk] => "KK-Ausfertigung",
            [Copy::Ag] => "Arbeitgeber-Ausfertigung",
            [Copy::V] => "Versicherten-Ausfertigung",
            [Copy::Kk, Copy::V] => "KK-und-Versicherten-Ausfertigung",
            [Copy::Ag, Copy::V] => "Arbeitgeber-und-Versicherten-Ausfertigung",
            _ => "alle-Ausfertigungen",
        },
        Selection::Usual { .. } => "Ausfertigungen",
    };
    let size = if size == PaperSize::A4 { "_A4" } else { "" };
    let short = id.simple().to_string();
    format!("AU_{day}_{what}{size}_{}.pdf", &short[..8])
}

/// Loads, records and renders; the answer is the PDF.
async fn print(
    state: &AppState,
    actor: Actor,
    id: Uuid,
    selection: Selection,
    size: PaperSize,
) -> Result<HttpResponse, WebError> {
    let asked = selection.clone();
    let found = state
        .db
        .run(move |c| {
            service::print(c, &actor, id, |delivered| {
                describe(&asked.resolve(delivered), size)
            })
        })
        .await?
        .ok_or(WebError::NotFound)?;
    let (cert, marks) = (found.stored.certificate, found.marks);
    let selection = selection.resolve(marks.delivered);
    let name = file_name(&selection, size, cert.period.determined_on, id);
    let bytes = web::block(move || render(&cert, selection, size, marks))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(pdf_error)?;
    Ok(pdf_response(bytes, &name))
}

/// The printout of a resolved selection.
fn render(
    cert: &crate::domain::Certificate,
    selection: Selection,
    size: PaperSize,
    marks: pdf::Marks,
) -> Result<Vec<u8>, pdf::PdfError> {
    match selection {
        Selection::Copies(copies) => pdf::render_marked(cert, &copies, size, marks),
        // Resolved by the caller.
        Selection::Usual { .. } => Err(pdf::PdfError::NoCopies),
        Selection::Prefilled => pdf::render_prefilled(
            &cert.patient,
            &cert.coverage,
            &cert.practice,
            &cert.doctor,
            size,
        ),
    }
}

fn pdf_error(e: pdf::PdfError) -> WebError {
    match e {
        pdf::PdfError::NotLatin9 { field, .. } => WebError::Invalid(vec![FieldError::new(
            field,
            format!(
                "{field}: enthält Zeichen, die auf der Papier-Ausfertigung nicht darstellbar sind"
            ),
        )]),
        other => WebError::Internal(other.to_string()),
    }
}

fn pdf_response(bytes: Vec<u8>, file_name: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{file_name}\""),
        ))
        .body(bytes)
}

fn id_of(path: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(path).map_err(|_| WebError::NotFound)
}

async fn staff_pdf(
    req: HttpRequest,
    staff: Staff,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = id_of(&path)?;
    let (selection, size) = parse(&req)?;
    let actor = staff.actor();
    print(&state, actor, id, selection, size).await
}

async fn api_pdf(
    req: HttpRequest,
    client: ApiClient,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    let (selection, size) = parse(&req)?;
    let actor = client.actor("api");
    Ok(print(&state, actor, id, selection, size).await?)
}

/// A blank form (all three copies) for filling in by hand, e.g. on a home visit.
async fn blank(req: HttpRequest, _staff: Staff) -> Result<HttpResponse, WebError> {
    let (_, size) = parse(&req)?;
    let bytes = web::block(move || pdf::render_blank(size))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(pdf_error)?;
    let name = if size == PaperSize::A4 {
        "AU_Blankoformular_A4.pdf"
    } else {
        "AU_Blankoformular.pdf"
    };
    Ok(pdf_response(bytes, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_print_variant_downloads_under_a_name_that_says_what_it_is() {
        let id = Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000000").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let name =
            |copies: &[Copy], size| file_name(&Selection::Copies(copies.to_vec()), size, day, id);
        let a5 = PaperSize::default();
        assert_eq!(
            name(&[Copy::Kk], a5),
            "AU_2026-12-07_KK-Ausfertigung_1a2b3c4d.pdf"
        );
        assert_eq!(
            name(&[Copy::Ag], a5),
            "AU_2026-12-07_Arbeitgeber-Ausfertigung_1a2b3c4d.pdf"
        );
        assert_eq!(
            name(&[Copy::V], a5),
            "AU_2026-12-07_Versicherten-Ausfertigung_1a2b3c4d.pdf"
        );
        assert_eq!(
            name(&Copy::PRINT_ALL, PaperSize::A4),
            "AU_2026-12-07_KK-und-Versicherten-Ausfertigung_A4_1a2b3c4d.pdf"
        );
        assert_eq!(
            name(&Copy::ALL, a5),
            "AU_2026-12-07_alle-Ausfertigungen_1a2b3c4d.pdf"
        );
        assert_eq!(
            file_name(&Selection::Prefilled, a5, day, id),
            "AU_2026-12-07_Personalien_1a2b3c4d.pdf"
        );
    }
}
