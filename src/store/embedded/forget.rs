//! Forgetting a person's joins in the embedded store, once their events are erased: the
//! joins of the user's anonymous ids (or of the erased anonymous id) in both directions,
//! the conflicts naming them, the anonymous ids' folded hours, and what the writer
//! remembers of them.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::anonymous_hours::anonymous_prefix;
use super::joins::user_id_key;
use super::remembered::Remembered;
use super::{
    PEOPLE_ANONYMOUS_HOURS, PEOPLE_JOIN_CONFLICTS, PEOPLE_JOINS, PEOPLE_USER_IDS, keys,
    storage_error,
};
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
