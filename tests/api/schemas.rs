use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::SchemaScope::{Global, Partner};
use crate::helpers::{Backend, assert_problem, event, spawn_app};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

fn amount_schema(mode: &str) -> Value {
    json!({
        "mode": mode,
        "schema": {
            "type": "object",
            "properties": {"amount": {"type": "number", "minimum": 0}, "currency": {"type": "string"}},
            "required": ["amount"]
        }
    })
}

fn purchase(tenant: &crate::helpers::Tenant, amount: i64, at: &str) -> Value {
    let mut body = event(tenant, "purchase", "u1", at);
    body["properties"] = json!({"amount": amount, "currency": "EUR"});
    body
}

async fn flagged_events_are_stored_with_their_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let created = app
        .put_schema(Global, "purchase", &amount_schema("flag"))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["version"], 1);
    assert_eq!(created["mode"], "flag");
    assert!(created["partnerId"].is_null());
    assert!(created["updatedAt"].is_string());

    let accepted: Value = app
        .send_event(&tenant.key, &purchase(&tenant, -3, "2026-11-20T10:00:00Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(accepted["isValid"], false);
    assert_eq!(
        accepted["validationErrors"],
        json!(["/amount: -3 is less than the minimum of 0"])
    );
    let valid: Value = app
        .send_event(&tenant.key, &purchase(&tenant, 5, "2026-11-20T11:00:00Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(valid["isValid"], true);

    app.await_events(&tenant.key, DAY, 2).await;
    let invalid_only = app
        .all_events(&tenant.key, &format!("{DAY}&isValid=false"))
        .await;
    assert_eq!(invalid_only.len(), 1);
    assert_eq!(
        invalid_only[0]["validationErrors"],
        accepted["validationErrors"]
    );
    let summary = app.summary(&tenant.key, DAY).await;
    assert_eq!(
        (
            summary["validEvents"].as_u64(),
            summary["invalidEvents"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let metrics = app.metrics().await;
    let failures = format!(
        "volcanion_events_validation_failures_total{{partner=\"{}\"}} 1",
        tenant.partner_id
    );
    assert!(metrics.contains(&failures), "{metrics}");
}

async fn rejected_events_get_422_naming_the_property(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    assert_eq!(
        app.put_schema(
            Partner(&tenant.partner_id),
            "purchase",
            &amount_schema("reject")
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let response = app
        .send_event(&tenant.key, &purchase(&tenant, -1, "2026-11-20T10:00:00Z"))
        .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "properties/amount");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("minimum")
    );
    assert_eq!(
        app.send_event(&tenant.key, &purchase(&tenant, 1, "2026-11-20T10:00:00Z"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let stored = app.await_events(&tenant.key, DAY, 1).await;
    assert_eq!(stored[0]["properties"]["amount"], 1);
}

async fn a_batch_mixes_valid_flagged_and_rejected_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    app.put_schema(Global, "purchase", &amount_schema("flag"))
        .await;
    let signup_schema =
        json!({"mode": "reject", "schema": {"type": "object", "required": ["plan"]}});
    app.put_schema(Partner(&tenant.partner_id), "signup", &signup_schema)
        .await;
    let mut signup_ok = event(&tenant, "signup", "u2", "2026-11-20T12:00:00Z");
    signup_ok["properties"] = json!({"plan": "pro"});
    let signup_bad = event(&tenant, "signup", "u3", "2026-11-20T12:00:01Z");
    let events = vec![
        purchase(&tenant, 10, "2026-11-20T10:00:00Z"),
        purchase(&tenant, -10, "2026-11-20T10:00:01Z"),
        signup_bad,
        signup_ok,
    ];
    let body: Value = app
        .send_batch(&tenant.key, &events)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["isValid"], true);
    assert_eq!(results[1]["isValid"], false);
    assert_eq!(
        results[1]["validationErrors"][0],
        "/amount: -10 is less than the minimum of 0"
    );
    assert_eq!(results[2]["error"]["status"], 422);
    assert!(results[2]["eventId"].is_null());
    assert_eq!(results[3]["isValid"], true);
    let stored = app.await_events(&tenant.key, DAY, 3).await;
    assert!(
        stored.iter().all(|e| e["userId"] != "u3"),
        "the rejected event is not stored"
    );
}

async fn a_partner_structure_wins_over_the_global_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    app.put_schema(Global, "purchase", &amount_schema("flag"))
        .await;
    let lenient = json!({"schema": {"type": "object"}});
    assert_eq!(
        app.put_schema(Partner(&acme.partner_id), "purchase", &lenient)
            .await
            .status(),
        StatusCode::CREATED
    );
    let mut without_amount = purchase(&acme, 0, "2026-11-20T10:00:00Z");
    without_amount["properties"] = json!({"currency": "EUR"});
    let acme_result: Value = app
        .send_event(&acme.key, &without_amount)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acme_result["isValid"], true);
    without_amount["subsystem"] = json!(globex.subsystem_code);
    let globex_result: Value = app
        .send_event(&globex.key, &without_amount)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(globex_result["isValid"], false);

    let partner_list = app.schemas(Partner(&acme.partner_id)).await;
    assert_eq!(partner_list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        partner_list["items"][0]["partnerId"],
        acme.partner_id.as_str()
    );
    let global_list = app.schemas(Global).await;
    assert_eq!(global_list["items"].as_array().unwrap().len(), 1);
}

async fn updates_and_deletes_take_effect_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    app.put_schema(Global, "purchase", &amount_schema("flag"))
        .await;
    let flagged: Value = app
        .send_event(&tenant.key, &purchase(&tenant, -1, "2026-11-20T10:00:00Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flagged["isValid"], false);

    let relaxed =
        json!({"schema": {"type": "object", "properties": {"amount": {"type": "number"}}}});
    let updated = app.put_schema(Global, "purchase", &relaxed).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["version"], 2);
    let now_valid: Value = app
        .send_event(&tenant.key, &purchase(&tenant, -1, "2026-11-20T10:00:01Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now_valid["isValid"], true);

    app.put_schema(Global, "purchase", &amount_schema("reject"))
        .await;
    let refused = app
        .send_event(&tenant.key, &purchase(&tenant, -1, "2026-11-20T10:00:02Z"))
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let deleted = app.delete_schema(Global, "purchase").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.send_event(&tenant.key, &purchase(&tenant, -1, "2026-11-20T10:00:03Z"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let again = app.delete_schema(Global, "purchase").await;
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

async fn invalid_structures_are_refused_with_the_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    for schema in [
        json!({"type": "banana"}),
        json!({"$ref": "https://example.com/remote.json"}),
        json!(12),
    ] {
        let response = app
            .put_schema(Global, "purchase", &json!({"schema": schema}))
            .await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["errors"][0]["field"], "schema", "{schema}");
    }
    let bad_mode = app
        .put_schema(Global, "purchase", &json!({"schema": {}, "mode": "maybe"}))
        .await;
    assert_problem(bad_mode, StatusCode::BAD_REQUEST).await;
    let unknown_partner = app
        .put_schema(
            Partner("00000000-0000-0000-0000-000000000000"),
            "purchase",
            &amount_schema("flag"),
        )
        .await;
    assert_problem(unknown_partner, StatusCode::NOT_FOUND).await;
    let with_key = app
        .client
        .put(app.url("/api/v1/schemas/purchase"))
        .header("x-api-key", &tenant.key)
        .json(&amount_schema("flag"))
        .send()
        .await
        .unwrap();
    assert_problem(with_key, StatusCode::FORBIDDEN).await;
}

async fn event_types_with_spaces_work_in_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let response = app
        .put_schema(Global, "Order Completed", &amount_schema("reject"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let fetched = app.schema(Global, "Order Completed").await;
    assert_eq!(fetched["eventType"], "Order Completed");
    let mut order = event(&tenant, "Order Completed", "u1", "2026-11-20T10:00:00Z");
    order["properties"] = json!({});
    assert_problem(
        app.send_event(&tenant.key, &order).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

crate::backend_tests!(
    flagged_events_are_stored_with_their_errors,
    rejected_events_get_422_naming_the_property,
    a_batch_mixes_valid_flagged_and_rejected_events,
    a_partner_structure_wins_over_the_global_one,
    updates_and_deletes_take_effect_at_once,
    invalid_structures_are_refused_with_the_reason,
    event_types_with_spaces_work_in_paths,
);
