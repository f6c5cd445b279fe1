use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem, error_fields, id_of, spawn_app};

const UNKNOWN_ID: &str = "00000000-0000-0000-0000-000000000000";

async fn partner_lifecycle_create_get_update_deactivate(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .post_partner(&json!({"code": "acme", "name": "Acme", "email": "ops@acme.test", "rateLimitPerMinute": 600, "retentionDays": 90}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let partner: Value = created.json().await.unwrap();
    let id = id_of(&partner);
    assert_eq!(location, format!("/api/v1/partners/{id}"));
    assert_eq!(partner["status"], "active");
    assert_eq!(partner["rateLimitPerMinute"], 600);
    for field in [
        "code",
        "name",
        "email",
        "contactPerson",
        "status",
        "retentionDays",
        "createdAt",
        "updatedAt",
    ] {
        assert!(partner.get(field).is_some(), "missing {field}");
    }

    assert_eq!(app.partner(&id).await, partner);

    let patched = app
        .patch_partner(&id, &json!({"name": "Acme GmbH", "contactPerson": "Ada"}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["name"], "Acme GmbH");
    assert_eq!(patched["code"], "acme");

    let deleted = app.delete_partner(&id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = app.partner(&id).await;
    assert_eq!(after["status"], "inactive", "deactivated, not deleted");
}

async fn own_hosts_and_the_client_ip_choice_are_kept_and_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .post_partner(
            &json!({"code": "acme", "name": "Acme", "ownHosts": ["Shop.Acme.test", "acme.test"]}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let partner: Value = created.json().await.unwrap();
    let id = id_of(&partner);
    assert_eq!(partner["ownHosts"], json!(["shop.acme.test", "acme.test"]));
    assert_eq!(
        partner["storeClientIp"], false,
        "off unless the partner opts in"
    );

    let refused = app
        .patch_partner(
            &id,
            &json!({"ownHosts": ["acme.test", "https://acme.test/shop"]}),
        )
        .await;
    let problem = assert_problem(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["ownHosts[1]"]);

    let patched = app
        .patch_partner(
            &id,
            &json!({"storeClientIp": true, "ownHosts": ["acme.test"]}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let stored = app.partner(&id).await;
    assert_eq!(stored["storeClientIp"], true);
    assert_eq!(stored["ownHosts"], json!(["acme.test"]));
}

async fn declared_dimensions_replace_the_last_list_and_bad_names_are_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = id_of(&app.create_partner("acme").await);
    let path = format!("/api/v1/partners/{id}/dimensions");
    let declare = |body: Value| {
        let request = app.admin(Method::PUT, &path).json(&body);
        async move { request.send().await.unwrap() }
    };
    let declared = declare(json!({"properties": ["plan", " country", "plan"]})).await;
    assert_eq!(declared.status(), StatusCode::OK);
    let declared: Value = declared.json().await.unwrap();
    assert_eq!(
        declared,
        json!({"partnerId": id, "properties": ["plan", "country"]})
    );
    assert_eq!(
        app.partner(&id).await["dimensions"],
        json!(["plan", "country"])
    );

    let refused = declare(json!({"properties": ["ok", ""]})).await;
    let problem = assert_problem(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["properties[1]"]);
    let too_many: Vec<String> = (0..21).map(|n| format!("p{n}")).collect();
    let refused = declare(json!({"properties": too_many})).await;
    assert_problem(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        app.partner(&id).await["dimensions"],
        json!(["plan", "country"])
    );

    let cleared = declare(json!({"properties": []})).await;
    assert_eq!(cleared.status(), StatusCode::OK);
    assert_eq!(app.partner(&id).await["dimensions"], json!([]));
    let unknown = app
        .admin(
            Method::PUT,
            &format!("/api/v1/partners/{UNKNOWN_ID}/dimensions"),
        )
        .json(&json!({"properties": ["plan"]}));
    assert_problem(unknown.send().await.unwrap(), StatusCode::NOT_FOUND).await;
}

async fn duplicate_partner_code_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_partner("acme").await;
    let response = app
        .post_partner(&json!({"code": "acme", "name": "Another"}))
        .await;
    assert_problem(response, StatusCode::CONFLICT).await;
}

async fn renaming_a_partner_code_onto_a_taken_one_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_partner("acme").await;
    let other = id_of(&app.create_partner("globex").await);
    let response = app.patch_partner(&other, &json!({"code": "acme"})).await;
    assert_problem(response, StatusCode::CONFLICT).await;
    let renamed = app
        .patch_partner(&other, &json!({"code": "globex-2"}))
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    app.create_partner("globex").await;
}

async fn invalid_partner_fields_are_all_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_partner(&json!({"code": "Not Valid", "name": " ", "email": "nope"}))
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["code", "name", "email"]);
}

async fn malformed_and_unknown_bodies_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let not_json = app
        .admin(Method::POST, "/api/v1/partners")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, StatusCode::BAD_REQUEST).await;
    let unknown_field = app
        .post_partner(&json!({"code": "acme", "name": "Acme", "colour": "red"}))
        .await;
    let problem = assert_problem(unknown_field, StatusCode::BAD_REQUEST).await;
    assert!(problem["detail"].as_str().unwrap().contains("colour"));
}

async fn body_shape_errors_name_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.post_partner(&json!({"code": "acme"})).await;
    let problem = assert_problem(missing, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["name"]);
    assert_eq!(problem["errors"][0]["message"], "is required");
    let wrong_type = app
        .post_partner(&json!({"code": "acme", "name": "Acme", "rateLimitPerMinute": "lots"}))
        .await;
    let problem = assert_problem(wrong_type, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["rateLimitPerMinute"]);
    let partner = app.create_partner("acme").await;
    let bad_scope = app
        .post_key(&id_of(&partner), &json!({"scopes": ["ingest", "write"]}))
        .await;
    let problem = assert_problem(bad_scope, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["scopes[1]"]);
}

async fn partners_can_be_found_by_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_partner("acme").await;
    app.create_partner("globex").await;
    let found = app.partners("code=acme").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], acme["id"]);
    assert!(found["nextCursor"].is_null());
    let none = app.partners("code=initech").await;
    assert_eq!(none["items"], json!([]));
}

async fn unknown_and_malformed_ids_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let lookups = [
        app.get_partner(UNKNOWN_ID).await,
        app.get_partner("not-a-uuid").await,
        app.get_subsystem(UNKNOWN_ID).await,
    ];
    for response in lookups {
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
    let revoke = app.revoke_key(UNKNOWN_ID).await;
    assert_problem(revoke, StatusCode::NOT_FOUND).await;
}

async fn partner_listing_pages_through_every_partner_once(backend: Backend) {
    let app = spawn_app(backend).await;
    for index in 0..5 {
        app.create_partner(&format!("p{index}")).await;
    }
    let mut codes = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let page = app.partners(&query).await;
        codes.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["code"].as_str().unwrap().to_string()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(codes, ["p0", "p1", "p2", "p3", "p4"]);
}

async fn subsystem_codes_are_unique_within_a_partner_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = id_of(&app.create_partner("acme").await);
    let globex = id_of(&app.create_partner("globex").await);
    let shop = app.create_subsystem(&acme, "shop").await;
    assert_eq!(shop["partnerId"], acme.as_str());
    assert_eq!(shop["type"], "web");
    let duplicate = app
        .post_subsystem(
            &acme,
            &json!({"code": "shop", "name": "Shop again", "type": "ios"}),
        )
        .await;
    assert_problem(duplicate, StatusCode::CONFLICT).await;
    app.create_subsystem(&globex, "shop").await;

    let listed = app.subsystems(&acme).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

async fn subsystem_update_and_deactivate(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = id_of(&app.create_partner("acme").await);
    let shop = id_of(&app.create_subsystem(&acme, "shop").await);
    let bad_type = app
        .patch_subsystem(&shop, &json!({"type": "mainframe"}))
        .await;
    assert_problem(bad_type, StatusCode::BAD_REQUEST).await;
    let updated = app
        .update_subsystem(&shop, &json!({"type": "ios", "description": "the app"}))
        .await;
    assert_eq!(updated["type"], "ios");
    assert_eq!(
        app.delete_subsystem(&shop).await.status(),
        StatusCode::NO_CONTENT
    );
    let after = app.subsystem(&shop).await;
    assert_eq!(after["status"], "inactive");
}

async fn management_needs_the_admin_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let anonymous = app.get("/api/v1/partners").await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let wrong = app
        .client
        .get(app.url("/api/v1/partners"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
    let with_key = app
        .client
        .get(app.url("/api/v1/partners"))
        .header("x-api-key", &tenant.key)
        .send()
        .await
        .unwrap();
    assert_problem(with_key, StatusCode::FORBIDDEN).await;
}

async fn unknown_routes_and_methods_answer_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.get("/api/v1/nothing").await;
    assert_problem(missing, StatusCode::NOT_FOUND).await;
    let wrong_method = app
        .admin(Method::PUT, "/api/v1/partners")
        .send()
        .await
        .unwrap();
    assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
}

crate::backend_tests!(
    partner_lifecycle_create_get_update_deactivate,
    own_hosts_and_the_client_ip_choice_are_kept_and_changed,
    declared_dimensions_replace_the_last_list_and_bad_names_are_named,
    duplicate_partner_code_is_a_conflict,
    renaming_a_partner_code_onto_a_taken_one_is_a_conflict,
    invalid_partner_fields_are_all_named,
    malformed_and_unknown_bodies_are_400,
    body_shape_errors_name_the_field,
    partners_can_be_found_by_code,
    unknown_and_malformed_ids_are_404,
    partner_listing_pages_through_every_partner_once,
    subsystem_codes_are_unique_within_a_partner_only,
    subsystem_update_and_deactivate,
    management_needs_the_admin_token,
    unknown_routes_and_methods_answer_problem_json,
);
