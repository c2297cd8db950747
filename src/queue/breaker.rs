//! The circuit breaker's rules, as pure functions of an insurer's health (the types are in
//! [`crate::domain::breaker`]). Storage calls them inside the transaction that records the
//! attempts or the probe, and writes what they return.

use crate::domain::breaker::{AfterAttempts, AfterProbe, BreakerState, Health, Probe, Reached};

/// A batch of finished attempts to one insurer, in the order they finished. A success closes
/// the breaker and clears the count; each failure of the insurer itself counts, and the
/// breaker opens at `open_after` consecutive failures, or at the first failure of a trial
/// (half-open).
pub fn after_attempts<'a>(
    was: Health,
    attempts: &[Reached<'a>],
    open_after: i32,
) -> AfterAttempts<'a> {
    let mut health = was;
    let (mut succeeded, mut opened, mut last_error) = (false, false, None);
    for &attempt in attempts {
        match attempt {
            Reached::Yes => {
                health = Health {
                    consecutive_failures: 0,
                    breaker: BreakerState::Closed,
                };
                (succeeded, opened) = (true, false);
            }
            Reached::Failed(error) => {
                health.consecutive_failures += 1;
                last_error = Some(error);
                if health.consecutive_failures >= open_after
                    || health.breaker == BreakerState::HalfOpen
                {
                    (health.breaker, opened) = (BreakerState::Open, true);
                }
            }
            Reached::NotTheInsurer => {}
        }
    }
    AfterAttempts {
        health,
        succeeded,
        last_error,
        // After a single failure with the breaker closed, the backlog keeps its schedule.
        backlog_due: succeeded && was.breaker != BreakerState::Closed,
        probe_soon: opened || (was.consecutive_failures == 0 && health.consecutive_failures > 0),
    }
}

/// A probe of a failing insurer. An unhealthy answer opens the breaker (nothing is claimed);
/// the first healthy answer after it half-opens the breaker and makes the backlog due at once.
/// A healthy answer while the breaker is closed (the intake failed, not the insurer's health)
/// moves nothing forward: the deliveries keep their backoff and `Retry-After`, and the probe
/// slows down; with `nothing_waiting`, the insurer no longer counts as disturbed.
pub fn after_probe(was: BreakerState, probe: Probe, nothing_waiting: bool) -> AfterProbe {
    let keep = AfterProbe {
        breaker: was,
        reset_failures: false,
        backlog_due: false,
        next_probe_in_intervals: 1,
    };
    match (probe, was) {
        (Probe::Unhealthy, _) => AfterProbe {
            breaker: BreakerState::Open,
            ..keep
        },
        (Probe::Healthy | Probe::Blind, BreakerState::Open) => AfterProbe {
            breaker: BreakerState::HalfOpen,
            backlog_due: probe == Probe::Healthy,
            ..keep
        },
        (Probe::Healthy | Probe::Blind, BreakerState::Closed | BreakerState::HalfOpen) => {
            if nothing_waiting {
                AfterProbe {
                    breaker: BreakerState::Closed,
                    reset_failures: true,
                    ..keep
                }
            } else {
                AfterProbe {
                    next_probe_in_intervals: crate::domain::breaker::BLIND_PROBE_FACTOR,
                    ..keep
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOSED: Health = Health {
        consecutive_failures: 0,
        breaker: BreakerState::Closed,
    };

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_a_success_closes_it() {
        let failed = |n: usize| vec![Reached::Failed("503"); n];
        let after = after_attempts(CLOSED, &failed(2), 3);
        assert_eq!(after.health.consecutive_failures, 2);
        assert_eq!(after.health.breaker, BreakerState::Closed);
        assert!(after.probe_soon, "the first failure asks for a probe");
        assert_eq!(after.last_error, Some("503"));

        let after = after_attempts(after.health, &failed(1), 3);
        assert_eq!(after.health.breaker, BreakerState::Open);
        assert!(after.probe_soon, "opening asks for a probe");
        assert!(!after.backlog_due);

        // A refused document is not the insurer's failure.
        let after = after_attempts(CLOSED, &[Reached::NotTheInsurer; 5], 3);
        assert_eq!(after.health, CLOSED);
        assert!(!after.probe_soon && after.last_error.is_none());

        // Failures, then a success in the same batch: closed, no probe.
        let mut batch = failed(4);
        batch.push(Reached::Yes);
        let after = after_attempts(CLOSED, &batch, 3);
        assert_eq!(after.health, CLOSED);
        assert!(after.succeeded && !after.probe_soon && !after.backlog_due);
    }

    #[test]
    fn a_trial_decides_at_once_and_a_good_one_makes_the_backlog_due() {
        let half_open = Health {
            consecutive_failures: 7,
            breaker: BreakerState::HalfOpen,
        };
        let after = after_attempts(half_open, &[Reached::Failed("timeout")], 25);
        assert_eq!(after.health.breaker, BreakerState::Open);
        assert_eq!(after.health.consecutive_failures, 8);

        let after = after_attempts(half_open, &[Reached::Yes], 25);
        assert_eq!(after.health, CLOSED);
        assert!(after.backlog_due);

        // After one failure with the breaker closed, the backlog keeps its schedule.
        let one = Health {
            consecutive_failures: 1,
            breaker: BreakerState::Closed,
        };
        assert!(!after_attempts(one, &[Reached::Yes], 25).backlog_due);
    }

    #[test]
    fn probes_open_half_open_or_only_slow_down() {
        use BreakerState::{Closed, HalfOpen, Open};
        for was in BreakerState::ALL {
            let p = after_probe(was, Probe::Unhealthy, false);
            assert_eq!((p.breaker, p.backlog_due), (Open, false));
        }
        let p = after_probe(Open, Probe::Healthy, false);
        assert_eq!((p.breaker, p.backlog_due), (HalfOpen, true));
        let p = after_probe(Open, Probe::Blind, false);
        assert_eq!((p.breaker, p.backlog_due), (HalfOpen, false));
        // The intake failed, not the health: nothing forward, the probe slows down.
        let p = after_probe(Closed, Probe::Healthy, false);
        assert_eq!(
            (p.breaker, p.backlog_due, p.reset_failures),
            (Closed, false, false)
        );
        assert!(p.next_probe_in_intervals > 1);
        // Nothing waits any more: no longer disturbed.
        let p = after_probe(Closed, Probe::Healthy, true);
        assert_eq!((p.breaker, p.reset_failures), (Closed, true));
        assert_eq!(p.next_probe_in_intervals, 1);
    }
}
