//! The states of a delivery (an eAU, a Storno or a patient mail on its way), with their text
//! codes in `deliveries.state` and the German labels staff read.

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Due (or due later, `next_attempt_at`).
    Pending,
    /// Waits for the practice's signature (a practice with a Konnektor); never claimed.
    AwaitingSignature,
    /// Claimed by a worker under a lease.
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

/// The label of a stored state code; a code AU-Relay never writes is shown as such.
pub fn delivery_label(code: &str) -> &'static str {
    DeliveryState::parse(code).map_or("unbekannter Zustand", DeliveryState::label)
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
            delivery_label("delivered"),
            "bei der Krankenkasse angekommen"
        );
    }
}
