//! Forgetting a person's joins in the embedded store, once their events are erased: the
//! joins of the user's anonymous ids (or of the erased anonymous id) in both directions,
//! the conflicts naming them, the anonymous ids' folded hours, and what the writer
//! remembers of them. A purged partner's every remaining row goes the same way.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::anonymous_hours::anonymous_prefix;
use super::joins::user_id_key;
use super::remembered::Remembered;
use super::{
    BREAKDOWN_CELLS, BREAKDOWN_DAYS_PENDING, BREAKDOWN_FOLDS, BREAKDOWN_MARKS, EVENT_IDS,
    EVENT_TYPES, EVENTS_BY_PARTNER, EVENTS_BY_SUBSYSTEM, PEOPLE_ANONYMOUS_HOURS,
    PEOPLE_JOIN_CONFLICTS, PEOPLE_JOINS, PEOPLE_PENDING, PEOPLE_USER_IDS, ROLLUP_CELLS,
    ROLLUP_DAY_CELLS, ROLLUP_DAY_SKETCHES, ROLLUP_SKETCHES, SUBSYSTEM_CODES, Table, keys,
    storage_error,
};

/// The tables whose keys begin with their owner (a partner or a subsystem): what a purge
/// empties of the partner's rows.
const OWNED: [Table; 17] = [
    EVENTS_BY_PARTNER,
    EVENTS_BY_SUBSYSTEM,
    EVENT_IDS,
    EVENT_TYPES,
    ROLLUP_CELLS,
    ROLLUP_SKETCHES,
    ROLLUP_DAY_CELLS,
    ROLLUP_DAY_SKETCHES,
    BREAKDOWN_CELLS,
    BREAKDOWN_FOLDS,
    BREAKDOWN_MARKS,
    BREAKDOWN_DAYS_PENDING,
    PEOPLE_JOINS,
    PEOPLE_JOIN_CONFLICTS,
    PEOPLE_USER_IDS,
    PEOPLE_ANONYMOUS_HOURS,
    PEOPLE_PENDING,
];
use crate::model::{Erasure, ErasureSubject};
use crate::store::StoreError;

/// Keys from `prefix` to the next prefix (`prefix` ends in a 0 byte).
fn after_zero(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    *end.last_mut().expect("the 0 byte") = 1;
    end
}

pub(super) fn forget_person(
    transaction: &WriteTransaction,
    remembered: &Remembered,
    erasure: &Erasure,
) -> Result<(), StoreError> {
    let partner = erasure.partner_id;
    if let ErasureSubject::PartnerId(_) = erasure.subject {
        return forget_partner(transaction, remembered, partner);
    }
    let mut joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut by_user = transaction
        .open_table(PEOPLE_USER_IDS)
        .map_err(storage_error)?;
    // (anonymous id, the user it is joined to) pairs to forget.
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    match &erasure.subject {
        ErasureSubject::UserId(user) => {
            let start = user_id_key(partner, user.as_bytes(), b"");
            for row in by_user
                .range::<&[u8]>(start.as_slice()..after_zero(&start).as_slice())
                .map_err(storage_error)?
            {
                let key = row.map_err(storage_error)?.0.value().to_vec();
                pairs.push((key[start.len()..].to_vec(), user.as_bytes().to_vec()));
            }
            for anonymous in &erasure.anonymous_ids {
                pairs.push((anonymous.as_bytes().to_vec(), user.as_bytes().to_vec()));
            }
        }
        ErasureSubject::AnonymousId(anonymous) => {
            let key = keys::prefixed(partner, anonymous.as_bytes());
            if let Some(user) = joins.get(key.as_slice()).map_err(storage_error)? {
                pairs.push((anonymous.as_bytes().to_vec(), user.value().to_vec()));
            }
        }
        ErasureSubject::PartnerId(_) => unreachable!("forgotten above"),
    }
    let mut conflicts = transaction
        .open_table(PEOPLE_JOIN_CONFLICTS)
        .map_err(storage_error)?;
    let mut hours = transaction
        .open_table(PEOPLE_ANONYMOUS_HOURS)
        .map_err(storage_error)?;
    let mut anonymous_ids: Vec<Vec<u8>> = pairs.iter().map(|(id, _)| id.clone()).collect();
    if let ErasureSubject::AnonymousId(anonymous) = &erasure.subject {
        anonymous_ids.push(anonymous.as_bytes().to_vec());
    }
    for (anonymous, user) in &pairs {
        let join = keys::prefixed(partner, anonymous);
        let joined = joins.get(join.as_slice()).map_err(storage_error)?;
        if joined.is_some_and(|joined| joined.value() == user.as_slice()) {
            joins.remove(join.as_slice()).map_err(storage_error)?;
        }
        let indexed = user_id_key(partner, user, anonymous);
        by_user.remove(indexed.as_slice()).map_err(storage_error)?;
    }
    for anonymous in &anonymous_ids {
        let mut start = keys::prefixed(partner, anonymous);
        start.push(0);
        conflicts
            .retain_in::<&[u8], _>(start.as_slice()..after_zero(&start).as_slice(), |_, _| {
                false
            })
            .map_err(storage_error)?;
        let prefix = anonymous_prefix(partner, anonymous);
        hours
            .retain_in::<&[u8], _>(prefix.as_slice()..after_zero(&prefix).as_slice(), |_, _| {
                false
            })
            .map_err(storage_error)?;
        remembered.forget(&keys::prefixed(partner, anonymous));
    }
    if let ErasureSubject::UserId(user) = &erasure.subject {
        forget_conflicts_of_user(&mut conflicts, partner, user.as_bytes())?;
    }
    Ok(())
}

/// Conflicts are keyed `partner | anonymous id | 0 | user`: a user's are found by a walk
/// over the partner's (few: they record pairings that were refused).
fn forget_conflicts_of_user(
    conflicts: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    partner: Uuid,
    user: &[u8],
) -> Result<(), StoreError> {
    let range = keys::owner_range(partner);
    conflicts
        .retain_in::<&[u8], _>(keys::borrowed(&range), |key, _| {
            let rest = &key[keys::OWNER_LEN..];
            let named = rest
                .iter()
                .position(|byte| *byte == 0)
                .map(|zero| &rest[zero + 1..]);
            named != Some(user)
        })
        .map_err(storage_error)?;
    Ok(())
}

/// The users `anonymous` was seen with: the one it is joined to, then its conflicts'.
pub(super) fn users_of_anonymous(
    database: &redb::Database,
    partner: Uuid,
    anonymous: &str,
) -> Result<Vec<String>, StoreError> {
    use redb::ReadableDatabase;
    let transaction = database.begin_read().map_err(storage_error)?;
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|error| StoreError::Corrupt(error.to_string()))
    };
    let mut users = Vec::new();
    let key = keys::prefixed(partner, anonymous.as_bytes());
    if let Some(user) = joins.get(key.as_slice()).map_err(storage_error)? {
        users.push(text(user.value())?);
    }
    let conflicts = transaction
        .open_table(PEOPLE_JOIN_CONFLICTS)
        .map_err(storage_error)?;
    let mut start = key;
    start.push(0);
    for row in conflicts
        .range::<&[u8]>(start.as_slice()..after_zero(&start).as_slice())
        .map_err(storage_error)?
    {
        users.push(text(&row.map_err(storage_error)?.0.value()[start.len()..])?);
    }
    Ok(users)
}

/// A purge's last step, once its events are swept: every row the partner (and its
/// subsystems) still owns outside the metadata, whatever table holds it.
fn forget_partner(
    transaction: &WriteTransaction,
    remembered: &Remembered,
    partner: Uuid,
) -> Result<(), StoreError> {
    let mut owners = vec![partner];
    let codes = transaction
        .open_table(SUBSYSTEM_CODES)
        .map_err(storage_error)?;
    for row in codes
        .range::<&[u8]>(keys::borrowed(&keys::owner_range(partner)))
        .map_err(storage_error)?
    {
        let id = row.map_err(storage_error)?.1.value().to_vec();
        owners.push(Uuid::from_slice(&id).map_err(|error| StoreError::Corrupt(error.to_string()))?);
    }
    for table in OWNED {
        let mut table = transaction.open_table(table).map_err(storage_error)?;
        for owner in &owners {
            let range = keys::owner_range(*owner);
            table
                .retain_in::<&[u8], _>(keys::borrowed(&range), |_, _| false)
                .map_err(storage_error)?;
        }
    }
    remembered.forget_all();
    Ok(())
}
