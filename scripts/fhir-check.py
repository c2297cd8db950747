#!/usr/bin/env python3
"""Parses every bundle AU-Relay wrote with the FHIR R4B models of `fhir.resources`.

Usage:
    pip install fhir.resources lxml       # 8.x; R4B models (the eAU profiles are FHIR R4)
    FHIR_SAMPLES=/tmp/fhir-samples cargo test --test it -- --ignored fhir::write_samples
    python3 scripts/fhir-check.py /tmp/fhir-samples

Every *.xml in the directory is parsed as its root resource type (Bundle, OperationOutcome);
exit status 1 if any file fails. This checks FHIR base conformance (element names, order,
cardinalities, primitive formats), not the KBV profiles.
"""

import importlib
import pathlib
import sys
import xml.etree.ElementTree as ET

NS = "{http://hl7.org/fhir}"


def model_for(root_tag: str):
    name = root_tag.replace(NS, "")
    module = importlib.import_module(f"fhir.resources.R4B.{name.lower()}")
    return getattr(module, name)


def main() -> int:
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fhir-samples")
    files = sorted(directory.glob("*.xml"))
    if not files:
        print(f"no *.xml in {directory}", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        data = path.read_bytes()
        try:
            if data.startswith(b"\xef\xbb\xbf"):
                raise ValueError("UTF-8 BOM")
            data.decode("utf-8")
            root = ET.fromstring(data)
            model = model_for(root.tag)
            resource = model.model_validate_xml(data)
            extra = ""
            if root.tag == NS + "Bundle":
                extra = f" ({len(resource.entry or [])} entries)"
            print(f"ok   {path.name}: {type(resource).__name__}{extra}")
        except Exception as e:  # noqa: BLE001 - report every failure, then continue
            failed += 1
            print(f"FAIL {path.name}: {e}")
    print(f"{len(files) - failed}/{len(files)} parsed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
