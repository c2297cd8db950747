//! Muster 1 box by box (DOMAIN.md §5.1), drawn on an A5 grid in mm from the top left corner and
//! scaled onto the paper. Labels are DejaVu Sans 5–7 pt, values 8–10 pt, checkboxes are the
//! glyphs ☐/☒ (as in the KBV stylesheets), so they survive copy and text extraction.

use crate::num::ToF32;
use chrono::NaiveDate;
use printpdf::{
    CurTransMat, Line, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfFontHandle, Point, Pt, Rect,
    TextItem,
};

use super::barcode::{Symbol, MODULE_MM, QUIET_ZONE_MODULES, ROW_HEIGHT_MODULES};
use super::fonts::{text_width_mm, FontIds, Fonts};
use super::{Copy, PaperSize};
use crate::domain::for_paper;
use crate::domain::{Cause, Certificate, Coverage, Doctor, Patient, Practice};

/// What goes on one page.
pub(crate) struct Form<'a> {
    pub copy: Copy,
    pub parties: Option<Parties<'a>>,
    pub cert: Option<&'a Certificate>,
    pub barcode: Option<&'a Symbol>,
    /// Signed with the practice's SMC-B (BMV-Ä Anlage 2b): the patient's copy says that the
    /// doctor signs it by hand.
    pub hand_signed: bool,
    /// The eAU reached the insurer: no Ersatzverfahren notice on the KK copy.
    pub delivered: bool,
}

/// Personalienfeld and stamp data.
#[derive(Clone, Copy)]
pub(crate) struct Parties<'a> {
    pub patient: &'a Patient,
    pub coverage: &'a Coverage,
    pub practice: &'a Practice,
    pub doctor: &'a Doctor,
}

impl<'a> Parties<'a> {
    pub fn of(c: &'a Certificate) -> Self {
        Self {
            patient: &c.patient,
            coverage: &c.coverage,
            practice: &c.practice,
            doctor: &c.doctor,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Face {
    Regular,
    Bold,
}

const LEFT: f32 = 8.0;
const RIGHT: f32 = 140.0;
/// Right edge of the Personalienfeld.
const P_RIGHT: f32 = 84.0;
/// Left edge of the right column (title, barcode, stamp).
const COL2: f32 = 88.0;
const LABEL: f32 = 5.5;
const VALUE: f32 = 8.5;
const THIN: f32 = 0.4;
const FRAME: f32 = 0.8;

struct Canvas<'a> {
    ops: Vec<Op>,
    scale: f32,
    page_h: f32,
    fonts: &'a Fonts,
    ids: &'a FontIds,
}

impl Canvas<'_> {
    fn pt_x(&self, x: f32) -> Pt {
        Mm(x * self.scale).into_pt()
    }

    fn pt_y(&self, y: f32) -> Pt {
        Mm(self.page_h - y * self.scale).into_pt()
    }

    fn font(&self, face: Face) -> &ParsedFont {
        match face {
            Face::Regular => &self.fonts.regular,
            Face::Bold => &self.fonts.bold,
        }
    }

    /// Width in layout mm.
    fn width(&self, text: &str, size: f32, face: Face) -> f32 {
        text_width_mm(self.font(face), &for_paper(text), size)
    }

    /// Text with its baseline at `y`.
    fn text(&mut self, x: f32, y: f32, size: f32, face: Face, text: &str) {
        if text.is_empty() {
            return;
        }
        let font = match face {
            Face::Regular => self.ids.regular.clone(),
            Face::Bold => self.ids.bold.clone(),
        };
        let pos = Point {
            x: self.pt_x(x),
            y: self.pt_y(y),
        };
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(font),
                size: Pt(size * self.scale),
            },
            Op::SetTextCursor { pos },
            Op::ShowText {
                // What the font lacks is transliterated (the one rule: `domain::for_paper`).
                items: vec![TextItem::Text(for_paper(text).into_owned())],
            },
            Op::EndTextSection,
        ]);
    }

    fn text_right(&mut self, right: f32, y: f32, size: f32, face: Face, text: &str) {
        let w = self.width(text, size, face);
        self.text(right - w, y, size, face, text);
    }

    fn text_center(&mut self, left: f32, right: f32, y: f32, size: f32, face: Face, text: &str) {
        let w = self.width(text, size, face);
        self.text(left + (right - left - w) / 2.0, y, size, face, text);
    }

    /// The largest size ≤ `size` (down to `min`) at which `text` fits into `max_w`.
    fn fit(&self, text: &str, max_w: f32, size: f32, min: f32, face: Face) -> f32 {
        let w = self.width(text, size, face);
        if w <= max_w || w <= 0.0 {
            size
        } else {
            (size * max_w / w).max(min)
        }
    }

    fn text_fit(&mut self, x: f32, y: f32, max_w: f32, size: f32, face: Face, text: &str) {
        let s = self.fit(text, max_w, size, 4.5, face);
        self.text(x, y, s, face, text);
    }

    /// Greedy word wrap.
    fn wrap(&self, text: &str, max_w: f32, size: f32, face: Face) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && self.width(&candidate, size, face) > max_w {
                lines.push(std::mem::replace(&mut line, word.to_owned()));
            } else {
                line = candidate;
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    /// Wrapped paragraph; returns the baseline after the last line.
    fn paragraph(&mut self, x: f32, y: f32, max_w: f32, size: f32, face: Face, text: &str) -> f32 {
        let lead = size * 0.3528 * 1.3;
        let mut y = y;
        for line in self.wrap(text, max_w, size, face) {
            self.text(x, y, size, face, &line);
            y += lead;
        }
        y
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, width_pt: f32) {
        let points = vec![
            LinePoint {
                p: Point {
                    x: self.pt_x(x1),
                    y: self.pt_y(y1),
                },
                bezier: false,
            },
            LinePoint {
                p: Point {
                    x: self.pt_x(x2),
                    y: self.pt_y(y2),
                },
                bezier: false,
            },
        ];
        self.ops.extend([
            Op::SetOutlineThickness {
                pt: Pt(width_pt * self.scale),
            },
            Op::DrawLine {
                line: Line {
                    points,
                    is_closed: false,
                },
            },
        ]);
    }

    fn frame(&mut self, x: f32, y: f32, w: f32, h: f32, width_pt: f32) {
        let rect = Rect {
            x: self.pt_x(x),
            y: self.pt_y(y + h),
            width: Mm(w * self.scale).into_pt(),
            height: Mm(h * self.scale).into_pt(),
            mode: Some(PaintMode::Stroke),
            winding_order: None,
        };
        self.ops.extend([
            Op::SetOutlineThickness {
                pt: Pt(width_pt * self.scale),
            },
            Op::DrawRectangle { rectangle: rect },
        ]);
    }

    /// A black filled rectangle (a field the copy must not show).
    fn blackout(&mut self, x: f32, y: f32, w: f32, h: f32) {
        let rect = Rect {
            x: self.pt_x(x),
            y: self.pt_y(y + h),
            width: Mm(w * self.scale).into_pt(),
            height: Mm(h * self.scale).into_pt(),
            mode: Some(PaintMode::Fill),
            winding_order: None,
        };
        self.ops.push(Op::DrawRectangle { rectangle: rect });
    }

    /// "☒ label" or "☐ label"; returns the x after the label.
    fn checkbox(&mut self, x: f32, y: f32, size: f32, checked: bool, label: &str) -> f32 {
        let mark = if checked { "☒" } else { "☐" };
        self.text(x, y, size + 1.5, Face::Regular, mark);
        let lx = x + self.width(mark, size + 1.5, Face::Regular) + 1.0;
        self.text(lx, y, size, Face::Regular, label);
        lx + self.width(label, size, Face::Regular)
    }

    /// The PDF417 with its quiet zone, top left corner at (x, y) in layout mm. Positions
    /// follow the paper scale, the modules keep their physical size (10 mil). The modules are
    /// drawn in a coordinate system of one unit per module and row, so every rectangle is a
    /// few small integers in the content stream.
    fn barcode(&mut self, x: f32, y: f32, symbol: &Symbol) {
        let qz = QUIET_ZONE_MODULES * MODULE_MM;
        let left = Mm(x * self.scale + qz).into_pt().0;
        let top = Mm(self.page_h - y * self.scale - qz).into_pt().0;
        let module = Mm(MODULE_MM).into_pt().0;
        let row = Mm(ROW_HEIGHT_MODULES * MODULE_MM).into_pt().0;
        self.ops.extend([
            Op::SaveGraphicsState,
            Op::SetTransformationMatrix {
                matrix: CurTransMat::Raw([module, 0.0, 0.0, -row, left, top]),
            },
        ]);
        let blocks = symbol.dark_blocks();
        self.ops.extend(
            blocks
                .into_iter()
                .map(|(r, start, len, rows)| Op::DrawRectangle {
                    rectangle: Rect {
                        x: Pt(start.to_f32()),
                        y: Pt(r.to_f32()),
                        width: Pt(len.to_f32()),
                        height: Pt(rows.to_f32()),
                        mode: Some(PaintMode::Fill),
                        winding_order: None,
                    },
                }),
        );
        self.ops.push(Op::RestoreGraphicsState);
    }
}

fn date(d: Option<NaiveDate>) -> String {
    d.map(|d| d.format("%d.%m.%Y").to_string())
        .unwrap_or_default()
}

/// The operations of one page.
pub(crate) fn draw(form: &Form<'_>, fonts: &Fonts, ids: &FontIds, paper: PaperSize) -> Vec<Op> {
    let (_, page_h) = paper.size_mm();
    let mut c = Canvas {
        ops: Vec::with_capacity(600),
        scale: paper.scale(),
        page_h,
        fonts,
        ids,
    };
    personalienfeld(&mut c, form);
    title_block(&mut c, form);
    if let Some(symbol) = form.barcode {
        c.barcode(COL2 - 0.5, 30.0, symbol);
    }
    dates_block(&mut c, form);
    stamp(&mut c, form);
    if form.copy.shows_diagnoses() {
        let y = diagnoses_block(&mut c, form.cert);
        let y = krankengeld_block(&mut c, form, y);
        match form.copy {
            Copy::V => patient_notice(&mut c, y),
            _ => insurer_notice(&mut c, y, form.delivered),
        }
    } else {
        employer_notice(&mut c);
    }
    footer(&mut c, form);
    c.ops
}

fn personalienfeld(c: &mut Canvas<'_>, form: &Form<'_>) {
    let p = form.parties;
    let w = P_RIGHT - LEFT;
    c.frame(LEFT, 8.0, w, 44.0, FRAME);
    c.line(LEFT, 16.0, P_RIGHT, 16.0, THIN);
    c.line(LEFT, 35.0, P_RIGHT, 35.0, THIN);
    c.line(LEFT, 43.5, P_RIGHT, 43.5, THIN);
    for x in [32.0, 60.0] {
        c.line(x, 35.0, x, 52.0, THIN);
    }
    let x = LEFT + 1.5;

    c.text(
        x,
        10.3,
        LABEL,
        Face::Regular,
        "Krankenkasse bzw. Kostenträger",
    );
    if let Some(p) = p {
        let wop = p.coverage.wop.as_deref().unwrap_or_default();
        c.text_right(P_RIGHT - 1.5, 14.6, VALUE, Face::Regular, wop);
        c.text_fit(x, 14.6, 66.0, VALUE, Face::Regular, &p.coverage.name);
    }

    c.text(
        x,
        18.3,
        LABEL,
        Face::Regular,
        "Name, Vorname des Versicherten",
    );
    c.text_right(P_RIGHT - 1.5, 18.3, LABEL, Face::Regular, "geb. am");
    if let Some(p) = p {
        let birth = date(Some(p.patient.birth_date));
        c.text_right(P_RIGHT - 1.5, 21.8, VALUE, Face::Regular, &birth);
        let name_w = P_RIGHT - 3.0 - c.width(&birth, VALUE, Face::Regular) - x;
        let full = p.patient.display_name();
        let mut y = 21.8;
        if c.width(&full, VALUE, Face::Regular) <= name_w {
            c.text(x, y, VALUE, Face::Regular, &full);
        } else {
            c.text_fit(
                x,
                y,
                name_w,
                VALUE,
                Face::Regular,
                &format!("{},", p.patient.last_name),
            );
            y += 3.5;
            // Title, first name, Namenszusatz and Vorsatzwort together reach 108 characters:
            // that line may get smaller than the others, not wider than the box.
            let given = p.patient.given_line();
            let size = c.fit(&given, w - 3.0, VALUE, 3.0, Face::Regular);
            c.text(x, y, size, Face::Regular, &given);
        }
        y += 3.5;
        c.text_fit(
            x,
            y,
            w - 3.0,
            VALUE,
            Face::Regular,
            &p.patient.address_line(),
        );
        y += 3.5;
        // Country code before the postcode, as the KBV stylesheets print the bundle's address.
        let city = match &p.patient.country {
            Some(country) => format!("{country} {} {}", p.patient.postal_code, p.patient.city),
            None => format!("{} {}", p.patient.postal_code, p.patient.city),
        };
        c.text_fit(x, y, w - 3.0, VALUE, Face::Regular, &city);
    }

    let cells = [LEFT, 32.0, 60.0];
    let labels = [
        ["Kostenträgerkennung", "Versicherten-Nr.", "Status"],
        ["Betriebsstätten-Nr.", "Arzt-Nr.", "Datum"],
    ];
    let values: [[String; 3]; 2] = match p {
        Some(p) => [
            [
                p.coverage.ik.as_str().to_owned(),
                p.patient.insured_number().to_owned(),
                // Versichertenart, besondere Personengruppe, DMP, Rechtsgrundlage
                // (Statuskennzeichen): the four parts of the KBV stylesheets' Status.
                format!(
                    "{} {} {} {}",
                    p.coverage.insured_type.code(),
                    p.coverage.special_group,
                    p.coverage.dmp,
                    form.cert.map_or("00", |c| c.legal_basis.as_str())
                ),
            ],
            [
                form.cert
                    .and_then(|c| c.asv_team.clone())
                    .unwrap_or_else(|| p.practice.bsnr.as_str().to_owned()),
                form.cert.map_or_else(
                    || p.doctor.lanr.as_str().to_owned(),
                    |c| c.doctor_number().to_owned(),
                ),
                date(form.cert.map(|c| c.issued_on)),
            ],
        ],
        None => Default::default(),
    };
    let rights = [32.0, 60.0, P_RIGHT];
    for (row, top) in [35.0, 43.5].into_iter().enumerate() {
        for (col, left) in cells.into_iter().enumerate() {
            c.text(
                left + 1.5,
                top + 2.2,
                LABEL,
                Face::Regular,
                labels[row][col],
            );
            // The employer's copy blacks out the Status and the Betriebsstätten-Nr. (KBV
            // stylesheet AG: "darf nicht gefüllt werden"); the insurer's and patient's show them.
            if form.copy == Copy::Ag && matches!((row, col), (0, 2) | (1, 0)) {
                c.blackout(left + 0.4, top + 3.0, rights[col] - left - 0.8, 5.1);
                continue;
            }
            c.text_fit(
                left + 1.5,
                top + 6.6,
                22.0,
                VALUE,
                Face::Regular,
                &values[row][col],
            );
        }
    }
}

fn title_block(c: &mut Canvas<'_>, form: &Form<'_>) {
    c.frame(RIGHT - 8.0, 8.0, 8.0, 8.0, FRAME);
    c.text_center(RIGHT - 8.0, RIGHT, 14.0, 12.0, Face::Bold, "1");
    let size = c.fit(
        "Arbeitsunfähigkeits-",
        RIGHT - 10.0 - COL2,
        11.0,
        7.0,
        Face::Bold,
    );
    c.text(COL2, 12.3, size, Face::Bold, "Arbeitsunfähigkeits-");
    c.text(COL2, 16.6, size, Face::Bold, "bescheinigung");
    let initial = form.cert.map(|c| c.kind.is_initial());
    c.checkbox(COL2, 22.5, 8.0, initial == Some(true), "Erstbescheinigung");
    c.checkbox(
        COL2,
        27.0,
        8.0,
        initial == Some(false),
        "Folgebescheinigung",
    );
}

fn dates_block(c: &mut Canvas<'_>, form: &Form<'_>) {
    let cert = form.cert;
    let work = cert.is_some_and(|c| c.causes().any(Cause::is_work_related));
    let d_arzt = cert.is_some_and(|c| c.measures.d_arzt);
    c.checkbox(
        LEFT,
        57.5,
        7.0,
        work,
        "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit",
    );
    c.checkbox(LEFT, 62.0, 7.0, d_arzt, "dem Durchgangsarzt zugewiesen");

    let box_x = 58.0;
    let rows: [(f32, f32, &[&str], Option<NaiveDate>); 3] = [
        (
            64.5,
            6.0,
            &["arbeitsunfähig seit"],
            cert.and_then(|c| c.period.since),
        ),
        (
            72.0,
            8.0,
            &[
                "voraussichtlich arbeitsunfähig bis",
                "einschließlich oder letzter Tag der",
                "Arbeitsunfähigkeit",
            ],
            cert.map(|c| c.period.until),
        ),
        (
            81.5,
            6.0,
            &["festgestellt am"],
            cert.map(|c| c.period.determined_on),
        ),
    ];
    for (top, h, label, value) in rows {
        let n = label.len().to_f32();
        let mut y = top + h / 2.0 - (n - 1.0) * 1.25 + 0.9;
        for line in label {
            c.text(LEFT, y, 6.5, Face::Regular, line);
            y += 2.5;
        }
        c.frame(box_x, top, P_RIGHT - box_x, h, THIN);
        c.text(
            box_x + 2.0,
            top + h / 2.0 + 1.5,
            9.5,
            Face::Regular,
            &date(value),
        );
    }

    // The employer's copy has no lower part: "sonstiger Unfall" stands under the dates (KBV
    // stylesheet AG), the copy's name below it.
    let label_top = if form.copy == Copy::Ag {
        let accident = cert.is_some_and(|c| c.has_cause(Cause::Accident));
        c.checkbox(LEFT, 92.0, 7.0, accident, "sonstiger Unfall, Unfallfolgen");
        96.0
    } else {
        91.0
    };
    c.frame(LEFT, label_top, P_RIGHT - LEFT, 8.0, FRAME);
    let size = c.fit(
        form.copy.label(),
        P_RIGHT - LEFT - 3.0,
        8.0,
        5.0,
        Face::Bold,
    );
    c.text_center(
        LEFT,
        P_RIGHT,
        label_top + 5.2,
        size,
        Face::Bold,
        form.copy.label(),
    );
}

/// One line of the stamp: its baseline below the previous one, size, face and text.
struct StampLine {
    advance: f32,
    size: f32,
    face: Face,
    text: String,
}

/// The practice and the doctor(s) in the stamp, as the KBV stylesheets print them. Where the
/// lines do not fit above the signature line (an imported bundle with fax, e-mail and a
/// responsible doctor), spacing and sizes shrink together so that nothing reaches it.
fn stamp_lines(c: &mut Canvas<'_>, top: f32, w: f32, form: &Form<'_>, p: &Parties<'_>) {
    let line = |advance: f32, size: f32, face: Face, text: String| StampLine {
        advance,
        size,
        face,
        text,
    };
    let pr = p.practice;
    let more = &pr.more;
    let mut address = vec![pr.street.clone()];
    address.extend(more.address_line2.clone());
    address.push(format!("{} {}", pr.postal_code, pr.city));
    address.push(format!("Tel. {}", pr.phone));
    address.extend(more.fax.as_ref().map(|f| format!("Fax: {f}")));
    address.extend(more.email.as_ref().map(|e| format!("E-Mail: {e}")));
    let dense = address.len() > 3;
    // Not on the employer's copy: blacked out in the Personalienfeld, so not in the stamp.
    // An ASV team number stands where the BSNR would (KBV stylesheets).
    if form.copy != Copy::Ag {
        address.push(match form.cert.and_then(|c| c.asv_team.as_deref()) {
            Some(team) => format!("ASV-Team {team}"),
            None => format!("BSNR {}", pr.bsnr),
        });
    }
    let (step, size) = if dense { (3.0, 6.5) } else { (3.5, 7.5) };
    let mut lines = vec![line(0.0, 8.0, Face::Bold, pr.name.clone())];
    for (i, text) in address.into_iter().enumerate() {
        lines.push(line(
            if i == 0 { 3.5 } else { step },
            size,
            Face::Regular,
            text,
        ));
    }
    // The responsible doctor of a Weiterbildung or Vertretung follows the author; a doctor
    // transmitted without a number gets no number line (the KBV copies leave it empty).
    let responsible = form.cert.and_then(|c| c.responsible.as_ref());
    let tight = responsible.is_some() || dense;
    let (gap, name_size) = if tight { (2.9, 7.0) } else { (3.3, 8.0) };
    let number = |d: &Doctor| d.printed_number().map(|n| format!("LANR {n}"));
    let d = p.doctor;
    lines.push(line(
        if tight { 3.5 } else { 5.0 },
        name_size,
        Face::Regular,
        d.name.clone(),
    ));
    lines.push(line(gap, 6.5, Face::Regular, d.specialty.clone()));
    lines.extend(number(d).map(|n| line(gap, 7.0, Face::Regular, n)));
    if let Some(r) = responsible {
        lines.push(line(gap, 6.5, Face::Regular, r.name.clone()));
        lines.push(line(2.4, 5.5, Face::Regular, r.specialty.clone()));
        lines.extend(number(r).map(|n| line(2.2, 5.5, Face::Regular, n)));
    }
    // First baseline top + 7 mm; the last must stay clear of the signature line (top + 40).
    let room = 38.6 - 7.0;
    let needed: f32 = lines.iter().map(|l| l.advance).sum();
    let scale = if needed > room { room / needed } else { 1.0 };
    let (x, max) = (COL2 + 2.0, w - 4.0);
    let mut y = top + 7.0;
    for l in &lines {
        y += l.advance * scale;
        let size = (l.size * scale.max(0.8)).max(4.5);
        c.text_fit(x, y, max, size, l.face, &l.text);
    }
}

fn stamp(c: &mut Canvas<'_>, form: &Form<'_>) {
    let top = 55.0;
    let w = RIGHT - COL2;
    c.frame(COL2, top, w, 44.0, THIN);
    c.text(
        COL2 + 1.5,
        top + 2.5,
        LABEL,
        Face::Regular,
        "Vertragsarztstempel / Unterschrift des Arztes",
    );
    if let Some(p) = form.parties {
        stamp_lines(c, top, w, form, &p);
    }
    let responsible = form.cert.is_some_and(|c| c.responsible.is_some());
    if form.hand_signed && form.copy == Copy::V && responsible {
        // The stamp is full: the note stands just below it.
        let note = "eAU mit SMC-B signiert (Anlage 2b BMV-Ä): eigenhändig unterschreiben";
        c.text_center(COL2 + 1.0, RIGHT - 1.0, top + 46.3, 4.5, Face::Bold, note);
    } else if form.hand_signed && form.copy == Copy::V {
        let (from, to) = (COL2 + 1.0, RIGHT - 1.0);
        let note = "eAU mit SMC-B signiert (Anlage 2b BMV-Ä):";
        c.text_center(from, to, top + 35.6, 5.0, Face::Bold, note);
        c.text_center(
            from,
            to,
            top + 37.9,
            5.0,
            Face::Bold,
            "eigenhändig unterschreiben",
        );
    }
    c.line(COL2 + 10.0, top + 40.0, RIGHT - 2.0, top + 40.0, THIN);
    c.text_center(
        COL2 + 10.0,
        RIGHT - 2.0,
        top + 42.3,
        5.0,
        Face::Regular,
        "Unterschrift des Arztes",
    );
}

/// Diagnoses, cause and measures (KK and V only); returns the next free y.
fn diagnoses_block(c: &mut Canvas<'_>, cert: Option<&Certificate>) -> f32 {
    c.text(
        LEFT,
        106.0,
        7.5,
        Face::Bold,
        "AU-begründende Diagnose(n) (ICD-10)",
    );
    let cell_w = (RIGHT - LEFT) / 3.0;
    let top = 108.0;
    let cell_h = 7.5;
    c.frame(LEFT, top, RIGHT - LEFT, 3.0 * cell_h, THIN);
    for i in 1..3 {
        let y = top + i.to_f32() * cell_h;
        c.line(LEFT, y, RIGHT, y, THIN);
        let x = LEFT + i.to_f32() * cell_w;
        c.line(x, top, x, top + 2.0 * cell_h, THIN);
    }
    let diagnoses = cert.map(|c| c.diagnoses.as_slice()).unwrap_or_default();
    for i in 0..6 {
        let x = LEFT + (i % 3).to_f32() * cell_w;
        let y = top + (i / 3).to_f32() * cell_h;
        c.text(x + 1.5, y + 2.2, 5.0, Face::Regular, "ICD-10 - Code");
        if let Some(d) = diagnoses.get(i) {
            c.text(x + 3.0, y + 6.3, 10.0, Face::Regular, &d.to_string());
        }
    }
    let y = top + 2.0 * cell_h;
    c.text(
        LEFT + 1.5,
        y + 2.2,
        5.0,
        Face::Regular,
        "Hinweise zur Diagnose",
    );
    let hint = cert
        .and_then(|c| c.diagnosis_text.as_deref())
        .unwrap_or_default();
    c.text_fit(
        LEFT + 3.0,
        y + 6.3,
        RIGHT - LEFT - 5.0,
        8.5,
        Face::Regular,
        hint,
    );

    let has = |cause| cert.is_some_and(|c| c.has_cause(cause));
    let y = top + 3.0 * cell_h + 5.0;
    c.checkbox(
        LEFT,
        y,
        7.0,
        has(Cause::Accident),
        "sonstiger Unfall, Unfallfolgen",
    );
    c.checkbox(
        76.0,
        y,
        7.0,
        has(Cause::Ser),
        "Versorgungsleiden (z. B. SER)",
    );

    let m = cert.map(|c| &c.measures);
    let y = y + 5.5;
    c.text_fit(
        LEFT,
        y,
        RIGHT - LEFT,
        6.5,
        Face::Regular,
        "Es wird die Einleitung folgender besonderer Maßnahmen für erforderlich gehalten",
    );
    let y = y + 4.3;
    c.checkbox(
        LEFT,
        y,
        7.0,
        m.is_some_and(|m| m.rehabilitation),
        "Leistungen zur medizinischen Rehabilitation",
    );
    c.checkbox(
        76.0,
        y,
        7.0,
        m.is_some_and(|m| m.reintegration),
        "stufenweise Wiedereingliederung",
    );
    let y = y + 4.5;
    let other = m.and_then(|m| m.other.as_deref());
    let x = c.checkbox(LEFT, y, 7.0, other.is_some(), "Sonstige:");
    c.line(x + 1.0, y + 0.8, RIGHT, y + 0.8, 0.3);
    c.text_fit(
        x + 2.0,
        y,
        RIGHT - x - 3.0,
        8.0,
        Face::Regular,
        other.unwrap_or_default(),
    );
    y + 4.0
}

fn krankengeld_block(c: &mut Canvas<'_>, form: &Form<'_>, top: f32) -> f32 {
    let cert = form.cert;
    // The KK copy carries the KBV "Hinweis für Versicherte zum Krankengeld" in the same box.
    let kk = form.copy == Copy::Kk;
    let h = if kk { 21.5 } else { 11.0 };
    c.frame(LEFT, top, RIGHT - LEFT, h, THIN);
    c.text(LEFT + 1.5, top + 3.5, 7.0, Face::Bold, "Im Krankengeldfall");
    let y = top + 8.0;
    c.checkbox(
        LEFT + 1.5,
        y,
        7.0,
        cert.is_some_and(|c| c.sick_pay_case),
        "ab 7. AU-Woche oder sonstiger Krankengeldfall",
    );
    c.checkbox(
        92.0,
        y,
        7.0,
        cert.is_some_and(|c| c.kind.is_final()),
        "Endbescheinigung",
    );
    if kk {
        c.text(
            LEFT + 1.5,
            y + 4.5,
            6.5,
            Face::Bold,
            "Hinweis für Versicherte zum Krankengeld",
        );
        c.paragraph(
            LEFT + 1.5,
            y + 7.5,
            RIGHT - LEFT - 3.0,
            6.0,
            Face::Regular,
            "Wird Ihnen in der Arztpraxis die Bescheinigung über die Arbeitsunfähigkeit für die \
             Krankenkasse ausgehändigt, leiten Sie diese bitte an Ihre Krankenkasse weiter. \
             Dadurch können zeitliche Verzögerungen bei der Gewährung von Kranken- bzw. \
             Verletztengeld vermieden werden.",
        );
    }
    top + h + 4.0
}

fn patient_notice(c: &mut Canvas<'_>, top: f32) {
    c.text(
        LEFT,
        top,
        7.0,
        Face::Bold,
        "Hinweis für Versicherte zum Kranken- und Verletztengeld",
    );
    // The KBV stylesheet's words (EAU_Stylesheet_V).
    c.paragraph(
        LEFT,
        top + 3.5,
        RIGHT - LEFT,
        6.5,
        Face::Regular,
        "Achten Sie bei fortbestehender Arbeitsunfähigkeit auf eine lückenlose ärztliche \
         Feststellung, da sonst ein Krankengeldverlust droht. Hierfür ist es erforderlich, dass \
         Sie sich spätestens an dem Werktag, der auf den letzten Tag der aktuellen \
         Arbeitsunfähigkeitsbescheinigung folgt, bei Ihrem Arzt oder Ihrer Ärztin die \
         fortbestehende Arbeitsunfähigkeit bestätigen lassen. Legen Sie immer ihre aktuell \
         gültige Versichertenkarte vor, um Probleme bei der Zahlung von Kranken- oder \
         Verletztengeld zu vermeiden. Weitere Informationen erhalten Sie bei Ihrer Krankenkasse.",
    );
}

fn insurer_notice(c: &mut Canvas<'_>, top: f32, delivered: bool) {
    let text = if delivered {
        "Die Arbeitsunfähigkeitsbescheinigung ist der Krankenkasse elektronisch übermittelt \
         worden (eAU). Dieser Ausdruck muss ihr nicht zugeleitet werden."
    } else {
        "Ersatzverfahren: Die elektronische Übermittlung an die Krankenkasse war nicht möglich. \
         Diese Ausfertigung wird vom Arzt unterschrieben und der Krankenkasse auf Papier \
         zugeleitet (vom Versicherten oder von der Praxis)."
    };
    c.paragraph(LEFT, top, RIGHT - LEFT, 6.5, Face::Regular, text);
}

fn employer_notice(c: &mut Canvas<'_>) {
    let top = 108.0;
    c.frame(LEFT, top, RIGHT - LEFT, 17.0, THIN);
    c.paragraph(
        LEFT + 2.0,
        top + 5.0,
        RIGHT - LEFT - 4.0,
        7.5,
        Face::Regular,
        "Der angegebenen Krankenkasse wird unverzüglich eine Bescheinigung über die \
         Arbeitsunfähigkeit mit Angaben über die Diagnose sowie die voraussichtliche Dauer \
         der Arbeitsunfähigkeit übersandt.",
    );
}

fn footer(c: &mut Canvas<'_>, form: &Form<'_>) {
    c.line(LEFT, 199.0, RIGHT, 199.0, THIN);
    let id = form
        .cert
        .map(|c| c.document_id.to_string())
        .unwrap_or_else(|| "—".to_owned());
    c.text(
        LEFT,
        202.5,
        5.5,
        Face::Regular,
        &format!("Dokumenten-ID: {id}"),
    );
    // The KBV stylesheets' footer: document version, type and the software's Prüfnummer.
    let pruefnummer = form.cert.map_or(crate::domain::SOFTWARE_PRUEFNUMMER, |c| {
        c.pruefnummer.as_str()
    });
    c.text_right(
        RIGHT,
        202.5,
        5.5,
        Face::Regular,
        "Muster 1 · Dokumentenversion: 1.2 · Dokumententyp: e010",
    );
    let kind = match (form.cert, form.barcode) {
        (Some(_), Some(_)) => "Ausdruck im Ersatzverfahren mit Barcode (PDF417)",
        (Some(_), None) if form.delivered => "Ausdruck – eAU elektronisch übermittelt",
        (Some(_), None) => "Ausdruck",
        (None, _) => "Vordruck zum Ausfüllen von Hand",
    };
    c.text(LEFT, 205.3, 5.5, Face::Regular, kind);
    c.text_right(
        RIGHT,
        205.3,
        5.5,
        Face::Regular,
        &format!("PRF.NR. {pruefnummer}"),
    );
}
