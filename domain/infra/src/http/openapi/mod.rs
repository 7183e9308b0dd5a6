//! The OpenAPI 3.1 document of an API, generated from its route table: each service
//! declares its routes once with [`crate::api_routes!`], which both registers them with
//! actix and describes them here, so a route cannot exist without its documentation.
//! Request and query schemas come from the Rust types the handlers deserialize
//! (`schemars`, honouring the serde attributes); problem codes and statuses come from
//! [`super::error::catalogue`] ([`render`]). `/docs` renders the document with a page
//! and script compiled into the binary: it works offline.

mod render;

pub use render::{gaps, render};

use actix_web::{web, HttpResponse};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Any valid bearer token.
    SignedIn,
    Customer,
    Admin,
    /// Admins and auditors.
    Staff,
    /// The account's owner, admins and auditors.
    Owner,
    /// The payment provider, by `Tally-Signature`.
    Signature,
}

impl Access {
    fn describe(self) -> &'static str {
        match self {
            Access::Public => "anyone",
            Access::SignedIn => "any signed-in user",
            Access::Customer => "customers",
            Access::Admin => "admins",
            Access::Staff => "admins and auditors",
            Access::Owner => "the account's owner, admins and auditors",
            Access::Signature => "the payment provider (Tally-Signature)",
        }
    }
}

pub(super) type SchemaFn = fn(&mut SchemaGenerator) -> Value;

/// The schema of `T`, as a reference into the document's components.
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// An object schema from `(name, type)` pairs. Types: `uuid`, `string`, `integer`,
/// `number`, `boolean`, `time`, `object`, `array`, `any`; a trailing `?` allows `null`.
/// For answers assembled in the handler rather than from one Rust type.
pub fn object(fields: &[(&str, &str)]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, ty) in fields {
        let (ty, nullable) = match ty.strip_suffix('?') {
            Some(t) => (t, true),
            None => (*ty, false),
        };
        let mut schema = match ty {
            "uuid" => json!({ "type": "string", "format": "uuid" }),
            "time" => json!({ "type": "string", "format": "date-time" }),
            "any" => json!({}),
            other => json!({ "type": other }),
        };
        if nullable {
            if let Some(t) = schema.get("type").cloned() {
                schema["type"] = json!([t, "null"]);
            }
        } else {
            required.push(*name);
        }
        properties.insert((*name).to_owned(), schema);
    }
    json!({ "type": "object", "properties": properties, "required": required })
}

/// A page of items of this shape, with the cursor of the next page.
pub fn page(item: Value) -> Value {
    json!({ "type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": { "type": "array", "items": item },
        "next_cursor": { "type": ["string", "null"] } } })
}

/// One documented operation.
#[derive(Clone)]
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub(super) body: Option<SchemaFn>,
    pub(super) query: Option<SchemaFn>,
    pub(super) status: u16,
    pub(super) reply: Option<Value>,
    pub(super) reply_type: Option<SchemaFn>,
    /// How the reply wraps `reply_type`: as is, `{items}` or a page.
    pub(super) wrap: Wrap,
    pub(super) content_type: &'static str,
    pub(super) problems: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Wrap {
    Bare,
    List,
    Page,
}

/// Starts an operation's description.
pub fn doc(summary: &'static str, access: Access) -> Op {
    Op {
        method: "",
        path: "",
        summary,
        access,
        body: None,
        query: None,
        status: 200,
        reply: None,
        reply_type: None,
        wrap: Wrap::Bare,
        content_type: "application/json",
        problems: Vec::new(),
    }
}

impl Op {
    /// The JSON body it takes.
    pub fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(schema::<T>);
        self
    }

    /// The query parameters it takes (a struct's fields).
    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema::<T>);
        self
    }

    /// Answers `status` with a body of this (JSON Schema) shape.
    pub fn reply(mut self, status: u16, shape: Value) -> Self {
        self.status = status;
        self.reply = Some(shape);
        self
    }

    /// Answers `status` with a body of type `T`.
    pub fn reply_type<T: JsonSchema>(mut self, status: u16) -> Self {
        self.status = status;
        self.reply_type = Some(schema::<T>);
        self
    }

    /// Answers 200 with `{items: [T]}`.
    pub fn list_of<T: JsonSchema>(mut self) -> Self {
        self.reply_type = Some(schema::<T>);
        self.wrap = Wrap::List;
        self
    }

    /// Answers 200 with a page of `T`: `{items: [T], next_cursor}`.
    pub fn page_of<T: JsonSchema>(mut self) -> Self {
        self.reply_type = Some(schema::<T>);
        self.wrap = Wrap::Page;
        self
    }

    /// Answers with a body that is not JSON (the metrics, the docs page).
    pub fn text(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self.reply = Some(json!({ "type": "string" }));
        self
    }

    /// Problem codes beyond those its shape implies (see [`Op::codes`]).
    pub fn problems(mut self, codes: &[&'static str]) -> Self {
        self.problems.extend_from_slice(codes);
        self
    }

    /// Where the route table registered it.
    pub fn at(mut self, method: &'static str, path: &'static str) -> Self {
        self.method = method;
        self.path = path;
        self
    }

    /// Every problem code it can answer: those its shape implies (body, query, path
    /// ids, access, writes) and the ones it named.
    pub fn codes(&self) -> Vec<&'static str> {
        let mut codes = vec!["rate_limited", "internal", "unavailable"];
        if self.body.is_some() {
            codes.extend(["malformed_request", "validation_failed", "payload_too_large", "request_timeout"]);
        }
        if self.query.is_some() {
            codes.push("validation_failed");
        }
        if self.path.contains('{') {
            codes.push("not_found");
        }
        match self.access {
            Access::Public => {}
            Access::SignedIn => codes.push("unauthenticated"),
            Access::Signature => codes.push("invalid_signature"),
            _ => codes.extend(["unauthenticated", "forbidden"]),
        }
        if self.method != "get" && self.access != Access::Public {
            codes.push("idempotency_key_reused");
        }
        codes.extend(self.problems.iter().copied());
        codes.sort_unstable();
        codes.dedup();
        codes
    }
}

/// The document, rendered once at start-up and served as is.
#[derive(Clone)]
pub struct Document(pub web::Bytes);

impl Document {
    pub fn new(title: &str, description: &str, ops: &[Op]) -> Self {
        Document(web::Bytes::from(render(title, description, ops).to_string()))
    }
}

/// The routes every table gets: the document, for machines and for people.
pub fn document_routes() -> Vec<Op> {
    vec![
        doc("This document", Access::Public)
            .reply(200, object(&[("openapi", "string")]))
            .at("get", "/openapi.json"),
        doc("This document, for people (works offline)", Access::Public).text("text/html").at("get", "/docs"),
    ]
}

/// `GET /openapi.json`.
pub async fn serve_json(doc: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(doc.0.clone())
}

/// `GET /docs`: the page and its script, compiled in.
pub async fn serve_docs() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(include_str!("docs.html"))
}

/// Registers a route table and describes it: each line is
/// `method "path" => handler, doc;` (optionally `limit BYTES` after the handler for a
/// body limit of its own). Expands to `configure` and `operations`, both including
/// `/openapi.json` and `/docs`.
#[macro_export]
macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:path $(, limit $limit:expr)? ; $doc:expr ; )*) => {
        /// Registers every route of the table, and the two that serve its document.
        pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
            $crate::api_route!(cfg, get, "/openapi.json", $crate::http::openapi::serve_json);
            $crate::api_route!(cfg, get, "/docs", $crate::http::openapi::serve_docs);
            $( $crate::api_route!(cfg, $method, $path, $handler $(, $limit)?); )*
        }

        /// The table's documentation, in registration order.
        pub fn operations() -> Vec<$crate::http::openapi::Op> {
            let mut ops = $crate::http::openapi::document_routes();
            ops.extend([ $( $doc.at(stringify!($method), $path) ),* ]);
            ops
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! api_route {
    ($cfg:ident, $method:ident, $path:literal, $handler:path) => {
        $cfg.route($path, actix_web::web::$method().to($handler));
    };
    ($cfg:ident, $method:ident, $path:literal, $handler:path, $limit:expr) => {
        $cfg.service(
            actix_web::web::resource($path)
                .app_data(actix_web::web::PayloadConfig::new($limit))
                .route(actix_web::web::$method().to($handler)),
        );
    };
}
