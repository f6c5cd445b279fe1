//! What a reader may see: the partner (and subsystem) a read request targets, checked
//! against the caller. Admin: any existing partner, named by `partnerId`. A read key: its
//! own partner only (another partner's id is refused), and only its pinned subsystem.

use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Failure, FieldErrors, Refusal};
use crate::tenants::Directory;

/// A partner (and optional subsystem) the caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTarget {
    pub partner_id: Uuid,
    pub subsystem_id: Option<Uuid>,
}

fn parse_id(name: &str, raw: &str) -> Result<Uuid, FieldErrors> {
    Uuid::parse_str(raw).map_err(|_| FieldErrors::one(name, format!("'{raw}' is not a UUID")))
}

/// The target of a read request naming `partner_id` and `subsystem_id` (raw query values).
pub async fn read_target(
    directory: &Directory,
    caller: &Caller,
    partner_id: Option<&str>,
    subsystem_id: Option<&str>,
) -> Result<ReadTarget, Failure> {
    let requested_partner = partner_id
        .map(|raw| parse_id("partnerId", raw))
        .transpose()?;
    let mut requested_subsystem = subsystem_id
        .map(|raw| parse_id("subsystemId", raw))
        .transpose()?;
    let partner_id = match caller {
        Caller::Admin => {
            requested_partner.ok_or_else(|| FieldErrors::one("partnerId", "is required"))?
        }
        Caller::Key(holder) => {
            let key = &holder.key;
            if requested_partner.is_some_and(|requested| requested != key.partner_id) {
                return Err(Refusal::Forbidden(
                    "this API key may only read its own partner's data".into(),
                )
                .into());
            }
            if let Some(pinned) = key.subsystem_id {
                if requested_subsystem.is_some_and(|requested| requested != pinned) {
                    return Err(Refusal::Forbidden(
                        "this API key may only read its own subsystem's data".into(),
                    )
                    .into());
                }
                requested_subsystem = Some(pinned);
            }
            key.partner_id
        }
    };
    if directory.partner(partner_id).await?.is_none() {
        return Err(Refusal::NotFound(format!("no partner with id {partner_id}")).into());
    }
    if let Some(subsystem_id) = requested_subsystem {
        let subsystem = directory.subsystem(subsystem_id).await?;
        if subsystem.is_none_or(|subsystem| subsystem.partner_id != partner_id) {
            return Err(Refusal::NotFound(format!(
                "no subsystem {subsystem_id} for partner {partner_id}"
            ))
            .into());
        }
    }
    Ok(ReadTarget {
        partner_id,
        subsystem_id: requested_subsystem,
    })
}
