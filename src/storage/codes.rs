//! The domain's coded enums as text columns: a state, a channel, a document kind or a breaker
//! is written as its `code()` and read back through its `parse`, on both backends. A stored
//! code AU-Relay never writes fails the read with its name instead of becoming a guess.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromStaticSqlRow, Queryable};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Nullable, Text, Timestamp};

use crate::domain::breaker::BreakerState;
use crate::domain::{Channel, DeliveryState, DocumentKind};

macro_rules! text_codes {
    ($($coded:ty),+ $(,)?) => {$(
        impl<DB> FromSql<Text, DB> for $coded
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let code = String::from_sql(bytes)?;
                <$coded>::parse(&code).ok_or_else(|| {
                    format!("unknown {} code {code:?}", stringify!($coded)).into()
                })
            }
        }

        impl<DB> ToSql<Text, DB> for $coded
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.code().to_sql(out)
            }
        }
    )+};
}

text_codes!(DeliveryState, DocumentKind, Channel, BreakerState);

/// A delivery's state as readers see it, read from `(state, lease_until)`: a pending delivery
/// under a worker's lease is in flight ([`DeliveryState::leased`]).
#[derive(Debug, Clone, Copy)]
pub struct Seen(pub DeliveryState);

impl<DB> Queryable<(Text, Nullable<Timestamp>), DB> for Seen
where
    DB: Backend,
    (DeliveryState, Option<NaiveDateTime>): FromStaticSqlRow<(Text, Nullable<Timestamp>), DB>,
{
    type Row = (DeliveryState, Option<NaiveDateTime>);

    fn build((state, lease): Self::Row) -> deserialize::Result<Self> {
        Ok(Self(state.leased(lease.is_some())))
    }
}

impl From<Seen> for DeliveryState {
    fn from(seen: Seen) -> Self {
        seen.0
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use super::*;

    #[derive(QueryableByName)]
    struct Read {
        #[diesel(sql_type = Text)]
        state: DeliveryState,
    }

    #[test]
    fn a_state_is_written_as_its_code_and_an_unknown_code_fails_the_read() {
        let mut conn = SqliteConnection::establish(":memory:").expect("sqlite");
        let written: String = diesel::select(DeliveryState::AwaitingSignature.into_sql::<Text>())
            .get_result(&mut conn)
            .expect("write");
        assert_eq!(written, "awaiting_signature");
        for state in DeliveryState::ALL {
            let read: Vec<Read> = diesel::sql_query("SELECT ? AS state")
                .bind::<Text, _>(state.code())
                .load(&mut conn)
                .expect("read");
            assert_eq!(read[0].state, state);
        }
        let unknown = diesel::sql_query("SELECT 'lost' AS state").load::<Read>(&mut conn);
        let error = unknown
            .err()
            .expect("an unknown code is refused")
            .to_string();
        assert!(
            error.contains("unknown DeliveryState code \"lost\""),
            "{error}"
        );
    }
}
