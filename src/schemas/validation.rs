//! Compiling event structures and checking `properties` against them. `jsonschema` is
//! built without its resolvers, so a schema can never make us fetch a remote `$ref`.

use serde_json::Value;

use crate::model::SchemaMode;

/// At most this many violations are reported (and stored) per event.
pub const MAX_ERRORS_PER_EVENT: usize = 10;
const MAX_MESSAGE_CHARS: usize = 200;

/// A compiled, ready-to-use event structure.
pub struct CompiledSchema {
    pub mode: SchemaMode,
    pub version: u32,
    validator: jsonschema::Validator,
}

/// One way an event's `properties` break its structure, at a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.pointer, self.message)
    }
}

/// Compiles a JSON Schema (2020-12); the error says why it is not a usable schema.
pub fn compile(schema: &Value, mode: SchemaMode, version: u32) -> Result<CompiledSchema, String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a JSON Schema must be an object or a boolean".to_string());
    }
    let validator = jsonschema::draft202012::new(schema).map_err(|error| error.to_string())?;
    Ok(CompiledSchema {
        mode,
        version,
        validator,
    })
}

impl CompiledSchema {
    /// The violations of `properties`, at most `MAX_ERRORS_PER_EVENT`, empty when valid.
    pub fn violations(&self, properties: &Value) -> Vec<Violation> {
        if self.validator.is_valid(properties) {
            return Vec::new();
        }
        self.validator
            .iter_errors(properties)
            .take(MAX_ERRORS_PER_EVENT)
            .map(|error| {
                let path = error.instance_path().to_string();
                Violation {
                    pointer: if path.is_empty() {
                        "/".to_string()
                    } else {
                        path
                    },
                    message: error.to_string().chars().take(MAX_MESSAGE_CHARS).collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_schema() -> CompiledSchema {
        let schema = json!({
            "type": "object",
            "properties": {"amount": {"type": "number", "minimum": 0}, "currency": {"type": "string"}},
            "required": ["currency"]
        });
        compile(&schema, SchemaMode::Flag, 1).unwrap()
    }

    #[test]
    fn valid_properties_have_no_violations() {
        assert!(
            order_schema()
                .violations(&json!({"amount": 3, "currency": "EUR"}))
                .is_empty()
        );
    }

    #[test]
    fn violations_name_the_json_pointer() {
        let violations = order_schema().violations(&json!({"amount": -3, "currency": "EUR"}));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].to_string(),
            "/amount: -3 is less than the minimum of 0"
        );
        let missing = order_schema().violations(&json!({}));
        assert_eq!(missing[0].pointer, "/");
        assert!(
            missing[0].message.contains("currency"),
            "{}",
            missing[0].message
        );
    }

    #[test]
    fn violations_are_bounded() {
        let schema = json!({"type": "object", "additionalProperties": {"type": "string"}});
        let compiled = compile(&schema, SchemaMode::Flag, 1).unwrap();
        let many: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            compiled.violations(&Value::Object(many)).len(),
            MAX_ERRORS_PER_EVENT
        );
    }

    #[test]
    fn invalid_schemas_are_refused_with_a_reason() {
        assert!(compile(&json!({"type": "banana"}), SchemaMode::Flag, 1).is_err());
        assert!(compile(&json!({"minimum": "zero"}), SchemaMode::Flag, 1).is_err());
        assert!(compile(&json!(42), SchemaMode::Flag, 1).is_err());
    }

    #[test]
    fn remote_references_are_never_fetched() {
        let remote = json!({"$ref": "https://example.com/schema.json"});
        assert!(compile(&remote, SchemaMode::Flag, 1).is_err());
    }
}
