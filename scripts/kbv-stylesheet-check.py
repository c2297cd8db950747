#!/usr/bin/env python3
"""AU-Relay's paper copies and PDF417 payload, field by field against the KBV eAU stylesheets.

Run by scripts/kbv-stylesheet-check.sh, which writes the inputs:

    kbv-stylesheet-check.py <au-relay-dir> <kbv-dir>

<au-relay-dir> holds what AU-Relay produced for each sample (ignored test
`write_oracle_samples` in tests/it/pdf.rs): <name>.xml (the eAU bundle it stores),
<name>-kk.pdf, <name>-ag.pdf, <name>-v.pdf and <name>.payload (the PDF417 content, ISO 8859-15).
Samples named *_original carry a KBV/gematik example bundle as received instead of the bundle
AU-Relay writes after importing it (same copies): they are summed up separately.
<kbv-dir> holds what the KBV stylesheets (EAU_Stylesheet_KK/AG/V.xslt, V1.2) made of the same
bundle: <name>-kk.html, <name>-ag.html, <name>-v.html, and <name>-barcode.xml, the KK
stylesheet's own barcode template (`BarcodeGeneratorParameter`) shown through its
`AnzeigeBarcodePerGenerator` (an <img src="...data=..."> URL, TAB masked as %09, space as %20).

Every value the KBV copy shows is read from its place in the KBV HTML (the cell after a label,
the row under a label row, the box before a checkbox label) and compared with the value at the
same place in `pdftotext -layout` of AU-Relay's copy; the KBV barcode string is compared field
by field with AU-Relay's payload bytes. Prints one table per sample and copy and the line
`N samples × 3 copies: X fields compared, Y differ`; exits 1 if any field differs.

Differences that AU-Relay makes on purpose are listed in DELIBERATE below, each with its reason;
a field that differs only in such a way is shown as "deliberate" and not counted as differing.
Python 3 standard library only.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

XHTML = "{http://www.w3.org/1999/xhtml}"
BOXES = "☒☐"
DATE = re.compile(r"\b\d\d\.\d\d\.\d{4}\b")


# --------------------------------------------------------------------------------------------
# Deliberate differences: the same transliteration AU-Relay applies (src/domain/text.rs),
# re-stated here so that a difference is only excused when it is exactly that.

TYPOGRAPHIC = {
    **{chr(c): "-" for c in range(0x2010, 0x2016)},
    "\u2212": "-", "\u2027": "-", "•": "-", "\u2043": "-",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
    "‹": "<", "›": ">", "…": "...", "‥": "..", "․": ".", "‖": "||", "‗": "_",
    "†": "+", "‡": "++", "‰": "o/oo", "™": "TM",
}


def printable(c: str) -> bool:
    """The characters the embedded font of AU-Relay's PDF has (text.rs `printable`)."""
    o = ord(c)
    return (
        0x20 <= o <= 0x7E or 0xA0 <= o <= 0x17F or 0x218 <= o <= 0x21B
        or 0x2C6 <= o <= 0x2DD or 0x2010 <= o <= 0x2027
        or o in (0x2030, 0x2039, 0x203A, 0x20AC, 0x2122, 0xFFFD)
        or 0x2610 <= o <= 0x2612
    )


LATIN9_EXTRA = set("€ŠšŽžŒœŸ")
LATIN9_HOLES = {0xA4, 0xA6, 0xA8, 0xB4, 0xB8, 0xBC, 0xBD, 0xBE}


def latin9(c: str) -> bool:
    """Whether ISO 8859-15 has the character (text.rs `latin9`)."""
    o = ord(c)
    return (o <= 0xFF and o not in LATIN9_HOLES) or c in LATIN9_EXTRA


def transliterate(s: str, keep) -> str:
    """Approximates text.rs `transliterate` (deunicode) for Latin letters with diacritics."""
    out = []
    for c in s:
        if keep(c):
            out.append(c)
        elif c in TYPOGRAPHIC:
            out.append(TYPOGRAPHIC[c])
        else:
            base = "".join(
                b for b in unicodedata.normalize("NFKD", c) if not unicodedata.combining(b)
            )
            out.append(base if base and all(keep(b) for b in base) else "?")
    return "".join(out)


@dataclass(frozen=True)
class Deliberate:
    name: str
    applies_to: str  # "paper" or "barcode"
    reason: str
    # Which pair of values it excuses; by default the transliteration of the KBV value.
    excuse: Callable[[str, str, str], bool] | None = None

    def excuses(self, kbv: str, ours: str, field: str) -> bool:
        if self.excuse is not None:
            return self.excuse(kbv, ours, field)
        keep = printable if self.applies_to == "paper" else latin9
        return kbv != ours and transliterate(kbv, keep) == ours


DELIBERATE = [
    Deliberate(
        "paper transliteration",
        "paper",
        "AU-Relay's copies embed one font subset; characters it lacks (ễ, ị, Cyrillic, ...) are "
        "printed transliterated (domain::for_paper), so that every stored certificate prints. "
        "The KBV HTML leaves glyphs to the browser's fonts.",
    ),
    Deliberate(
        "barcode ISO 8859-15",
        "barcode",
        "The PDF417 of Muster 1 carries ISO 8859-15 (TA Table 22); AU-Relay writes typographic "
        "marks and letters Latin-9 lacks in their ASCII/base form (domain::for_barcode: "
        "„“ → \", – → -, ł → l). The KBV template copies the bundle's Unicode text unchanged.",
    ),
    Deliberate(
        "empty barcode field",
        "barcode",
        "Where no doctor of the bundle is transmitted with a number (Arzt in Weiterbildung "
        "with a responsible doctor who has none either), the KBV template fills barcode field 11 "
        "with its placeholder, a no-break space (&#160;); AU-Relay leaves the field empty.",
        lambda kbv, ours, field: field == "11 LANR" and kbv == "\xa0" and ours == "",
    ),
]


# --------------------------------------------------------------------------------------------
# The KBV HTML


def norm(s: str) -> str:
    return " ".join(s.replace("\xa0", " ").split())


def lines_of(el: ET.Element) -> list[str]:
    """The element's text, one entry per <br/>-separated line, whitespace normalised."""
    parts: list[str] = [""]

    def walk(e: ET.Element) -> None:
        if e.tag == XHTML + "br":
            parts.append("")
        elif e.text:
            parts[-1] += e.text
        for child in e:
            walk(child)
            if child.tail:
                parts[-1] += child.tail

    walk(el)
    return [n for n in (norm(p) for p in parts) if n]


def flat(el: ET.Element | None) -> str:
    return " ".join(lines_of(el)) if el is not None else ""


class KbvPage:
    def __init__(self, path: Path):
        self.root = ET.parse(path).getroot()
        self.parent = {c: p for p in self.root.iter() for c in p}
        self.tds = list(self.root.iter(XHTML + "td"))

    def td(self, label: str) -> ET.Element | None:
        return next((t for t in self.tds if flat(t) == label), None)

    def siblings(self, el: ET.Element) -> list[ET.Element]:
        return list(self.parent[el])

    def next_sibling(self, el: ET.Element) -> ET.Element | None:
        sib = self.siblings(el)
        i = sib.index(el)
        return sib[i + 1] if i + 1 < len(sib) else None

    def prev_sibling(self, el: ET.Element) -> ET.Element | None:
        sib = self.siblings(el)
        i = sib.index(el)
        return sib[i - 1] if i > 0 else None

    def row_after(self, label: str, n: int = 1) -> list[ET.Element]:
        """The cells of the n-th table row below the row holding `label`."""
        td = self.td(label)
        if td is None:
            return []
        tr = self.parent[td]
        rows = [r for r in self.siblings(tr) if r.tag == XHTML + "tr"]
        i = rows.index(tr) + n
        return [c for c in rows[i] if c.tag == XHTML + "td"] if i < len(rows) else []

    def box(self, label: str) -> str | None:
        td = self.td(label)
        if td is None:
            return None
        prev = self.prev_sibling(td)
        mark = flat(prev)
        return mark if mark in BOXES else None

    def value_after(self, label: str) -> str | None:
        td = self.td(label)
        return None if td is None else flat(self.next_sibling(td))

    def by_class(self, tag: str, cls: str) -> list[ET.Element]:
        return [
            e for e in self.root.iter(XHTML + tag)
            if cls in (e.get("class") or "").split()
        ]


CHECKBOXES = [
    # (field, KBV label cell, AU-Relay label)
    ("Erstbescheinigung", "Erstbescheinigung", "Erstbescheinigung"),
    ("Folgebescheinigung", "Folgebescheinigung", "Folgebescheinigung"),
    ("Arbeitsunfall", "Arbeitsunfall, Arbeitsunfall- folgen, Berufskrankheit",
     "Arbeitsunfall, Arbeitsunfallfolgen, Berufskrankheit"),
    ("D-Arzt", "dem Durchgangsarzt zugewiesen", "dem Durchgangsarzt zugewiesen"),
    ("sonstiger Unfall", "sonstiger Unfall, Unfallfolgen", "sonstiger Unfall, Unfallfolgen"),
    ("Versorgungsleiden", "Versorgungsleiden (z.B. SER)", "Versorgungsleiden"),
    ("Reha", "Leistungen zur medizinischen Rehabilitation",
     "Leistungen zur medizinischen Rehabilitation"),
    ("Wiedereingliederung", "stufenweise Wiedereingliederung", "stufenweise Wiedereingliederung"),
    ("Sonstige (Kästchen)", "Sonstige", "Sonstige"),
    ("Krankengeldfall", "ab 7. AU-Woche oder sonstiger Krankengeldfall",
     "ab 7. AU-Woche oder sonstiger Krankengeldfall"),
    ("Endbescheinigung", "Endbescheinigung", "Endbescheinigung"),
]

LABEL_BIS = ("voraussichtlich arbeitsunfähig bis einschließlich oder letzter Tag der "
             "Arbeitsunfähigkeit")


def kbv_fields(page: KbvPage) -> dict[str, object]:
    """Every value the KBV copy shows, by field; None where the copy has no such field."""
    f: dict[str, object] = {}
    kasse = page.row_after("Krankenkasse bzw. Kostenträger")
    f["Krankenkasse"] = flat(kasse[0]) if kasse else None
    f["WOP"] = flat(kasse[1]) if len(kasse) > 1 else None
    r1 = page.row_after("Name, Vorname des Versicherten", 1)
    r2 = page.row_after("Name, Vorname des Versicherten", 2)
    r3 = page.row_after("Name, Vorname des Versicherten", 3)
    f["Name"] = flat(r1[0]) if r1 else None
    f["Vorname"] = flat(r2[0]) if r2 else None
    f["geb. am"] = flat(r2[1]) if len(r2) > 1 else None
    addr = lines_of(r3[0]) if r3 else []
    f["Straße Hausnr."] = addr[0] if addr else ""
    f["PLZ Ort"] = addr[1] if len(addr) > 1 else ""
    ids = page.row_after("Kostenträgerkennung")
    f["Kostenträgerkennung"] = flat(ids[0]) if ids else None
    f["Versicherten-Nr."] = flat(ids[1]) if len(ids) > 1 else None
    f["Status"] = flat(ids[2]) if len(ids) > 2 else None
    nums = page.row_after("Betriebsstätten-Nr.")
    f["Betriebsstätten-Nr."] = flat(nums[0]) if nums else None
    f["Arzt-Nr."] = flat(nums[1]) if len(nums) > 1 else None
    f["Datum"] = flat(nums[2]) if len(nums) > 2 else None
    for field, label, _ in CHECKBOXES:
        f[field] = page.box(label)
    f["AU seit"] = page.value_after("arbeitsunfähig seit")
    f["AU bis"] = page.value_after(LABEL_BIS)
    f["festgestellt am"] = page.value_after("festgestellt am")
    f["Sonstige (Text)"] = page.value_after("Sonstige")
    cells = [
        e for e in page.by_class("td", "daten")
        if "nowrap" in (e.get("class") or "") and e.get("bgcolor") == "white"
    ]
    for i in range(6):
        f[f"Diagnose {i + 1}"] = flat(cells[i]) if i < len(cells) else None
    hint = [e for e in page.by_class("td", "daten")
            if e.get("colspan") == "5" and e.get("bgcolor") == "white"]
    f["Hinweise zur Diagnose"] = flat(hint[0]) if hint else None
    label = [d for d in page.root.iter(XHTML + "div")
             if "border:2px solid black" in (d.get("style") or "")]
    f["Ausfertigung (Kopfzeile)"] = flat(label[0]) if label else None
    stamp = page.by_class("div", "breakword")
    if stamp:
        inner = [ln for ln in lines_of(stamp[0])
                 if ln != "Vertragsarztstempel / Unterschrift des Arztes"]
        f["Stempel"] = inner
    else:
        f["Stempel"] = None
    texts = []
    for cls in ("hervorgehoben3kursiv", "kursiv"):
        texts += [flat(e) for e in page.by_class("td", cls)]
    texts += [flat(e) for e in page.by_class("td", "info")
              if flat(e).startswith("Der angegebenen Krankenkasse")]
    f["Hinweistexte"] = texts
    footer = norm(" ".join(flat(e) for e in page.by_class("span", "footer")))
    m = re.search(r"Dokumentenversion: (\S+)", footer)
    f["Dokumentenversion"] = m.group(1) if m else None
    m = re.search(r"Dokumententyp: (\S+)", footer)
    f["Dokumententyp"] = m.group(1) if m else None
    m = re.search(r"PRF\.NR\. (\S+)", footer)
    f["PRF.NR."] = m.group(1) if m else None
    m = re.search(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", footer)
    f["Dokumenten-ID"] = m.group(1) if m else None
    return f


# What the KBV AG stylesheet leaves out or blacks out: the employer learns no diagnosis, no
# hint, no measure text, no Status and no Betriebsstätten-Nr. (checked anywhere on the page).
HIDDEN_ON_AG = ["Status", "Betriebsstätten-Nr.", "Sonstige (Text)", "Hinweise zur Diagnose",
                *[f"Diagnose {i}" for i in range(1, 7)]]


# Samples whose bundle is a KBV/gematik example as received (not written by AU-Relay).
ORIGINAL = "_original"


BARCODE_FIELDS = [
    "01 Formularcode", "02 Formularcodeergänzung", "03 Versionsnummer",
    "04 Versicherungsschutz Ende", "05 Kostenträgerkennung", "06 Versicherten-ID",
    "07 Versichertenart", "08 Besondere Personengruppe", "09 DMP-Kennzeichen", "10 (N)BSNR",
    "11 LANR", "12 Ausstellungsdatum", "13 Erstbescheinigung", "14 Folgebescheinigung",
    "15 Arbeitsunfall", "16 Durchgangsarzt", "17 arbeitsunfähig seit",
    "18 voraussichtlich AU bis", "19 festgestellt am", "20 sonstiger Unfall", "21 SER",
    "22 Rehabilitation", "23 Wiedereingliederung", "24 sonstige Maßnahmen",
    "25 Krankengeldfall", "26 Endbescheinigung", "27 Diagnosen", "28 Hinweise zur Diagnose",
]


def kbv_barcode(path: Path) -> str:
    """BarcodeInhalt as the KK stylesheet builds it, with its URL masking undone."""
    root = ET.parse(path).getroot()
    img = next(root.iter(XHTML + "img"))
    src = img.get("src") or ""
    m = re.search(r"[?&]data=(.*?)&code=", src, re.S)
    if not m:
        raise SystemExit(f"{path}: no data= in the generator URL: {src!r}")
    data = m.group(1).strip(" \t\r\n")
    return data.replace("%09", "\t").replace("%20", " ")


# --------------------------------------------------------------------------------------------
# AU-Relay's copy, from `pdftotext -layout`


def pdf_layout(path: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                         capture_output=True, text=True).stdout
    return out.split("\n")


def col_tokens(line: str) -> list[tuple[int, str]]:
    """The line's values with their start columns; values are separated by 2+ spaces."""
    return [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def find(lines: list[str], needle: str, start: int = 0) -> int:
    for i in range(start, len(lines)):
        if needle in lines[i]:
            return i
    return -1


class OurPage:
    def __init__(self, path: Path):
        self.lines = pdf_layout(path)
        self.flat = norm(" ".join(self.lines))
        title = find(self.lines, "Arbeitsunfähigkeits-")
        self.split_top = self.lines[title].index("Arbeitsunfähigkeits-") if title >= 0 else 999
        stamp = find(self.lines, "Vertragsarztstempel")
        self.mid_start = find(self.lines, "Arbeitsunfall, Arbeitsunfallfolgen")
        self.split_mid = self.lines[stamp].index("Vertragsarztstempel") if stamp >= 0 else 999
        self.mid_end = max(find(self.lines, "Ausfertigung", self.mid_start), self.mid_start)

    def left_top(self, i: int) -> str:
        return self.lines[i][: self.split_top].rstrip()

    def left_mid(self, i: int) -> str:
        return self.lines[i][: self.split_mid].rstrip()

    def stamp_lines(self) -> list[str]:
        out = []
        for i in range(self.mid_start, self.mid_end + 1):
            s = norm(self.lines[i][self.split_mid - 1:])
            if s and s not in ("Vertragsarztstempel / Unterschrift des Arztes",
                               "Unterschrift des Arztes"):
                out.append(s)
        return out

    def table_row(self, labels: list[str]) -> list[str]:
        """Values in the first non-empty line under the label row, assigned to the label columns."""
        i = find(self.lines, labels[0])
        if i < 0:
            return [None] * len(labels)
        head = self.left_top(i)
        cols = [head.index(lb) for lb in labels]
        j = i + 1
        while j < len(self.lines) and not self.left_top(j).strip():
            j += 1
        row = self.left_top(j) if j < len(self.lines) else ""
        if any(lb in row for lb in ("Betriebsstätten-Nr.", "Arbeitsunfall")):
            row = ""  # the next label row: this one is empty
        values = [""] * len(labels)
        for start, token in col_tokens(row):
            k = max((n for n, c in enumerate(cols) if c <= start + 2), default=0)
            values[k] = norm(values[k] + " " + token)
        return values

    def fields(self) -> dict[str, object]:
        f: dict[str, object] = {}
        L = self.lines
        i = find(L, "Krankenkasse bzw. Kostenträger")
        j = find(L, "Name, Vorname des Versicherten")
        kasse = next((self.left_top(k) for k in range(i + 1, j) if self.left_top(k).strip()), "")
        toks = [t for _, t in col_tokens(kasse)]
        f["Krankenkasse"] = toks[0] if toks else ""
        f["WOP"] = toks[1] if len(toks) > 1 else ""
        k = find(L, "Kostenträgerkennung")
        block = [self.left_top(n) for n in range(j + 1, k)]
        text = "\n".join(block)
        birth = DATE.search(text)
        f["geb. am"] = birth.group() if birth else ""
        rest = [norm(DATE.sub("", b)) for b in block]
        rest = [r for r in rest if r]
        street, city = (rest[-2], rest[-1]) if len(rest) >= 2 else ("", "")
        name = " ".join(rest[:-2])
        last, _, first = name.partition(", ")
        f["Name"], f["Vorname"] = last, first
        f["Straße Hausnr."], f["PLZ Ort"] = street, city
        ik, kvnr, status = self.table_row(["Kostenträgerkennung", "Versicherten-Nr.", "Status"])
        f["Kostenträgerkennung"], f["Versicherten-Nr."], f["Status"] = ik, kvnr, status
        bsnr, lanr, datum = self.table_row(["Betriebsstätten-Nr.", "Arzt-Nr.", "Datum"])
        f["Betriebsstätten-Nr."], f["Arzt-Nr."], f["Datum"] = bsnr, lanr, datum
        for field, _, label in CHECKBOXES:
            m = re.search(r"([☒☐])\s*" + re.escape(label) + r"(?![A-Za-zäöü])", self.flat)
            f[field] = m.group(1) if m else None

        def date_in(a: int, b: int) -> str:
            for n in range(a, b):
                m = DATE.search(self.left_mid(n))
                if m:
                    return m.group()
            return ""

        seit = find(L, "arbeitsunfähig seit")
        bis = find(L, "voraussichtlich arbeitsunfähig bis")
        fest = find(L, "festgestellt am")
        f["AU seit"] = date_in(seit, seit + 1) if seit >= 0 else None
        f["AU bis"] = date_in(bis, fest) if bis >= 0 else None
        f["festgestellt am"] = date_in(fest, fest + 1) if fest >= 0 else None
        s = next((n for n, ln in enumerate(L) if re.search(r"[☒☐] Sonstige", ln)), -1)
        if s >= 0:
            other = [re.sub(r".*[☒☐] Sonstige:?", "", L[s])]
            for ln in L[s + 1:]:
                if not ln.strip() or "Im Krankengeldfall" in ln:
                    break
                other.append(ln)
            f["Sonstige (Text)"] = norm(" ".join(other))
        else:
            f["Sonstige (Text)"] = None
        diags: list[str | None] = []
        n = 0
        for _ in range(2):
            n = find(L, "ICD-10 - Code", n)
            if n < 0:
                break
            cols = [m.start() for m in re.finditer(r"ICD-10 - Code", L[n])]
            row = L[n + 1] if n + 1 < len(L) else ""
            if not row.strip() and n + 2 < len(L):
                row = L[n + 2]
            vals = [""] * len(cols)
            for start, token in col_tokens(row):
                c = max((q for q, cc in enumerate(cols) if cc <= start + 2), default=0)
                vals[c] = norm(vals[c] + " " + token)
            diags += vals
            n += 1
        for q in range(6):
            f[f"Diagnose {q + 1}"] = diags[q] if q < len(diags) else None
        h = find(L, "Hinweise zur Diagnose")
        if h >= 0:
            end = next((n for n in range(h + 1, len(L)) if re.search(r"[☒☐]", L[n])), len(L))
            f["Hinweise zur Diagnose"] = norm(" ".join(L[h + 1:end]))
        else:
            f["Hinweise zur Diagnose"] = None
        m = re.search(r"Ausfertigung (?:zur Vorlage bei der Krankenkasse|zur Vorlage beim "
                      r"Arbeitgeber|für Versicherte)", self.flat)
        f["Ausfertigung (Kopfzeile)"] = m.group() if m else None
        f["Stempel"] = self.stamp_lines()
        return f


# --------------------------------------------------------------------------------------------
# Comparison


@dataclass
class Row:
    field: str
    kbv: str
    ours: str
    verdict: str  # "ok", "DIFF" or "deliberate: <name>"


def verdict(kbv: str, ours: str, kind: str = "paper", field: str = "") -> str:
    if kbv == ours:
        return "ok"
    for d in DELIBERATE:
        if d.applies_to == kind and d.excuses(kbv, ours, field):
            return f"deliberate: {d.name}"
    return "DIFF"


def show(v: object) -> str:
    if v is None:
        return "—"
    return v if v else "(leer)"


STAMP_PREFIX = re.compile(r"^(?:Tel[:.]|BSNR|LANR|ASV-Team)\s+")


def compare_copy(kbv: dict, ours: dict, hidden: list[tuple[str, str]]) -> list[Row]:
    """`hidden`: values of the KK copy that this copy must not print anywhere (label, value)."""
    rows: list[Row] = []
    for field, kv in kbv.items():
        if field in ("Stempel", "Hinweistexte", "Dokumentenversion", "Dokumententyp",
                     "PRF.NR.", "Dokumenten-ID"):
            continue
        if kv is None:
            # Not on the KBV copy (the AG copy has no diagnoses, measures, ...): AU-Relay's copy
            # must not show it either.
            ov = ours.get(field)
            shown = field in ours and ov not in (None, "")
            rows.append(Row(field, "— (nicht auf dieser Ausfertigung)",
                            show(ov) if shown else "—", "DIFF" if shown else "ok"))
            continue
        ov = ours.get(field)
        kv, ov = str(kv), ("" if ov is None else str(ov))
        if ours.get(field) is None:
            rows.append(Row(field, show(kv), "— (nicht gefunden)", "DIFF"))
        else:
            rows.append(Row(field, show(kv), show(ov), verdict(kv, ov)))
    stamp = ours["Stempel"] or []
    stamp_vals = [STAMP_PREFIX.sub("", s) for s in stamp]
    for line in kbv["Stempel"] or []:
        value = STAMP_PREFIX.sub("", line)
        hit = next((s for s, v in zip(stamp, stamp_vals) if v == value), None)
        if hit is None:
            hit = next((s for s, v in zip(stamp, stamp_vals)
                        if verdict(value, v) != "DIFF"), None)
            ov = STAMP_PREFIX.sub("", hit) if hit else None
        else:
            ov = value
        rows.append(Row(f"Stempel: {line}", show(value),
                        show(ov) if ov is not None else "— (nicht im Stempel)",
                        verdict(value, ov) if ov is not None else "DIFF"))
    kbv_stamp = {STAMP_PREFIX.sub("", line) for line in kbv["Stempel"] or []}
    for line, value in zip(stamp, stamp_vals):
        if value not in kbv_stamp and not any(verdict(k, value) != "DIFF" for k in kbv_stamp):
            rows.append(Row(f"Stempel (nur AU-Relay): {line}", "— (nicht im KBV-Stempel)",
                            line, "DIFF"))
    for label, value in hidden:
        leaked = bool(value) and value in ours["_flat"]
        rows.append(Row(f"nicht gedruckt: {label}", "— (nicht auf dieser Ausfertigung)",
                        value if leaked else "—", "DIFF" if leaked else "ok"))
    for text in kbv["Hinweistexte"]:
        present = text in ours["_flat"]
        rows.append(Row("Text: " + (text[:48] + "…" if len(text) > 49 else text),
                        "vorhanden", "vorhanden" if present else "— (fehlt)",
                        "ok" if present else "DIFF"))
    for field in ("Dokumentenversion", "Dokumententyp", "PRF.NR.", "Dokumenten-ID"):
        kv = kbv[field]
        if kv is None:
            continue
        present = kv in ours["_flat"]
        rows.append(Row(f"Fußzeile {field}", kv, kv if present else "— (fehlt)",
                        "ok" if present else "DIFF"))
    return rows


def compare_barcode(kbv: str, ours_bytes: bytes) -> list[Row]:
    ours = ours_bytes.decode("iso8859_15")
    kf, of = kbv.split("\t"), ours.split("\t")
    rows = []
    if len(kf) != len(of):
        rows.append(Row("Barcode: Anzahl Felder", str(len(kf)), str(len(of)), "DIFF"))
    for n in range(max(len(kf), len(of))):
        name = BARCODE_FIELDS[n] if n < len(BARCODE_FIELDS) else f"{n + 1:02d} ?"
        k = kf[n] if n < len(kf) else None
        o = of[n] if n < len(of) else None
        if k is None or o is None:
            rows.append(Row(f"Barcode {name}", show(k), show(o), "DIFF"))
        else:
            rows.append(Row(f"Barcode {name}", show(k), show(o), verdict(k, o, "barcode", name)))
    return rows


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n## {title}")
    w1 = max(len(r.field) for r in rows)
    w2 = min(max(len(r.kbv) for r in rows), 60)
    print(f"  {'Feld':<{w1}}  {'KBV-Stylesheet':<{w2}}  {'AU-Relay':<{w2}}  Ergebnis")
    for r in rows:
        print(f"  {r.field:<{w1}}  {r.kbv:<{w2}}  {r.ours:<{w2}}  {r.verdict}")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    ours_dir, kbv_dir = Path(sys.argv[1]), Path(sys.argv[2])
    names = sorted(p.stem for p in ours_dir.glob("*.xml"))
    if not names:
        print(f"no samples in {ours_dir}", file=sys.stderr)
        return 2
    compared = differ = deliberate = 0
    findings: list[tuple[str, str, Row]] = []
    per_sample: list[tuple[str, int, int]] = []
    excused: list[tuple[str, str, Row]] = []
    for name in names:
        for copy in ("kk", "ag", "v"):
            page = KbvPage(kbv_dir / f"{name}-{copy}.html")
            kbv = kbv_fields(page)
            ours_page = OurPage(ours_dir / f"{name}-{copy}.pdf")
            ours = ours_page.fields()
            ours["_flat"] = ours_page.flat
            if copy == "kk":
                kk = kbv
            hidden = []
            if copy != "kk":
                for field in HIDDEN_ON_AG if copy == "ag" else []:
                    value = kk.get(field)
                    # Not when the KBV copy shows the same digits for another field (PKV:
                    # pseudo-BSNR and pseudo-LANR are both 999999900).
                    if value and str(value) not in norm(" ".join(page.root.itertext())):
                        hidden.append((field, str(value)))
            rows = compare_copy(kbv, ours, hidden)
            if copy == "kk":
                rows += compare_barcode(kbv_barcode(kbv_dir / f"{name}-barcode.xml"),
                                        (ours_dir / f"{name}.payload").read_bytes())
            print_table(f"{name} / {copy.upper()}", rows)
            per_sample.append((name, len(rows), sum(r.verdict == "DIFF" for r in rows)))
            for r in rows:
                compared += 1
                if r.verdict == "DIFF":
                    differ += 1
                    findings.append((name, copy.upper(), r))
                elif r.verdict.startswith("deliberate"):
                    deliberate += 1
                    excused.append((name, copy.upper(), r))
    print("\n# Abweichungen")
    for name, copy, r in findings:
        print(f"  {name} / {copy} / {r.field}: KBV {r.kbv!r} ≠ AU-Relay {r.ours!r}")
    if not findings:
        print("  keine")
    print("\n# Bewusste Unterschiede (nicht gezählt)")
    for d in DELIBERATE:
        print(f"  - {d.name} ({d.applies_to}): {d.reason}")
    for name, copy, r in excused:
        print(f"  {name} / {copy} / {r.field}: KBV {r.kbv!r}, AU-Relay {r.ours!r} ({r.verdict})")
    written = [n for n in names if not n.endswith(ORIGINAL)]
    if len(written) != len(names):
        for label, group in (("bundles written by AU-Relay", written),
                             (f"bundles as received (*{ORIGINAL})",
                              [n for n in names if n.endswith(ORIGINAL)])):
            rows = [r for r in per_sample if r[0] in group]
            print(f"  {label}: {len(group)} samples, {sum(r[1] for r in rows)} fields, "
                  f"{sum(r[2] for r in rows)} differ")
    print(f"\n{len(names)} samples × 3 copies: {compared} fields compared, {differ} differ"
          f" ({deliberate} deliberate differences listed above)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
