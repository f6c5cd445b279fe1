use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem, error_fields, id_of, spawn_app};

async fn partner_lifecycle_create_get_update_deactivate(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .admin(Method::POST, "/api/v1/partners")
        .json(&json!({"code": "acme", "name": "Acme", "email": "ops@acme.test", "rateLimitPerMinute": 600, "retentionDays": 90}))
        .send()
        .await
        .unwrap();
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

    let fetched: Value = app
        .admin(Method::GET, &location)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, partner);

    let patched = app
        .admin(Method::PATCH, &location)
        .json(&json!({"name": "Acme GmbH", "contactPerson": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["name"], "Acme GmbH");
    assert_eq!(patched["code"], "acme");

    let deleted = app.admin(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after: Value = app
        .admin(Method::GET, &location)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["status"], "inactive", "deactivated, not deleted");
}

async fn duplicate_partner_code_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_partner("acme").await;
    let response = app
        .admin(Method::POST, "/api/v1/partners")
        .json(&json!({"code": "acme", "name": "Another"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::CONFLICT).await;
}

async fn renaming_a_partner_code_onto_a_taken_one_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_partner("acme").await;
    let other = app.create_partner("globex").await;
    let response = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/partners/{}", id_of(&other)),
        )
        .json(&json!({"code": "acme"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::CONFLICT).await;
    let renamed = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/partners/{}", id_of(&other)),
        )
        .json(&json!({"code": "globex-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    app.create_partner("globex").await;
}

async fn invalid_partner_fields_are_all_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .admin(Method::POST, "/api/v1/partners")
        .json(&json!({"code": "Not Valid", "name": " ", "email": "nope"}))
        .send()
        .await
        .unwrap();
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
        .admin(Method::POST, "/api/v1/partners")
        .json(&json!({"code": "acme", "name": "Acme", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(unknown_field, StatusCode::BAD_REQUEST).await;
    assert!(problem["detail"].as_str().unwrap().contains("colour"));
}

async fn unknown_and_malformed_ids_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/api/v1/partners/00000000-0000-0000-0000-000000000000",
        "/api/v1/partners/not-a-uuid",
        "/api/v1/subsystems/00000000-0000-0000-0000-000000000000",
    ] {
        let response = app.admin(Method::GET, path).send().await.unwrap();
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
    let revoke = app
        .admin(
            Method::DELETE,
            "/api/v1/api-keys/00000000-0000-0000-0000-000000000000",
        )
        .send()
        .await
        .unwrap();
    assert_problem(revoke, StatusCode::NOT_FOUND).await;
}

async fn partner_listing_pages_through_every_partner_once(backend: Backend) {
    let app = spawn_app(backend).await;
    for index in 0..5 {
        app.create_partner(&format!("p{index}")).await;
    }
    let mut codes = Vec::new();
    let mut path = "/api/v1/partners?limit=2".to_string();
    loop {
        let page: Value = app
            .admin(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        codes.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["code"].as_str().unwrap().to_string()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/partners?limit=2&cursor={cursor}"),
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
        .admin(Method::POST, &format!("/api/v1/partners/{acme}/subsystems"))
        .json(&json!({"code": "shop", "name": "Shop again", "type": "ios"}))
        .send()
        .await
        .unwrap();
    assert_problem(duplicate, StatusCode::CONFLICT).await;
    app.create_subsystem(&globex, "shop").await;

    let listed: Value = app
        .admin(Method::GET, &format!("/api/v1/partners/{acme}/subsystems"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

async fn subsystem_update_and_deactivate(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = id_of(&app.create_partner("acme").await);
    let shop = id_of(&app.create_subsystem(&acme, "shop").await);
    let path = format!("/api/v1/subsystems/{shop}");
    let bad_type = app
        .admin(Method::PATCH, &path)
        .json(&json!({"type": "mainframe"}))
        .send()
        .await
        .unwrap();
    assert_problem(bad_type, StatusCode::BAD_REQUEST).await;
    let updated: Value = app
        .admin(Method::PATCH, &path)
        .json(&json!({"type": "ios", "description": "the app"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["type"], "ios");
    assert_eq!(
        app.admin(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let after: Value = app
        .admin(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["status"], "inactive");
}

async fn management_needs_the_admin_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let anonymous = app
        .client
        .get(app.url("/api/v1/partners"))
        .send()
        .await
        .unwrap();
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
    let missing = app
        .client
        .get(app.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
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
    duplicate_partner_code_is_a_conflict,
    renaming_a_partner_code_onto_a_taken_one_is_a_conflict,
    invalid_partner_fields_are_all_named,
    malformed_and_unknown_bodies_are_400,
    unknown_and_malformed_ids_are_404,
    partner_listing_pages_through_every_partner_once,
    subsystem_codes_are_unique_within_a_partner_only,
    subsystem_update_and_deactivate,
    management_needs_the_admin_token,
    unknown_routes_and_methods_answer_problem_json,
);
