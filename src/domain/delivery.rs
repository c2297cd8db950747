//! A delivery (an eAU, a Storno or a patient mail on its way): its state, what it carries and
//! where it goes, each with its text code in `deliveries` and the German label staff read.
//! Storage reads and writes them as text columns through their codes (`storage::codes`).

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DeliveryState {
    /// Due (or due later, `next_attempt_at`).
    Pending,
    /// Waits for the practice's signature (a practice with a Konnektor); never claimed.
    AwaitingSignature,
    /// Claimed by a worker under a lease. Not written any more: a claim leaves the stored state
    /// `pending` and sets the lease (see [`DeliveryState::leased`]); a row an older version
    /// claimed still reads as `in_flight` until a claim takes it over.
    InFlight,
    /// Handed to the KIM client module; delivered once its receipt (DSN) has been read.
    /// Never claimed.
    Sent,
    Delivered,
    /// Refused with a KBV code 100–104: the document needs a new UUID.
    NeedsNewId,
    /// Given up: needs a human.
    Dead,
    /// Cancelled before it was sent.
    Withdrawn,
}

impl DeliveryState {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::AwaitingSignature,
        Self::InFlight,
        Self::Sent,
        Self::Delivered,
        Self::NeedsNewId,
        Self::Dead,
        Self::Withdrawn,
    ];

    /// The state a new unsigned document starts in: it waits for the practice's signature
    /// where the practice signs (has a Konnektor), else it is due at once.
    pub const fn initial(practice_signs: bool) -> Self {
        if practice_signs {
            Self::AwaitingSignature
        } else {
            Self::Pending
        }
    }

    /// The state readers see of a stored state, `leased` when a worker's lease is set: a
    /// pending delivery under a lease is in flight. A claim changes only the lease and the
    /// attempt count, no indexed column, so PostgreSQL can update the row in place (a HOT
    /// update, without new index entries); the lease ends when the attempt is recorded.
    pub const fn leased(self, leased: bool) -> Self {
        match self {
            Self::Pending if leased => Self::InFlight,
            other => other,
        }
    }

    /// Whether cancelling the certificate may simply withdraw this eAU delivery: only while
    /// it cannot have reached the insurer (not being sent, not handed to KIM, not delivered);
    /// otherwise the insurer gets a Storno.
    pub const fn withdrawable(self) -> bool {
        !matches!(self, Self::InFlight | Self::Sent | Self::Delivered)
    }

    /// What "E-Mail erneut senden" does to the newest patient mail in this state.
    pub const fn mail_resend(self) -> MailResend {
        match self {
            Self::InFlight => MailResend::Refused,
            // Sent: the patient gets it again, as a new mail with a new Message-ID.
            Self::Delivered | Self::Sent => MailResend::NewMail,
            Self::Pending
            | Self::AwaitingSignature
            | Self::NeedsNewId
            | Self::Dead
            | Self::Withdrawn => MailResend::DueNow,
        }
    }

    /// The text stored in `deliveries.state`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingSignature => "awaiting_signature",
            Self::InFlight => "in_flight",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::NeedsNewId => "needs_new_id",
            Self::Dead => "dead",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// An eAU's or Storno's state as staff read it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Pending => "wartet auf Versand",
            Self::AwaitingSignature => "wartet auf Signatur",
            Self::InFlight => "wird gesendet",
            Self::Sent => "per KIM versandt, Zustellbestätigung ausstehend",
            Self::Delivered => "bei der Krankenkasse angekommen",
            Self::NeedsNewId => "abgewiesen: neu erstellen",
            Self::Dead => "fehlgeschlagen: bitte prüfen",
            Self::Withdrawn => "zurückgezogen",
        }
    }

    /// A patient mail's state as staff read it (a mail is never signed, sent over KIM or
    /// refused for its id; those states do not occur for it).
    pub const fn mail_label(self) -> &'static str {
        match self {
            Self::Pending | Self::AwaitingSignature => "wartet auf Versand",
            Self::InFlight => "wird gesendet",
            Self::Delivered | Self::Sent => "versandt",
            Self::NeedsNewId | Self::Dead => "fehlgeschlagen: bitte prüfen",
            Self::Withdrawn => "zurückgezogen (storniert)",
        }
    }
}

/// What a resend does to a patient mail (see [`DeliveryState::mail_resend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailResend {
    /// It is being sent right now: nothing changes.
    Refused,
    /// It was sent: a new mail to the same address is queued.
    NewMail,
    /// It waits or failed: it is due now, with the same Message-ID.
    DueNow,
}

/// The label of a stored state code; a code AU-Relay never writes is shown as such.
pub fn delivery_label(code: &str) -> &'static str {
    DeliveryState::parse(code).map_or("unbekannter Zustand", DeliveryState::label)
}

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DocumentKind {
    Eau,
    Storno,
    /// The patient's copy by e-mail (channel [`Channel::Mail`]).
    Mail,
}

impl DocumentKind {
    pub const ALL: [Self; 3] = [Self::Eau, Self::Storno, Self::Mail];

    /// The text stored in `deliveries.document_kind`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Eau => "eau",
            Self::Storno => "storno",
            Self::Mail => "mail",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// As staff read it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Eau => "eAU",
            Self::Storno => "Storno",
            Self::Mail => "Patientenkopie per E-Mail",
        }
    }

    /// The channel a document of this kind travels on.
    pub const fn channel(self) -> Channel {
        match self {
            Self::Mail => Channel::Mail,
            Self::Eau | Self::Storno => Channel::Insurer,
        }
    }
}

/// Where a delivery goes. Both channels share the outbox: claims, leases, backoff and the
/// attempt history are one mechanism. How an insurer is reached (HTTP push, KIM, or its own
/// pull) is the destination's, not the delivery's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Channel {
    /// To an insurer (push, KIM or pull), by its IK.
    Insurer,
    /// To the patient by e-mail; `insurer_ik` is empty.
    Mail,
}

impl Channel {
    pub const ALL: [Self; 2] = [Self::Insurer, Self::Mail];

    /// The text stored in `deliveries.channel`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Insurer => "insurer",
            Self::Mail => "mail",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// As staff read it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Insurer => "an die Krankenkasse",
            Self::Mail => "an den Patienten",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_from_its_code_and_has_labels() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.code()), Some(s));
            assert!(!s.label().is_empty() && !s.mail_label().is_empty());
        }
        assert_eq!(DeliveryState::parse("Pending"), None);
        assert_eq!(
            DeliveryState::initial(true),
            DeliveryState::AwaitingSignature
        );
        assert_eq!(DeliveryState::initial(false), DeliveryState::Pending);
        let withdrawable: Vec<_> = DeliveryState::ALL
            .into_iter()
            .filter(|s| !s.withdrawable())
            .collect();
        assert_eq!(
            withdrawable,
            [
                DeliveryState::InFlight,
                DeliveryState::Sent,
                DeliveryState::Delivered
            ]
        );
        assert_eq!(DeliveryState::InFlight.mail_resend(), MailResend::Refused);
        for state in DeliveryState::ALL {
            assert_eq!(state.leased(false), state);
        }
        assert_eq!(DeliveryState::Pending.leased(true), DeliveryState::InFlight);
        assert_eq!(DeliveryState::Dead.leased(true), DeliveryState::Dead);
        assert_eq!(DeliveryState::Delivered.mail_resend(), MailResend::NewMail);
        assert_eq!(DeliveryState::Dead.mail_resend(), MailResend::DueNow);
        for k in DocumentKind::ALL {
            assert_eq!(DocumentKind::parse(k.code()), Some(k));
            assert!(!k.label().is_empty());
        }
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.code()), Some(c));
            assert!(!c.label().is_empty());
        }
        assert_eq!(DocumentKind::Mail.channel(), Channel::Mail);
        assert_eq!(DocumentKind::Storno.channel(), Channel::Insurer);
        assert_eq!(
            delivery_label("delivered"),
            "bei der Krankenkasse angekommen"
        );
    }
}
