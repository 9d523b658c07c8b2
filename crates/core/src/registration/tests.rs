use super::*;

fn settings() -> CoreSettings {
    CoreSettings::for_issuer("https://id.example")
}

fn input(metadata: Value) -> Result<ClientInput> {
    to_input(&metadata, &settings())
}

fn refused(metadata: Value) -> String {
    match input(metadata) {
        Err(Error::OAuth {
            code: ErrorCode::InvalidClientMetadata,
            description,
        }) => description,
        other => panic!("expected invalid_client_metadata, got {other:?}"),
    }
}

/// RFC 9101 §10.4.1: request_uris are read from public addresses, never from this
/// server itself, and only for a client with keys to verify what they hold.
#[test]
fn request_uris_are_public_and_elsewhere() {
    let with = |uri: &str| {
        json!({
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://app.example/jwks.json",
            "request_uris": [uri],
        })
    };
    assert_eq!(
        input(with("https://app.example/r.jwt")).unwrap().request_uris,
        ["https://app.example/r.jwt"]
    );
    assert!(refused(with("https://ID.example./r.jwt")).contains("own host"));
    assert!(refused(with("https://10.0.0.7/r.jwt")).starts_with("request_uris: "));
    assert!(refused(with("https://localhost/r.jwt")).starts_with("request_uris: "));
}

#[test]
fn defaults_follow_rfc_7591() {
    let i = input(json!({"redirect_uris": ["https://app.example/cb"]})).unwrap();
    assert_eq!(i.kind, Some(ClientKind::Confidential));
    assert_eq!(i.grant_types, ["authorization_code"]);
    assert_eq!(i.scopes, "email offline_access openid profile");
    assert_eq!(i.name, UNNAMED);
    assert!(!i.first_party);
    assert!(i.resources.is_empty() && i.cors_origins.is_empty());
    let mut open_apis = settings();
    open_apis.registration_resources = vec!["https://mcp.example/mcp".into()];
    let i = to_input(&json!({"token_endpoint_auth_method": "none"}), &open_apis).unwrap();
    assert_eq!(i.resources, ["https://mcp.example/mcp"]);
    let public = input(json!({"token_endpoint_auth_method": "none", "client_name": "CLI"})).unwrap();
    assert_eq!(public.kind, Some(ClientKind::Public));
    assert_eq!(public.name, "CLI");
}

#[test]
fn what_nobody_approves_or_the_server_cannot_do_is_refused() {
    assert!(
        refused(json!({"grant_types": ["client_credentials"], "response_types": []})).contains("client_credentials")
    );
    assert!(refused(json!({"grant_types": ["implicit"]})).contains("implicit"));
    assert!(
        refused(json!({"grant_types": [portcullis_protocol::TOKEN_EXCHANGE_GRANT], "response_types": []}))
            .contains("token exchange")
    );
    assert!(refused(json!({"response_types": ["token"]})).contains("token"));
    assert!(refused(json!({"grant_types": ["refresh_token"], "response_types": ["code"]})).contains("response_types"));
    assert!(refused(json!({"response_types": []})).contains("response_types"));
    assert!(refused(json!({"scope": "openid admin"})).contains("admin"));
    assert!(refused(json!({"token_endpoint_auth_method": "client_secret_jwt"})).contains("client_secret_jwt"));
    assert!(refused(json!({"token_endpoint_auth_method": "private_key_jwt"})).contains("jwks"));
    // Keys beside a secret method are for request objects: the client keeps a secret
    // (the keys themselves are checked with every client's, `clients::validate`).
    let both = input(json!({"jwks": {"keys": []}})).unwrap();
    assert!(both.secret_with_keys && both.jwks.is_some());
    assert!(refused(json!({"jwks": {"keys": []}, "token_endpoint_auth_method": "none"})).contains("confidential"));
    assert!(refused(json!({"jwks": "x", "token_endpoint_auth_method": "private_key_jwt"})).contains("JWK Set"));
    assert!(refused(json!({"subject_type": "secret"})).contains("public or pairwise"));
    assert!(
        refused(json!({"subject_type": "pairwise", "sector_identifier_uri": "https://a.example/s.json"}))
            .contains("sector_identifier_uri")
    );
    for server_side in ["jwks_uri", "backchannel_logout_uri"] {
        for private in [
            "https://10.0.0.1/x",
            "http://127.0.0.1:8080/x",
            "https://localhost/x",
            "https://[fe80::1]/x",
        ] {
            let e = refused(json!({server_side: private, "token_endpoint_auth_method": "private_key_jwt"}));
            assert!(e.starts_with(server_side) && e.contains("public"), "{e}");
        }
    }
    assert!(
        input(json!({"jwks_uri": "https://rp.example/keys"}))
            .unwrap()
            .secret_with_keys
    );
    assert!(refused(json!({"id_token_encrypted_response_alg": "RSA-OAEP"})).contains("encrypt"));
    assert!(refused(json!({"userinfo_signed_response_alg": 256})).contains("string"));
    assert!(refused(json!({"request_object_signing_alg": "none"})).contains("none"));
    assert!(refused(json!({"redirect_uris": "https://app.example/cb"})).contains("array"));
    assert!(refused(json!({"client_name": 7})).contains("string"));
    assert!(refused(json!({"dpop_bound_access_tokens": "yes"})).contains("true or false"));
    assert!(refused(json!([1, 2])).contains("object"));
    let own = input(json!({"redirect_uris": ["https://id.example./logout"]}));
    assert!(
        matches!(own, Err(Error::OAuth { code: ErrorCode::InvalidRedirectUri, ref description }) if description.contains("own host")),
        "{own:?}"
    );
}

#[test]
fn what_is_unknown_is_ignored_and_what_is_allowed_is_kept() {
    let i = input(json!({
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid offline_access",
        "software_id": "x",
        "contacts": ["a@b.example"],
        "subject_type": "public",
        "request_object_signing_alg": "ES256",
        "dpop_bound_access_tokens": true,
        "client_name": null,
    }))
    .unwrap();
    assert_eq!(i.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(i.scopes, "offline_access openid");
    assert!(i.dpop_bound_access_tokens);
    assert_eq!(i.name, UNNAMED);
}

#[test]
fn refusals_of_the_common_checks_name_the_metadata() {
    let e = as_registration_error(Error::invalid("redirect_uris", "bad"));
    assert!(
        matches!(e, Error::OAuth { code: ErrorCode::InvalidRedirectUri, ref description } if description == "redirect_uris: bad")
    );
    let e = as_registration_error(Error::invalid("name", "too long"));
    assert!(
        matches!(e, Error::OAuth { code: ErrorCode::InvalidClientMetadata, ref description } if description == "client_name: too long")
    );
}
