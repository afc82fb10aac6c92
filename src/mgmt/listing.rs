//! Listings as RabbitMQ's API pages them: `columns=`, `sort=` (dotted keys
//! reach into objects) and `sort_reverse=`, `name=` filtering
//! (case-insensitive; `use_regex=true` for a regular expression),
//! `page=`/`page_size=`.

use super::api::q;
use super::http::{Request, Response};
use serde_json::{json, Value};

/// Apply `columns=`, `sort=`, and `page=`/`page_size=` as RabbitMQ does.
pub fn list(req: &Request, items: Vec<Value>) -> Response {
    list_with(req, items, |v| v["name"].as_str().unwrap_or(""), |v| v)
}

/// [`list`] over rows of any type, turned into JSON by `json` only where
/// the answer needs it: without `sort=`, rows are filtered by `name` and
/// paged first, so one page of 100 out of 10,000 queues builds 100 JSON
/// objects, not 10,000 (the listing speed RabbitMQ's paged UI relies on).
/// With `sort=` (any key, dotted ones included) every row is converted
/// first. Rows come in the listing's natural order (callers sort them).
pub fn list_with<T>(
    req: &Request,
    mut items: Vec<T>,
    name: impl Fn(&T) -> &str,
    json: impl Fn(T) -> Value,
) -> Response {
    if let Some(sort) = q(req, "sort") {
        let mut values: Vec<Value> = items.into_iter().map(json).collect();
        // A dotted key reaches into objects (`message_stats.publish`).
        let pointer = format!("/{}", sort.replace('.', "/"));
        let null = Value::Null;
        let key = |v: &Value| v.pointer(&pointer).unwrap_or(&null).clone();
        values.sort_by(|a, b| {
            let (x, y) = (&key(a), &key(b));
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.to_string().cmp(&y.to_string()),
            }
        });
        if q(req, "sort_reverse").as_deref() == Some("true") {
            values.reverse();
        }
        return filter_and_page(req, values, |v| v["name"].as_str().unwrap_or(""), |v| v);
    }
    if q(req, "sort_reverse").as_deref() == Some("true") {
        items.reverse();
    }
    filter_and_page(req, items, name, json)
}

/// `name=` filtering, `columns=` and paging of sorted rows.
fn filter_and_page<T>(
    req: &Request,
    mut items: Vec<T>,
    name: impl Fn(&T) -> &str,
    json: impl Fn(T) -> Value,
) -> Response {
    let total = items.len();
    // As RabbitMQ 3.10 (recorded): `name=` filters paged listings only, as
    // a case-insensitive substring, or with `use_regex=true` a
    // case-insensitive regular expression (KEDA's queue scaler relies on
    // it); an invalid one is "Pagination parameters are invalid".
    let pattern = q(req, "page").and_then(|_| q(req, "name"));
    if let Some(pattern) = pattern {
        if q(req, "use_regex").as_deref() == Some("true") {
            let re = regex::RegexBuilder::new(&pattern)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build();
            let Ok(re) = re else {
                return Response::error(400, "bad_request", "Pagination parameters are invalid");
            };
            items.retain(|i| re.is_match(name(i)));
        } else {
            let pattern = pattern.to_lowercase();
            items.retain(|i| name(i).to_lowercase().contains(&pattern));
        }
    }
    let cols = q(req, "columns");
    let cols: Option<Vec<&str>> = cols.as_deref().map(|c| c.split(',').collect());
    let render = |i: T| match &cols {
        Some(cols) => project(&json(i), cols),
        None => json(i),
    };
    let Some(page) = q(req, "page") else {
        return Response::json(200, &Value::Array(items.into_iter().map(render).collect()));
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
        .map(render)
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
