//! Small response shapes shared by the resource handlers.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `201 Created` with `Location` and the created resource.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `{"items": [...]}`: the shape of every unpaged listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T: Serialize> Items<T> {
    pub fn json(items: Vec<T>) -> Json<Items<T>> {
        Json(Items { items })
    }
}
