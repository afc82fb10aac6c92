//! Listings as RabbitMQ's API pages them: `columns=`, `sort=` (dotted keys
//! reach into objects) and `sort_reverse=`, `name=` filtering
//! (case-insensitive; `use_regex=true` for a regular expression),
//! `page=`/`page_size=`.

use super::api::q;
use super::http::{Request, Response};
use serde_json::{json, Value};

/// Apply `columns=`, `sort=`, and `page=`/`page_size=` as RabbitMQ does.
pub fn list(req: &Request, mut items: Vec<Value>) -> Response {
    if let Some(sort) = q(req, "sort") {
        // A dotted key reaches into objects (`message_stats.publish`).
        let pointer = format!("/{}", sort.replace('.', "/"));
        let null = Value::Null;
        let key = |v: &Value| v.pointer(&pointer).unwrap_or(&null).clone();
        items.sort_by(|a, b| {
            let (x, y) = (&key(a), &key(b));
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.to_string().cmp(&y.to_string()),
            }
        });
        if q(req, "sort_reverse").as_deref() == Some("true") {
            items.reverse();
        }
    }
    let total = items.len();
    // As RabbitMQ 3.10 (recorded): `name=` filters paged listings only, as
    // a case-insensitive substring, or with `use_regex=true` a
    // case-insensitive regular expression (KEDA's queue scaler relies on
    // it); an invalid one is "Pagination parameters are invalid".
    let name = q(req, "page").and_then(|_| q(req, "name"));
    if let Some(name) = name {
        if q(req, "use_regex").as_deref() == Some("true") {
            let re = regex::RegexBuilder::new(&name)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build();
            let Ok(re) = re else {
                return Response::error(400, "bad_request", "Pagination parameters are invalid");
            };
            items.retain(|i| i["name"].as_str().is_some_and(|n| re.is_match(n)));
        } else {
            let name = name.to_lowercase();
            items.retain(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| n.to_lowercase().contains(&name))
            });
        }
    }
    if let Some(cols) = q(req, "columns") {
        let cols: Vec<&str> = cols.split(',').collect();
        items = items.into_iter().map(|i| project(&i, &cols)).collect();
    }
    let Some(page) = q(req, "page") else {
        return Response::json(200, &Value::Array(items));
    };
    let size = q(req, "page_size").map(|p| p.parse::<usize>().ok());
    let (page, size) = match (page.parse::<usize>().ok(), size) {
        (Some(p), None) if p >= 1 => (p, 100),
        (Some(p), Some(Some(s))) if p >= 1 && (1..=500).contains(&s) => (p, s),
        _ => {
            return Response::error(
                400,
                "invalid_pagination_parameters",
                format!("Invalid pagination parameters: page number {page}"),
            )
        }
    };
    let filtered = items.len();
    let page_count = filtered.div_ceil(size);
    if page > 1 && page > page_count {
        return Response::error(
            400,
            "page_out_of_range",
            format!("Page out of range, page: {page} page size: {size}, len: {filtered}"),
        );
    }
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    Response::json(
        200,
        &json!({"filtered_count": filtered, "item_count": slice.len(), "items": slice, "page": page,
                "page_count": page_count, "page_size": size, "total_count": total}),
    )
}

fn project(v: &Value, cols: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for c in cols {
        let mut parts = c.split('.');
        let first = parts.next().unwrap_or("");
        let Some(x) = v.get(first) else { continue };
        match parts.next() {
            None => {
                out.insert(first.to_string(), x.clone());
            }
            Some(sub) => {
                if let Some(y) = x.get(sub) {
                    let e = out.entry(first.to_string()).or_insert_with(|| json!({}));
                    e[sub] = y.clone();
                }
            }
        }
    }
    Value::Object(out)
}
