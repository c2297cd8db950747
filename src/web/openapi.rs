//! `GET /api-docs/openapi.json`: the OpenAPI 3.0 description of the practice-software JSON API
//! and the insurer pull API. Hand-written (`openapi.json` beside this file) instead of generated
//! by utoipa, which would add a derive to every handler and minutes of build time;
//! `scripts/schemathesis.sh` checks that the running server answers as it says.

use actix_web::HttpResponse;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes(r: &mut super::Router<'_>) {
    r.get("/api-docs/openapi.json", openapi);
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_description_is_json_and_names_every_api_route() {
        let spec: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap_or_default();
        assert_eq!(spec["openapi"], "3.0.3");
        for path in [
            "/api/v1/certificates",
            "/api/v1/certificates/search",
            "/api/v1/certificates/{id}",
            "/api/v1/certificates/{id}/fhir",
            "/api/v1/certificates/{id}/pdf",
            "/api/v1/certificates/{id}/cancel",
            "/api/v1/fhir/eau",
            "/api/insurer/v1/documents",
            "/api/insurer/v1/acknowledgements",
        ] {
            assert!(spec["paths"][path].is_object(), "{path} is not described");
        }
    }
}
