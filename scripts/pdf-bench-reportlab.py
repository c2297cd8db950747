#!/usr/bin/env python3
"""Draws the same KK copy as `pdf::render(full sample, Copy::Kk, A5)` with reportlab and times it.

Same page: A5, the same texts at the same coordinates (a port of src/pdf/layout.rs for the KK
copy of the "full" sample), DejaVu Sans + Bold embedded as subsets, and the same PDF417 drawn as
one filled rectangle per run of dark modules (7 data columns, EC level 4, module 0.254 mm,
row height 2 modules, quiet zone 2 modules).

The module matrix comes from the Rust encoder (`*-kk.modules`, written by the ignored test
`write_sample_pdfs`), because reportlab has no PDF417 encoder; so the Python figure EXCLUDES
barcode encoding, the Rust figure includes it (see BENCHMARKS.md).

Usage:
  PDF_SAMPLES_DIR=/tmp/s cargo test --test it -- --ignored --exact pdf::write_sample_pdfs
  python3 scripts/pdf-bench-reportlab.py /tmp/s/full-kk.modules [out.pdf]
Needs: pip install reportlab
"""

import io
import pathlib
import statistics
import sys
import time

from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

FONT_DIR = pathlib.Path(__file__).resolve().parent.parent / "assets" / "fonts"
pdfmetrics.registerFont(TTFont("DejaVu", str(FONT_DIR / "DejaVuSans-Latin.ttf")))
pdfmetrics.registerFont(TTFont("DejaVuBold", str(FONT_DIR / "DejaVuSans-Bold-Latin.ttf")))

PAGE_W, PAGE_H = 148.0, 210.0
LEFT, RIGHT, P_RIGHT, COL2 = 8.0, 140.0, 84.0, 88.0
LABEL, VALUE, THIN, FRAME = 5.5, 8.5, 0.4, 0.8
MODULE, ROW_H, QZ = 0.254, 2 * 0.254, 2 * 0.254


class Page:
    def __init__(self, c):
        self.c = c

    def text(self, x, y, size, text, bold=False):
        if not text:
            return
        self.c.setFont("DejaVuBold" if bold else "DejaVu", size)
        self.c.drawString(x * mm, (PAGE_H - y) * mm, text)

    def width(self, text, size, bold=False):
        return pdfmetrics.stringWidth(text, "DejaVuBold" if bold else "DejaVu", size) / mm

    def right(self, r, y, size, text, bold=False):
        self.text(r - self.width(text, size, bold), y, size, text, bold)

    def center(self, l, r, y, size, text, bold=False):
        self.text(l + (r - l - self.width(text, size, bold)) / 2, y, size, text, bold)

    def line(self, x1, y1, x2, y2, w):
        self.c.setLineWidth(w)
        self.c.line(x1 * mm, (PAGE_H - y1) * mm, x2 * mm, (PAGE_H - y2) * mm)

    def frame(self, x, y, w, h, lw):
        self.c.setLineWidth(lw)
        self.c.rect(x * mm, (PAGE_H - y - h) * mm, w * mm, h * mm, stroke=1, fill=0)

    def checkbox(self, x, y, size, checked, label):
        mark = "\u2612" if checked else "\u2610"
        self.text(x, y, size + 1.5, mark)
        lx = x + self.width(mark, size + 1.5) + 1.0
        self.text(lx, y, size, label)
        return lx + self.width(label, size)


def draw_kk(c, modules):
    p = Page(c)
    # Personalienfeld
    p.frame(LEFT, 8, P_RIGHT - LEFT, 44, FRAME)
    for y in (16, 35, 43.5):
        p.line(LEFT, y, P_RIGHT, y, THIN)
    for x in (32, 60):
        p.line(x, 35, x, 52, THIN)
    x = LEFT + 1.5
    p.text(x, 10.3, LABEL, "Krankenkasse bzw. Kostenträger")
    p.right(P_RIGHT - 1.5, 14.6, VALUE, "03")
    p.text(x, 14.6, VALUE, "AOK Niedersachsen")
    p.text(x, 18.3, LABEL, "Name, Vorname des Versicherten")
    p.right(P_RIGHT - 1.5, 18.3, LABEL, "geb. am")
    p.right(P_RIGHT - 1.5, 21.8, VALUE, "01.04.1980")
    p.text(x, 21.8, VALUE, "Müller-Lüdenscheidt, Jürgen")
    p.text(x, 25.3, VALUE, "Große Straße 5a")
    p.text(x, 28.8, VALUE, "30159 Hannover")
    labels = [["Kostenträgerkennung", "Versicherten-Nr.", "Status"],
              ["Betriebsstätten-Nr.", "Arzt-Nr.", "Datum"]]
    values = [["109500969", "A123456780", "1 00 00"], ["031234567", "838382202", "25.11.2026"]]
    for row, top in enumerate((35.0, 43.5)):
        for col, left in enumerate((LEFT, 32.0, 60.0)):
            p.text(left + 1.5, top + 2.2, LABEL, labels[row][col])
            p.text(left + 1.5, top + 6.6, VALUE, values[row][col])
    # Title
    p.frame(RIGHT - 8, 8, 8, 8, FRAME)
    p.center(RIGHT - 8, RIGHT, 14, 12, "1", True)
    p.text(COL2, 12.3, 10.4, "Arbeitsunfähigkeits-", True)
    p.text(COL2, 16.6, 10.4, "bescheinigung", True)
    p.checkbox(COL2, 22.5, 8, False, "Erstbescheinigung")
    p.checkbox(COL2, 27.0, 8, True, "Folgebescheinigung")
    # PDF417: one rectangle per run of dark modules
    left, top = (COL2 - 0.5) + QZ, 30.0 + QZ
    for r, row in enumerate(modules):
        x = 0
        n = len(row)
        while x < n:
            if row[x] == "1":
                s = x
                while x < n and row[x] == "1":
                    x += 1
                c.rect((left + s * MODULE) * mm, (PAGE_H - top - (r + 1) * ROW_H) * mm,
                       (x - s) * MODULE * mm, ROW_H * mm, stroke=0, fill=1)
            else:
                x += 1
    # Dates
    p.checkbox(LEFT, 57.5, 7, True, "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit")
    p.checkbox(LEFT, 62.0, 7, True, "dem Durchgangsarzt zugewiesen")
    rows = [(64.5, 6, ["arbeitsunfähig seit"], ""),
            (72.0, 8, ["voraussichtlich arbeitsunfähig bis", "einschließlich oder letzter Tag der",
                       "Arbeitsunfähigkeit"], "20.12.2026"),
            (81.5, 6, ["festgestellt am"], "25.11.2026")]
    for top, h, label, value in rows:
        y = top + h / 2 - (len(label) - 1) * 1.25 + 0.9
        for line in label:
            p.text(LEFT, y, 6.5, line)
            y += 2.5
        p.frame(58, top, P_RIGHT - 58, h, THIN)
        p.text(60, top + h / 2 + 1.5, 9.5, value)
    p.frame(LEFT, 91, P_RIGHT - LEFT, 8, FRAME)
    label = "Ausfertigung zur Vorlage bei der Krankenkasse"
    size = min(8.0, 8.0 * (P_RIGHT - LEFT - 3) / p.width(label, 8.0, True))
    p.center(LEFT, P_RIGHT, 96.2, size, label, True)
    # Stamp
    top = 55.0
    p.frame(COL2, top, RIGHT - COL2, 44, THIN)
    p.text(COL2 + 1.5, top + 2.5, LABEL, "Vertragsarztstempel / Unterschrift des Arztes")
    x = COL2 + 2
    p.text(x, top + 7, 8, "Praxis Dr. Muster", True)
    p.text(x, top + 10.5, 7.5, "Hauptstraße 1")
    p.text(x, top + 14, 7.5, "30159 Hannover")
    p.text(x, top + 17.5, 7.5, "Tel. 0511 123456")
    p.text(x, top + 21, 7.5, "BSNR 031234567")
    p.text(x, top + 26, 8, "Dr. med. Maria Muster")
    p.text(x, top + 29.5, 7, "Fachärztin für Allgemeinmedizin")
    p.text(x, top + 33, 7.5, "LANR 838382202")
    p.line(COL2 + 10, top + 40, RIGHT - 2, top + 40, THIN)
    p.center(COL2 + 10, RIGHT - 2, top + 42.3, 5, "Unterschrift des Arztes")
    # Diagnoses
    p.text(LEFT, 106, 7.5, "AU-begründende Diagnose(n) (ICD-10)", True)
    cw, top, ch = (RIGHT - LEFT) / 3, 108.0, 7.5
    p.frame(LEFT, top, RIGHT - LEFT, 3 * ch, THIN)
    for i in (1, 2):
        p.line(LEFT, top + i * ch, RIGHT, top + i * ch, THIN)
        p.line(LEFT + i * cw, top, LEFT + i * cw, top + 2 * ch, THIN)
    codes = ["S82.28 G R", "M54.5 V L", "J06.9 G", "E10.20 Z", "U07.1 A", "T14.0 G B"]
    for i in range(6):
        x, y = LEFT + (i % 3) * cw, top + (i // 3) * ch
        p.text(x + 1.5, y + 2.2, 5, "ICD-10 - Code")
        p.text(x + 3, y + 6.3, 10, codes[i])
    y = top + 2 * ch
    p.text(LEFT + 1.5, y + 2.2, 5, "Hinweise zur Diagnose")
    p.text(LEFT + 3, y + 6.3, 8.5, "Sturz auf Treppe, überwiegend Knie")
    y = top + 3 * ch + 5
    p.checkbox(LEFT, y, 7, False, "sonstiger Unfall, Unfallfolgen")
    p.checkbox(76, y, 7, False, "Versorgungsleiden (z. B. SER)")
    y += 5.5
    p.text(LEFT, y, 6.5, "Es wird die Einleitung folgender besonderer Maßnahmen durch die "
                         "Krankenkasse für erforderlich gehalten:")
    y += 4.3
    p.checkbox(LEFT, y, 7, True, "Leistungen zur medizinischen Rehabilitation")
    p.checkbox(76, y, 7, True, "stufenweise Wiedereingliederung")
    y += 4.5
    x = p.checkbox(LEFT, y, 7, True, "Sonstige:")
    p.line(x + 1, y + 0.8, RIGHT, y + 0.8, 0.3)
    p.text(x + 2, y, 8, "Physiotherapie, Arbeitsplatzbegehung")
    top = y + 4
    p.frame(LEFT, top, RIGHT - LEFT, 11, THIN)
    p.text(LEFT + 1.5, top + 3.5, 7, "Im Krankengeldfall", True)
    p.checkbox(LEFT + 1.5, top + 8, 7, True, "ab 7. AU-Woche oder sonstiger Krankengeldfall")
    p.checkbox(92, top + 8, 7, True, "Endbescheinigung")
    y = top + 15
    for line in ["Ersatzverfahren: Die elektronische Übermittlung an die Krankenkasse war nicht "
                 "möglich. Diese Ausfertigung wird",
                 "vom Arzt unterschrieben und der Krankenkasse auf Papier zugeleitet (vom "
                 "Versicherten oder von der Praxis)."]:
        p.text(LEFT, y, 6.5, line)
        y += 6.5 * 0.3528 * 1.3
    # Footer
    p.line(LEFT, 199, RIGHT, 199, THIN)
    p.text(LEFT, 202.5, 5.5, "Dokumenten-ID: 00000000-0000-0000-0000-00000000f011")
    p.right(RIGHT, 202.5, 5.5, "Muster 1 · Dokumententyp e010 · Dokumentenversion 1.2")
    p.text(LEFT, 205.3, 5.5, "Ausdruck im Ersatzverfahren mit Barcode (PDF417)")
    p.right(RIGHT, 205.3, 5.5, "Ausfertigung zur Vorlage bei der Krankenkasse")


def render(modules):
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(PAGE_W * mm, PAGE_H * mm), pageCompression=1)
    draw_kk(c, modules)
    c.showPage()
    c.save()
    return buf.getvalue()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    modules = [l.strip() for l in open(sys.argv[1]) if l.strip()]
    pdf = render(modules)  # warm-up (font parsing is cached by reportlab)
    if len(sys.argv) > 2:
        open(sys.argv[2], "wb").write(pdf)
    runs = []
    deadline = time.perf_counter() + 5.0
    while time.perf_counter() < deadline or len(runs) < 50:
        t = time.perf_counter()
        render(modules)
        runs.append((time.perf_counter() - t) * 1000)
    runs.sort()
    print(f"reportlab KK copy A5: {len(pdf)} bytes; {len(runs)} runs; "
          f"median {statistics.median(runs):.2f} ms, p10 {runs[len(runs) // 10]:.2f} ms, "
          f"p90 {runs[len(runs) * 9 // 10]:.2f} ms")


if __name__ == "__main__":
    main()
