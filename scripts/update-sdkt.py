#!/usr/bin/env python3
"""Turns the KBV Kostenträgerstammdatei (SDKT, schema kts V1.05) into assets/sdkt/sdkt.csv.

Usage:
    python3 scripts/update-sdkt.py PATH [-o OUT] [--member NAME] [--today YYYY-MM-DD]

PATH is the SDKT XML file (kts_*.xml) or a zip containing it, as downloaded from the KBV
update service (Stammdateien/SDKT). A zip may hold the XML directly or in a nested zip; with
several kts*.xml candidates pass --member. Standard library only.

Output (UTF-8, ';'-separated, header line, no quoting, '\\n' line ends), one row per IK of
each Kostenträger, exact duplicates merged, sorted by IK:

    ik;name;short_name;valid_from;valid_to;search_name;group

  ik          ik_liste/ik@V (9 digits)
  name        bezeichnung/name@V
  short_name  bezeichnung/kurzname@V
  valid_from  validity of the IK for this Kostenträger: kostentraeger/gueltigkeit, narrowed by
  valid_to    ik/gueltigkeit when the IK has its own; ISO dates, empty = open-ended
              (9999-xx-xx is written as empty)
  search_name bezeichnung/suchname@V
  group       kostentraegergruppe@V (keytab S_KTS_KTGRUPPE: 01 AOK, 02 LKK, 03 IKK, 04 BKK,
              05 KBS, 11 vdek, 3x-8x sonstige Kostenträger)

Fields never contain ';', '\\r' or '\\n' (a ';' in a name becomes ','; whitespace runs
collapse to one space). The script prints the file's header data (interface version,
service period, creation date), the row counts, rows whose valid_to lies before --today
(default: today), and IKs that fail the IK check digit (docs/DOMAIN.md section 4.2:
digits 3-8 weighted 2,1,2,1,2,1, cross sums added, check digit = sum mod 10). Rows with
a bad check digit are kept and listed; IKs that are not 9 digits are skipped and listed.
"""

import argparse
import datetime
import io
import pathlib
import re
import sys
import xml.etree.ElementTree as ET
import zipfile

HEADER = ["ik", "name", "short_name", "valid_from", "valid_to", "search_name", "group"]
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent.parent / "assets" / "sdkt" / "sdkt.csv"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def child(elem, name):
    for c in elem:
        if local(c.tag) == name:
            return c
    return None


def attr(elem, name, default=""):
    return default if elem is None else elem.get(name, default)


def ik_check_digit_ok(ik: str) -> bool:
    """IK check digit per Gemeinsames Rundschreiben IK (see docs/DOMAIN.md 4.2)."""
    total = 0
    for digit, weight in zip(ik[2:8], (2, 1, 2, 1, 2, 1)):
        product = int(digit) * weight
        total += product // 10 + product % 10
    return total % 10 == int(ik[8])


def parse_period(value: str):
    """'YYYY-MM-DD..YYYY-MM-DD' (either side may be empty) -> (from, to); '' = open."""
    value = (value or "").strip()
    start, sep, end = value.partition("..")
    if not sep:
        end = ""

    def norm(d):
        d = d.strip()
        if not d:
            return ""
        if not DATE.match(d):
            raise ValueError(f"unexpected date {d!r} in period {value!r}")
        return "" if d.startswith("9999") else d

    return norm(start), norm(end)


def intersect(outer, inner):
    """Narrow the Kostenträger period by the IK's own period; '' means open."""
    start = max(outer[0], inner[0])  # '' sorts first, so max() picks the real date
    ends = [d for d in (outer[1], inner[1]) if d]
    return start, (min(ends) if ends else "")


def clean(text: str) -> str:
    return " ".join((text or "").replace(";", ",").split())


def open_xml(path: pathlib.Path, member):
    """Return (binary stream, name) of the SDKT XML in path (plain file or zip)."""
    if not zipfile.is_zipfile(path):
        return path.open("rb"), path.name
    return from_zip(zipfile.ZipFile(path), member, path.name)


def from_zip(zf: zipfile.ZipFile, member, label):
    names = [n for n in zf.namelist() if not n.endswith("/")]
    if member:
        hits = [n for n in names if n == member or n.rsplit("/", 1)[-1] == member]
        if len(hits) != 1:
            sys.exit(f"{label}: member {member!r} not found (members: {names})")
        return zf.open(hits[0]), f"{label}:{hits[0]}"
    xmls = [n for n in names if n.lower().endswith(".xml")]
    kts = [n for n in xmls if n.rsplit("/", 1)[-1].lower().startswith("kts")] or xmls
    if len(kts) > 1:
        real = [n for n in kts if "test" not in n.rsplit("/", 1)[-1].lower()]
        kts = real if len(real) == 1 else kts
    if len(kts) == 1:
        return zf.open(kts[0]), f"{label}:{kts[0]}"
    if kts:
        sys.exit(f"{label}: several XML candidates, pass --member: {kts}")
    inner = [n for n in names if n.lower().endswith(".zip")]
    if len(inner) == 1:
        nested = zipfile.ZipFile(io.BytesIO(zf.read(inner[0])))
        return from_zip(nested, None, f"{label}:{inner[0]}")
    sys.exit(f"{label}: no SDKT XML found (members: {names})")


def read_sdkt(stream):
    meta = {}
    kts = []  # (vknr, (from, to), name, short, search, group, [(ik, (from, to))])
    path = []
    for event, elem in ET.iterparse(stream, events=("start", "end")):
        name = local(elem.tag)
        if event == "start":
            path.append(name)
            continue
        path.pop()
        if "header" in path and len(path) == 2:  # direct children of ehd:header
            if name in ("service_tmr", "origination_dttm"):
                meta[name] = elem.get("V", "")
            elif name == "document_type_cd":
                meta["document"] = elem.get("DN", "")
            elif name == "id":
                meta["id"] = elem.get("EX", "")
        elif name in ("version", "interface.nm") and path[-1:] == ["interface"]:
            meta[name] = elem.get("V", "")
        elif name == "kostentraeger" and path[-1:] == ["kostentraeger_liste"]:
            period = parse_period(attr(child(elem, "gueltigkeit"), "V"))
            bez = child(elem, "bezeichnung")
            iks = []
            ik_liste = child(elem, "ik_liste")
            for ik in ik_liste if ik_liste is not None else ():
                if local(ik.tag) != "ik":
                    continue
                own = child(ik, "gueltigkeit")
                ik_period = intersect(period, parse_period(own.get("V", ""))) if own is not None else period
                iks.append((ik.get("V", "").strip(), ik_period))
            kts.append((
                elem.get("V", ""),
                period,
                clean(attr(child(bez, "name"), "V")) if bez is not None else "",
                clean(attr(child(bez, "kurzname"), "V")) if bez is not None else "",
                clean(attr(child(bez, "suchname"), "V")) if bez is not None else "",
                clean(attr(child(elem, "kostentraegergruppe"), "V")),
                iks,
            ))
            elem.clear()
    return meta, kts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=pathlib.Path, help="SDKT XML file or zip containing it")
    ap.add_argument("-o", "--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--member", help="XML member to use when the zip holds several")
    ap.add_argument("--today", type=datetime.date.fromisoformat, default=datetime.date.today())
    args = ap.parse_args()

    stream, label = open_xml(args.source, args.member)
    try:
        with stream:
            meta, kts = read_sdkt(stream)
    except (ET.ParseError, ValueError) as e:
        sys.exit(f"{label}: cannot read as SDKT XML: {e}")
    if not kts:
        sys.exit(f"{label}: no kostentraeger_liste/kostentraeger found - not an SDKT file?")

    rows, malformed, no_ik = set(), [], []
    for vknr, _period, name, short, search, group, iks in kts:
        if not iks:
            no_ik.append(vknr)
        for ik, (start, end) in iks:
            if not re.fullmatch(r"\d{9}", ik):
                malformed.append((vknr, ik))
                continue
            rows.add((ik, name, short, start, end, search, group))
    ordered = sorted(rows, key=lambda r: (r[0], r[3], r[4], r[1], r[2], r[5], r[6]))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="\n") as f:
        f.write(";".join(HEADER) + "\n")
        for row in ordered:
            f.write(";".join(row) + "\n")

    today = args.today.isoformat()
    expired = [r for r in ordered if r[4] and r[4] < today]
    live_iks = {r[0] for r in ordered if not r[4] or r[4] >= today}
    iks = {r[0] for r in ordered}
    bad = sorted(ik for ik in iks if not ik_check_digit_ok(ik))
    bad_rows = [r for r in ordered if r[0] in set(bad)]

    print(f"source:            {label}")
    print(f"interface:         {meta.get('interface.nm', '?')} version {meta.get('version', '?')}")
    print(f"document:          {meta.get('document', '?')}")
    print(f"service period:    {meta.get('service_tmr', '?')}")
    print(f"created:           {meta.get('origination_dttm', '?')}")
    print(f"written:           {args.out} ({args.out.stat().st_size} bytes)")
    print(f"rows:              {len(ordered)}")
    print(f"distinct IKs:      {len(iks)}")
    print(f"Kostenträger:      {len(kts)} ({len(no_ik)} without IK)")
    print(f"rows expired:      {len(expired)} (valid_to before {today})")
    print(f"IKs only expired:  {len(iks - live_iks)}")
    print(f"bad check digit:   {len(bad)} IKs in {len(bad_rows)} rows (kept)")
    for r in bad_rows[:20]:
        print(f"  {';'.join(r)}")
    if malformed:
        print(f"skipped, not 9 digits: {len(malformed)}")
        for vknr, ik in malformed[:20]:
            print(f"  Kostenträger {vknr}: {ik!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
