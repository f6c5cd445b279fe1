//! Cost of checking one event's properties against a typical 10-field event structure,
//! and of parsing + validating the whole event body as the ingest path does.
//! Run: `cargo bench --bench validation`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use volcanion::ingest::format::event_fields;
use volcanion::ingest::format::native::parse_event;
use volcanion::model::SchemaMode;
use volcanion::schemas::compile;

fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "orderId": {"type": "string", "minLength": 1, "maxLength": 64},
            "amount": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "enum": ["EUR", "USD", "GBP", "VND"]},
            "items": {"type": "integer", "minimum": 1},
            "coupon": {"type": ["string", "null"]},
            "firstOrder": {"type": "boolean"},
            "category": {"type": "string"},
            "channel": {"type": "string", "enum": ["web", "ios", "android"]},
            "discount": {"type": "number", "minimum": 0, "maximum": 1},
            "shippedAt": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}"}
        },
        "required": ["orderId", "amount", "currency"],
        "additionalProperties": false
    })
}

fn order_properties(amount: f64) -> Value {
    json!({
        "orderId": "ord-123456", "amount": amount, "currency": "EUR", "items": 3, "coupon": null,
        "firstOrder": false, "category": "shoes", "channel": "web", "discount": 0.1, "shippedAt": "2026-11-21"
    })
}

fn validation(criterion: &mut Criterion) {
    let compiled = compile(&order_schema(), SchemaMode::Flag, 1).expect("valid schema");
    let valid = order_properties(49.9);
    let invalid = order_properties(-3.0);
    criterion.bench_function("schema_check_valid_10_fields", |bench| {
        bench.iter(|| black_box(compiled.violations(black_box(&valid))))
    });
    criterion.bench_function("schema_check_invalid_10_fields", |bench| {
        bench.iter(|| black_box(compiled.violations(black_box(&invalid))))
    });
    let body = serde_json::to_vec(&json!({
        "eventType": "Order Completed", "userId": "user_123", "subsystem": "web-shop",
        "timestamp": "2026-11-21T10:30:00Z", "properties": valid, "context": {"ip": "203.0.113.1", "locale": "de-DE"}
    }))
    .unwrap();
    criterion.bench_function("parse_and_check_event", |bench| {
        bench.iter(|| {
            let fields = event_fields(black_box(&body)).unwrap();
            let draft = parse_event(&fields).unwrap();
            black_box(compiled.violations(&draft.properties.to_value()))
        })
    });
}

criterion_group!(benches, validation);
criterion_main!(benches);
