//! Answer classification (DOMAIN.md §1.3, DESIGN.md §4–5) and the retry schedule.

use std::time::Duration;

use crate::kim::inbound::{Action, Inbound, InboundFacts, InboundStep, Kind};

pub use crate::insurers::Answer;

/// What the queue does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The insurer has the document (2xx, or 409 "already have it").
    Delivered,
    /// Handed to the KIM client module; delivered once its receipt (DSN) has been read.
    Submitted,
    /// Try the same bytes again later; `not_before` honours `Retry-After`.
    Retry {
        not_before: Option<Duration>,
        reason: String,
    },
    /// KBV codes 100–104: the document must be regenerated with a new UUID; staff are told.
    Regenerate { code: u16 },
    /// Needs a human (KBV 105, or a 4xx that no retry will fix).
    Dead { reason: String },
}

/// Attempts before a delivery is dead (outside a declared Störung).
pub const MAX_ATTEMPTS: u32 = 25;

const KBV_ERROR_SYSTEM: &str = "KBV_CS_SFHIR_EAU_AU_ERROR_KASSE";

/// The KBV error code (`KBV_CS_SFHIR_EAU_AU_ERROR_KASSE`) of an insurer's OperationOutcome.
pub fn kbv_error_code(body: &str) -> Option<u16> {
    let after_system = &body[body.find(KBV_ERROR_SYSTEM)? + KBV_ERROR_SYSTEM.len()..];
    let code = &after_system[after_system.find("<code")?..];
    let value = &code[code.find("value=\"")? + 7..];
    value[..value.find('"')?].trim().parse().ok()
}

/// Classifies an answer. During a declared Störung every error answer is retryable
/// (BITMARCK answered almost everything with errors for ~54 h).
pub fn classify(answer: &Answer, outage_declared: bool) -> Verdict {
    let verdict = match answer {
        Answer::Transport(e) => Verdict::Retry {
            not_before: None,
            reason: format!("keine Antwort: {e}"),
        },
        Answer::Http { status, .. } if (200..300).contains(status) || *status == 409 => {
            Verdict::Delivered
        }
        Answer::Http {
            status,
            retry_after,
            ..
        } if *status == 429 || *status >= 500 => Verdict::Retry {
            not_before: *retry_after,
            reason: format!("HTTP {status}"),
        },
        Answer::Smtp {
            code: 200..=299, ..
        } => Verdict::Submitted,
        Answer::Smtp {
            code: 400..=499,
            text,
            ..
        } => Verdict::Retry {
            not_before: None,
            reason: format!("KIM-Clientmodul: {text}"),
        },
        Answer::Smtp { text, .. } => Verdict::Dead {
            reason: format!("KIM-Clientmodul lehnt ab: {text}"),
        },
        // Our side (a password file missing, an unreadable setting): retried, so the
        // backlog goes once the setting is fixed; the reason is shown meanwhile.
        Answer::Config(reason) => Verdict::Retry {
            not_before: None,
            reason: reason.clone(),
        },
        Answer::Http { status, body, .. } => match kbv_error_code(body) {
            Some(code) => kbv_verdict(code, false),
            None => Verdict::Dead {
                reason: format!("HTTP {status} ohne KBV-Fehlermeldung"),
            },
        },
    };
    during_outage(verdict, outage_declared)
}

/// The KBV error code table (TA P5-04 AK6): 100–104 regenerate, 105 needs a human, 2xx/3xx
/// resend the same file; during a Störung every error is retried.
pub fn kbv_verdict(code: u16, outage_declared: bool) -> Verdict {
    let verdict = match code {
        100..=104 => Verdict::Regenerate { code },
        105 => Verdict::Dead {
            reason: "KBV 105: die zu stornierende eAU war abgewiesen".into(),
        },
        201..=204 | 301..=314 => Verdict::Retry {
            not_before: None,
            reason: format!("KBV {code}: erneut senden"),
        },
        _ => Verdict::Dead {
            reason: format!("KBV {code}: unbekannter Fehlercode"),
        },
    };
    during_outage(verdict, outage_declared)
}

fn during_outage(verdict: Verdict, outage_declared: bool) -> Verdict {
    match verdict {
        Verdict::Regenerate { code } if outage_declared => Verdict::Retry {
            not_before: None,
            reason: format!("KBV {code} während Störung"),
        },
        Verdict::Dead { reason } if outage_declared => Verdict::Retry {
            not_before: None,
            reason: format!("{reason} (während Störung)"),
        },
        other => other,
    }
}

/// Delay before attempt `attempt + 1` (`attempt` ≥ 1 failed so far): 1, 2, 4 … minutes, capped
/// at 4 hours, so 25 attempts span about three days. `jitter` in [-1, 1] spreads it by ±20 %.
/// A `Retry-After` longer than the schedule wins.
pub fn backoff(attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    const CAP_SECS: u32 = 4 * 3600;
    let exp = attempt.saturating_sub(1).min(20);
    let base = (60u32 << exp).min(CAP_SECS);
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    let scheduled = Duration::from_secs_f64(f64::from(base) * factor);
    retry_after.map_or(scheduled, |r| r.max(scheduled))
}

/// What a mail read from the practice's KIM mailbox does to the delivery it refers to: a
/// receipt marks it delivered; a failed receipt or an error of the KIM service retries it
/// every `retry_every` while its first mail is less than three working days old (TA P5-04
/// AK15; dead after that, unless a Störung is declared); an insurer's error message is
/// classified by the KBV code table; a delayed receipt is only noted.
pub fn after_inbound(inbound: &Inbound, f: &InboundFacts) -> Option<InboundStep> {
    use crate::domain::DeliveryState::{Dead, Delivered, InFlight, NeedsNewId, Pending, Sent};
    let detail = inbound.summary.clone();
    let step = |moves, error: Option<String>, outcome, detail: String| InboundStep {
        moves,
        next_in: chrono::Duration::zero(),
        error,
        receipt: false,
        outcome,
        detail,
    };
    match (inbound.kind, inbound.action) {
        (Kind::Dsn, Some(Action::Delivered)) => Some(InboundStep {
            receipt: true,
            ..step(
                Some((&[Sent, Pending, InFlight, Dead][..], Delivered)),
                None,
                "receipt",
                detail,
            )
        }),
        (Kind::Dsn, Some(Action::Failed)) | (Kind::KimError, _) => {
            let expired = match (f.first_mail_at, f.land) {
                (Some(first), Some(land)) => {
                    f.at.date() > crate::domain::add_working_days(land, first.date(), 3)
                }
                _ => false,
            };
            let from = &[Sent, Pending][..];
            Some(if expired && !f.outage {
                let reason =
                    format!("{detail}; seit drei Arbeitstagen ohne Erfolg: Ausfertigung per Post");
                step(Some((from, Dead)), Some(reason.clone()), "dead", reason)
            } else {
                InboundStep {
                    next_in: f.retry_every,
                    ..step(
                        Some((from, Pending)),
                        Some(detail.clone()),
                        "kim_error",
                        detail,
                    )
                }
            })
        }
        (Kind::Dsn, _) => Some(step(None, None, "kim_delayed", detail)),
        (Kind::InsurerError, _) => {
            let verdict = match inbound.kbv_code {
                Some(code) => kbv_verdict(code, f.outage),
                None => Verdict::Dead {
                    reason: "Fehlermeldung der Kasse ohne Fehlercode".into(),
                },
            };
            let (to, outcome) = match verdict {
                Verdict::Regenerate { .. } => (NeedsNewId, "needs_new_id"),
                Verdict::Retry { .. } => (Pending, "retry"),
                Verdict::Dead { .. } => (Dead, "dead"),
                Verdict::Delivered | Verdict::Submitted => (Delivered, "delivered"),
            };
            let from = &[Sent, Pending, InFlight, Delivered, Dead][..];
            Some(step(
                Some((from, to)),
                Some(detail.clone()),
                outcome,
                detail,
            ))
        }
        (Kind::Other, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(kind: Kind, action: Option<Action>, kbv_code: Option<u16>) -> Inbound {
        Inbound {
            kind,
            message_id: None,
            refers_to: Vec::new(),
            document_ids: Vec::new(),
            envelope_id: None,
            action,
            status: None,
            kbv_code,
            kbv_display: None,
            virus: false,
            summary: "Zusammenfassung".into(),
        }
    }

    fn facts(days_since_first_mail: i64, outage: bool) -> InboundFacts {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        InboundFacts {
            outage,
            first_mail_at: Some(at - chrono::Duration::days(days_since_first_mail)),
            land: crate::domain::Land::parse("NI"),
            at,
            retry_every: chrono::Duration::hours(4),
        }
    }

    #[test]
    fn a_kim_mail_moves_its_delivery_as_the_ta_says() {
        use crate::domain::DeliveryState::{Dead, Delivered, NeedsNewId, Pending};
        let to = |m: &Inbound, f: &InboundFacts| {
            after_inbound(m, f).and_then(|s| s.moves).map(|(_, to)| to)
        };
        let receipt = after_inbound(
            &mail(Kind::Dsn, Some(Action::Delivered), None),
            &facts(0, false),
        )
        .unwrap();
        assert_eq!(receipt.moves.map(|m| m.1), Some(Delivered));
        assert!(receipt.receipt);
        // A failed receipt or a KIM error: every 4 h for three working days, then dead, unless
        // a Störung is declared.
        let failed = mail(Kind::Dsn, Some(Action::Failed), None);
        let step = after_inbound(&failed, &facts(1, false)).unwrap();
        assert_eq!(
            (step.moves.map(|m| m.1), step.next_in),
            (Some(Pending), chrono::Duration::hours(4))
        );
        assert_eq!(
            to(&mail(Kind::KimError, None, None), &facts(7, false)),
            Some(Dead)
        );
        assert_eq!(to(&failed, &facts(7, true)), Some(Pending));
        // A delayed receipt is only noted; an unrelated mail changes nothing.
        let delayed = after_inbound(
            &mail(Kind::Dsn, Some(Action::Delayed), None),
            &facts(0, false),
        )
        .unwrap();
        assert_eq!((delayed.moves, delayed.outcome), (None, "kim_delayed"));
        assert_eq!(
            after_inbound(&mail(Kind::Other, None, None), &facts(0, false)),
            None
        );
        // The insurer's error message by the KBV table.
        let insurer = |code| to(&mail(Kind::InsurerError, None, code), &facts(0, false));
        assert_eq!(insurer(Some(101)), Some(NeedsNewId));
        assert_eq!(insurer(Some(105)), Some(Dead));
        assert_eq!(insurer(None), Some(Dead));
    }

    #[test]
    fn only_a_failure_depends_on_the_facts_storage_reads() {
        let at = facts(0, false).at;
        let bare = InboundFacts::bare(at, chrono::Duration::hours(4));
        let actions = [
            None,
            Some(Action::Delivered),
            Some(Action::Failed),
            Some(Action::Delayed),
        ];
        let kinds = [Kind::Dsn, Kind::InsurerError, Kind::KimError, Kind::Other];
        for kind in kinds {
            for action in actions {
                for code in [None, Some(101), Some(105)] {
                    let m = mail(kind, action, code);
                    let rich = [facts(9, false), facts(9, true), facts(0, true)];
                    let differs = rich
                        .iter()
                        .any(|f| after_inbound(&m, f) != after_inbound(&m, &bare));
                    if !m.is_failure() {
                        assert!(!differs, "{kind:?} {action:?} depends on the facts");
                    }
                }
            }
        }
        // And a failure does: the bare facts would keep a week-old KIM error alive.
        let old_error = mail(Kind::KimError, None, None);
        assert!(old_error.is_failure());
        assert_ne!(
            after_inbound(&old_error, &facts(7, false)),
            after_inbound(&old_error, &bare)
        );
    }

    fn http(status: u16, body: &str) -> Answer {
        Answer::Http {
            status,
            retry_after: None,
            body: body.into(),
        }
    }

    fn outcome(code: u16) -> String {
        format!(
            r#"<OperationOutcome xmlns="http://hl7.org/fhir"><issue><severity value="fatal"/><code value="processing"/>
<details><coding><system value="https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_EAU_AU_ERROR_KASSE"/>
<code value="{code}"/><display value="x"/></coding></details></issue></OperationOutcome>"#
        )
    }

    #[test]
    fn success_and_already_have_it_are_delivered() {
        assert_eq!(classify(&http(201, ""), false), Verdict::Delivered);
        assert_eq!(classify(&http(200, ""), false), Verdict::Delivered);
        assert_eq!(classify(&http(409, ""), false), Verdict::Delivered);
    }

    #[test]
    fn the_kbv_error_code_table_is_classified() {
        for code in 100..=104 {
            assert_eq!(
                classify(&http(422, &outcome(code)), false),
                Verdict::Regenerate { code }
            );
        }
        assert!(matches!(
            classify(&http(422, &outcome(105)), false),
            Verdict::Dead { .. }
        ));
        for code in [
            201, 202, 203, 204, 301, 303, 304, 305, 307, 309, 310, 311, 313, 314,
        ] {
            assert!(
                matches!(
                    classify(&http(422, &outcome(code)), false),
                    Verdict::Retry { .. }
                ),
                "{code}"
            );
        }
        assert_eq!(kbv_error_code(&outcome(307)), Some(307));
        assert_eq!(kbv_error_code("<html>"), None);
    }

    #[test]
    fn overload_server_errors_and_silence_are_transient() {
        let busy = Answer::Http {
            status: 503,
            retry_after: Some(Duration::from_secs(120)),
            body: String::new(),
        };
        assert_eq!(
            classify(&busy, false),
            Verdict::Retry {
                not_before: Some(Duration::from_secs(120)),
                reason: "HTTP 503".into()
            }
        );
        assert!(matches!(
            classify(&http(429, ""), false),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(&http(500, ""), false),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(&Answer::Transport("connection refused".into()), false),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(&http(400, "bad"), false),
            Verdict::Dead { .. }
        ));
    }

    #[test]
    fn during_a_stoerung_every_error_is_retryable() {
        for answer in [
            http(422, &outcome(100)),
            http(422, &outcome(105)),
            http(403, ""),
            http(400, "x"),
        ] {
            assert!(
                matches!(classify(&answer, true), Verdict::Retry { .. }),
                "{answer:?}"
            );
        }
        assert_eq!(classify(&http(201, ""), true), Verdict::Delivered);
    }

    #[test]
    fn a_client_module_answer_is_classified_like_an_http_one() {
        let smtp = |code: u16| Answer::Smtp {
            code,
            text: format!("{code} x"),
        };
        assert_eq!(classify(&smtp(250), false), Verdict::Submitted);
        assert!(matches!(classify(&smtp(451), false), Verdict::Retry { .. }));
        assert!(matches!(classify(&smtp(454), false), Verdict::Retry { .. }));
        assert!(matches!(classify(&smtp(421), false), Verdict::Retry { .. }));
        let refused = classify(&smtp(535), false);
        assert!(
            matches!(&refused, Verdict::Dead { reason } if reason.contains("535")),
            "{refused:?}"
        );
        assert!(matches!(classify(&smtp(553), true), Verdict::Retry { .. }));
        assert!(matches!(
            classify(&Answer::Config("Passwortdatei fehlt".into()), false),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn twenty_five_attempts_span_about_three_days() {
        let total: Duration = (1..MAX_ATTEMPTS).map(|a| backoff(a, 0.0, None)).sum();
        let hours = total.as_secs() / 3600;
        assert!((60..=80).contains(&hours), "{hours} h");
        assert_eq!(backoff(1, 0.0, None), Duration::from_secs(60));
        assert_eq!(backoff(30, 0.0, None), Duration::from_secs(4 * 3600));
        assert_eq!(backoff(1, 1.0, None), Duration::from_secs(72));
        assert_eq!(
            backoff(1, 0.0, Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
    }
}
