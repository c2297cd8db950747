//! The circuit breaker of an insurer destination, as data: its states with their text codes
//! and German labels, an insurer's health, and what a batch of attempts or a probe changes.
//! The rules that compute the change are pure functions in `queue::breaker`; storage reads the
//! health, hands it to them inside its transaction and writes what they return.

/// Without a health URL the probe is a real retry: it comes this many probe intervals apart,
/// and only for an open breaker.
pub const BLIND_PROBE_FACTOR: i32 = 6;

/// The breaker of one destination (`destinations.breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum BreakerState {
    /// Pushes flow.
    Closed,
    /// The insurer is down: nothing is claimed for it; only probes ask.
    Open,
    /// A probe saw it back: the next attempts are the trial.
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [Self; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    /// The text stored in `destinations.breaker`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// As staff read it on "Versand".
    pub const fn label(self) -> &'static str {
        match self {
            Self::Closed => "erreichbar",
            Self::Open => "gestört – nicht erreichbar",
            Self::HalfOpen => "wird geprüft",
        }
    }
}

/// What the breaker knows of an insurer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub consecutive_failures: i32,
    pub breaker: BreakerState,
}

/// A finished attempt, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached<'a> {
    /// The insurer (or the KIM client module) took the document.
    Yes,
    /// The insurer itself failed; the text is kept as its last error.
    Failed(&'a str),
    /// Neither: the document was refused for what it is, or the route is misconfigured.
    NotTheInsurer,
}

/// What a batch of attempts to one insurer changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterAttempts<'a> {
    pub health: Health,
    /// At least one attempt went through (the last success time moves on).
    pub succeeded: bool,
    /// The last failure's text, if any failed.
    pub last_error: Option<&'a str>,
    /// The trial after an outage went through: what waits for a later retry is due now.
    pub backlog_due: bool,
    /// The first failure, or the breaker opening: the insurer's health is asked soon.
    pub probe_soon: bool,
}

/// The breaker's rule for a batch of attempts (`queue::breaker::after_attempts`): the health
/// before, the attempts in the order they finished, the failures that open the breaker.
pub type AttemptsRule = for<'a> fn(Health, &[Reached<'a>], i32) -> AfterAttempts<'a>;

/// The breaker's rule for a probe (`queue::breaker::after_probe`): the breaker before, the
/// probe, whether nothing waits for the insurer.
pub type ProbeRule = fn(BreakerState, Probe, bool) -> AfterProbe;

/// What a probe of a failing insurer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The health URL answered 2xx.
    Healthy,
    /// The health URL failed or did not answer.
    Unhealthy,
    /// No health URL: an open breaker is half-opened, and the deliveries' own retries decide.
    Blind,
}

/// What a probe changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterProbe {
    pub breaker: BreakerState,
    /// Nothing waits any more: the insurer no longer counts as disturbed.
    pub reset_failures: bool,
    /// Every waiting delivery of the insurer is due now.
    pub backlog_due: bool,
    /// The next probe after this many probe intervals.
    pub next_probe_in_intervals: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_from_its_code_and_nothing_else_does() {
        for s in BreakerState::ALL {
            assert_eq!(BreakerState::parse(s.code()), Some(s));
            assert!(!s.label().is_empty());
        }
        assert_eq!(BreakerState::parse("halfopen"), None);
        assert_eq!(BreakerState::parse(""), None);
    }
}
