//! The properties a partner declares as report dimensions (`PUT
//! /api/v1/partners/{id}/dimensions`): each is rolled up per value from then on, so their
//! number is bounded (`MAX_DIMENSIONS`) like every other per-partner cost.

use serde::Deserialize;

use crate::error::{FieldError, FieldErrors};

pub const MAX_DIMENSIONS: usize = 20;
const MAX_NAME_CHARS: usize = 64;

/// `PUT /api/v1/partners/{id}/dimensions` body: the whole list, replacing the last one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DimensionsDraft {
    /// Names of top-level `properties` fields, at most 20.
    pub properties: Vec<String>,
}

impl DimensionsDraft {
    /// The names as kept: trimmed, each once, in the order given.
    pub fn into_names(self) -> Result<Vec<String>, FieldErrors> {
        if self.properties.len() > MAX_DIMENSIONS {
            return Err(FieldErrors::one(
                "properties",
                format!(
                    "must hold at most {MAX_DIMENSIONS} names, got {}",
                    self.properties.len()
                ),
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(self.properties.len());
        let mut errors = Vec::new();
        for (index, raw) in self.properties.iter().enumerate() {
            let name = raw.trim();
            let problem = if name.is_empty() {
                Some("must not be blank".to_string())
            } else if name.chars().count() > MAX_NAME_CHARS {
                Some(format!("must be at most {MAX_NAME_CHARS} characters"))
            } else if name.chars().any(char::is_control) {
                Some("must not contain control characters".to_string())
            } else {
                None
            };
            match problem {
                Some(message) => {
                    errors.push(FieldError::new(format!("properties[{index}]"), message))
                }
                None if !names.iter().any(|kept| kept == name) => names.push(name.to_string()),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(names)
        } else {
            Err(FieldErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &[&str]) -> Result<Vec<String>, FieldErrors> {
        let properties = raw.iter().map(|name| name.to_string()).collect();
        DimensionsDraft { properties }.into_names()
    }

    #[test]
    fn names_are_trimmed_and_kept_once_in_order() {
        assert_eq!(
            names(&["plan", " country ", "plan"]).unwrap(),
            ["plan", "country"]
        );
        assert!(names(&[]).unwrap().is_empty(), "an empty list clears them");
    }

    #[test]
    fn every_bad_name_is_named_by_its_index() {
        let long = "x".repeat(65);
        let errors = names(&["ok", " ", &long, "a\u{7}b"]).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["properties[1]", "properties[2]", "properties[3]"]);
    }

    #[test]
    fn at_most_twenty() {
        let many: Vec<String> = (0..=MAX_DIMENSIONS).map(|n| format!("p{n}")).collect();
        let refused = DimensionsDraft { properties: many }
            .into_names()
            .unwrap_err();
        assert_eq!(refused.0[0].field, "properties");
    }
}
