//! The document itself: an [`Op`] table rendered as OpenAPI 3.1, and the check that a
//! served document describes exactly the service's routes.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::{page, Access, Op, Wrap};

/// What keeps a served document from describing exactly the service's routes (empty:
/// nothing): routes registered outside the table in the crate's sources (`src_dir`),
/// operations of the table the document lacks, and operations it has that the table
/// does not.
pub fn gaps(doc: &Value, ops: &[Op], src_dir: &std::path::Path) -> Vec<String> {
    let mut gaps: Vec<String> = routes_outside_the_table(src_dir)
        .into_iter()
        .map(|r| format!("registered outside the table: {r}"))
        .collect();
    gaps.extend(
        ops.iter()
            .filter(|op| doc["paths"][op.path][op.method].get("responses").is_none())
            .map(|op| format!("undocumented: {} {}", op.method.to_uppercase(), op.path)),
    );
    let documented: usize =
        doc["paths"].as_object().map_or(0, |p| p.values().filter_map(Value::as_object).map(Map::len).sum());
    if documented != ops.len() {
        gaps.push(format!("the document has {documented} operations, the table {}", ops.len()));
    }
    gaps
}

/// Source files of a crate that register routes outside [`crate::api_routes!`]: every
/// route must go through the table, or the document would not know it. (`testkit`
/// folders, test support that serves no API, are skipped.)
fn routes_outside_the_table(src_dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![src_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("testkit") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    if [".route(", "web::resource(", "web::scope(", ".default_service("]
                        .iter()
                        .any(|p| code.contains(p))
                    {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    found
}

/// The OpenAPI 3.1 document of `ops`.
pub fn render(title: &str, description: &str, ops: &[Op]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let statuses: BTreeMap<&str, u16> = crate::http::error::catalogue().into_iter().collect();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in ops {
        let operation = operation(op, &mut generator, &statuses);
        paths.entry(op.path).or_default().insert(op.method.to_owned(), operation);
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert("Problem".into(), problem_schema(&statuses));
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": env!("CARGO_PKG_VERSION"), "description": description,
                  "license": { "name": "MIT", "identifier": "MIT" } },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "paymentSignature": { "type": "apiKey", "in": "header", "name": "Tally-Signature",
                    "description": "t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>" }
            }
        }
    })
}

fn operation(op: &Op, g: &mut SchemaGenerator, statuses: &BTreeMap<&str, u16>) -> Value {
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if let Some(query) = op.query {
        parameters.extend(query_parameters(&query(g), g));
    }
    if op.method == "get" && op.path.starts_with("/v1/") {
        parameters.push(json!({ "name": "X-Tally-Min-Position", "in": "header", "required": false,
            "description": "Read-your-writes: answer only once the read models include this position (a command's `position`).",
            "schema": { "type": "string" } }));
    } else if op.method != "get" && op.access != Access::Public {
        parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Repeating a request with the same key (and body) answers as the first did and changes nothing.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 } }));
    }
    let mut responses = Map::new();
    let reply = op.reply.clone().or_else(|| {
        let item = op.reply_type.map(|t| t(g))?;
        Some(match op.wrap {
            Wrap::Bare => item,
            Wrap::List => json!({ "type": "object", "required": ["items"],
                                  "properties": { "items": { "type": "array", "items": item } } }),
            Wrap::Page => page(item),
        })
    });
    let success = match (op.status, reply) {
        (204, _) => json!({ "description": "Done; no body." }),
        (status, Some(schema)) => json!({ "description": reason(status),
            "content": { op.content_type: { "schema": schema } } }),
        (status, None) => json!({ "description": reason(status) }),
    };
    responses.insert(op.status.to_string(), success);
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in op.codes() {
        by_status.entry(statuses.get(code).copied().unwrap_or(422)).or_default().push(code);
    }
    for (status, codes) in by_status {
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("Problem: {}", codes.join(", ")),
                "content": { "application/problem+json": { "schema": { "allOf": [
                    { "$ref": "#/components/schemas/Problem" },
                    { "type": "object", "properties": { "code": { "enum": codes } } }
                ] } } }
            }),
        );
    }
    let mut operation = json!({
        "operationId": operation_id(op),
        "summary": op.summary,
        "description": format!("Who: {}.", op.access.describe()),
        "tags": [tag(op.path)],
        "parameters": parameters,
        "responses": responses,
    });
    match op.access {
        Access::Public => {}
        Access::Signature => operation["security"] = json!([{ "paymentSignature": [] }]),
        _ => operation["security"] = json!([{ "bearer": [] }]),
    }
    if let Some(body) = op.body {
        operation["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": body(g) } } });
    }
    operation
}

/// A query struct's fields as `in: query` parameters.
fn query_parameters(schema: &Value, g: &SchemaGenerator) -> Vec<Value> {
    let resolved = match schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        Some(name) => g.definitions().get(name).cloned().unwrap_or(Value::Null),
        None => schema.clone(),
    };
    let required: Vec<&str> = resolved["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    resolved["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": s }))
                .collect()
        })
        .unwrap_or_default()
}

fn problem_schema(statuses: &BTreeMap<&str, u16>) -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details, with a stable `code`.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "code": { "type": "string", "enum": statuses.keys().collect::<Vec<_>>() },
            "request_id": { "type": "string" }
        }
    })
}

fn operation_id(op: &Op) -> String {
    let path: String = op
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|seg| seg.trim_start_matches('{').trim_end_matches('}').replace('-', "_"))
        .collect::<Vec<_>>()
        .join("_");
    format!("{}_{}", op.method, path)
}

/// The operation's group: the first path segment after the version.
fn tag(path: &str) -> String {
    let mut segs = path.trim_start_matches('/').split('/');
    match segs.next() {
        Some("v1") => segs.next().unwrap_or("v1").to_owned(),
        _ => "operations".to_owned(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        _ => "Answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::doc;

    #[test]
    fn a_route_outside_the_table_and_an_undocumented_one_are_gaps() {
        let dir = std::env::temp_dir().join(format!("tally-openapi-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("testkit")).unwrap();
        std::fs::write(
            dir.join("startup.rs"),
            "// cfg.route(\"/in-a-comment\")\ncfg.route(\"/x\", get());\n",
        )
        .unwrap();
        std::fs::write(dir.join("testkit/mod.rs"), "App::new().default_service(web::to(f));\n").unwrap();
        let ops = vec![doc("A", Access::Public).at("get", "/a"), doc("B", Access::Admin).at("post", "/b")];
        let document = render("t", "d", &ops[..1]);
        let found = gaps(&document, &ops, &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("registered outside the table:")
                && found[0].ends_with("cfg.route(\"/x\", get());")
        );
        assert_eq!(found[1], "undocumented: POST /b");
        assert!(gaps(&render("t", "d", &ops), &ops, std::path::Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn an_operation_lists_the_problems_its_shape_implies() {
        let op = doc("x", Access::Admin)
            .body::<String>()
            .at("post", "/v1/things/{id}")
            .problems(&["invalid_state"]);
        let codes = op.codes();
        for code in [
            "malformed_request",
            "validation_failed",
            "not_found",
            "unauthenticated",
            "forbidden",
            "invalid_state",
            "idempotency_key_reused",
        ] {
            assert!(codes.contains(&code), "{code} in {codes:?}");
        }
        let public = doc("y", Access::Public).at("get", "/v1/things").codes();
        assert!(!public.contains(&"unauthenticated") && !public.contains(&"not_found"), "{public:?}");
    }
}
