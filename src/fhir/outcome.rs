//! Issues → FHIR `OperationOutcome` (XML).

use super::xml::Writer;
use super::Issue;

/// A FHIR R4 OperationOutcome listing every issue with severity, code, message and location
/// (`issue.expression`, FHIRPath; `issue.location` for older readers).
pub fn operation_outcome(issues: &[Issue]) -> Vec<u8> {
    let mut w = Writer::new();
    w.open_with("OperationOutcome", &[("xmlns", "http://hl7.org/fhir")]);
    if issues.is_empty() {
        w.open("issue")
            .leaf("severity", "information")
            .leaf("code", "informational")
            .open("details")
            .leaf("text", "Keine Befunde")
            .close("details")
            .close("issue");
    }
    for i in issues {
        w.open("issue")
            .leaf("severity", i.severity.code())
            .leaf("code", i.code.code())
            .open("details")
            .leaf("text", &i.message)
            .close("details")
            .leaf("diagnostics", &i.message)
            .leaf("location", &i.location)
            .leaf("expression", &i.location)
            .close("issue");
    }
    w.close("OperationOutcome");
    w.finish()
}
