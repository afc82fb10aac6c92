//! Output: aligned text tables or JSON, with columns chosen by the API's
//! JSON field names (dotted for nested fields, e.g. `message_stats.publish`).

use crate::client::{Failure, Result};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header line.
    Table,
    /// A JSON array of objects (only the chosen columns, nested as in the API).
    Json,
}

pub struct Output {
    pub format: Format,
    pub headers: bool,
}

/// The value at a dotted path (`a.b.c`), if every step exists.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// One table cell: strings bare, null/missing empty, containers as JSON.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.iter().all(|x| x.is_string()) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(","),
        Some(x) => x.to_string(),
    }
}

/// Reject a column that no item has (typos), unless there is nothing to
/// check against. Columns under `message_stats` are exempt: RabbitMQ leaves
/// that object out of idle objects.
pub fn check_columns(items: &[Value], cols: &[String]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    for c in cols {
        if c.starts_with("message_stats") {
            continue;
        }
        if !items.iter().any(|i| lookup(i, c).is_some()) {
            let mut known: Vec<&str> = items
                .iter()
                .filter_map(|i| i.as_object())
                .flat_map(|m| m.keys().map(|k| k.as_str()))
                .collect();
            known.sort_unstable();
            known.dedup();
            return Err(Failure::usage(format!(
                "unknown column '{c}'; this listing has: {}",
                known.join(" ")
            )));
        }
    }
    Ok(())
}

/// Keep only `cols` of `item`, nested as in the original.
fn project(item: &Value, cols: &[String]) -> Value {
    let mut out = Map::new();
    for c in cols {
        let Some(v) = lookup(item, c) else { continue };
        if item.get(c).is_some() {
            out.insert(c.clone(), v.clone());
            continue;
        }
        let parts: Vec<&str> = c.split('.').collect();
        let mut m = &mut out;
        for p in &parts[..parts.len() - 1] {
            let e = m
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                *e = Value::Object(Map::new());
            }
            m = e.as_object_mut().expect("object");
        }
        m.insert(parts[parts.len() - 1].to_string(), v.clone());
    }
    Value::Object(out)
}

/// Format `rows` (each a list of cells) under `header` as aligned columns.
pub fn render_table(header: &[String], rows: &[Vec<String>], headers: bool) -> String {
    let mut widths: Vec<usize> = if headers {
        header.iter().map(|h| h.chars().count()).collect()
    } else {
        vec![0; header.len()]
    };
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    if headers {
        line(header);
    }
    for r in rows {
        line(r);
    }
    out
}

impl Output {
    /// Print a listing with the chosen columns.
    pub fn list(&self, items: &[Value], cols: &[String]) -> Result<()> {
        check_columns(items, cols)?;
        match self.format {
            Format::Json => {
                let v: Vec<Value> = items.iter().map(|i| project(i, cols)).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serialise JSON")
                );
            }
            Format::Table => {
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| cols.iter().map(|c| cell(lookup(i, c))).collect())
                    .collect();
                print!("{}", render_table(cols, &rows, self.headers));
            }
        }
        Ok(())
    }

    /// Print a single JSON document (JSON format) or key/value lines.
    pub fn document(&self, v: &Value, pairs: &[(String, String)]) {
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(v).expect("serialise")),
            Format::Table => {
                let rows: Vec<Vec<String>> = pairs
                    .iter()
                    .map(|(k, v)| vec![format!("{k}:"), v.clone()])
                    .collect();
                print!("{}", render_table(&["".into(), "".into()], &rows, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_columns_reach_nested_fields() {
        let q =
            json!({"name": "q", "message_stats": {"publish": 3, "publish_details": {"rate": 0.5}}});
        assert_eq!(lookup(&q, "message_stats.publish"), Some(&json!(3)));
        assert_eq!(
            lookup(&q, "message_stats.publish_details.rate"),
            Some(&json!(0.5))
        );
        assert_eq!(lookup(&q, "message_stats.ack"), None);
        let p = project(&q, &["name".into(), "message_stats.publish".into()]);
        assert_eq!(p, json!({"name": "q", "message_stats": {"publish": 3}}));
    }

    #[test]
    fn tables_are_aligned() {
        let t = render_table(
            &["name".into(), "messages".into()],
            &[
                vec!["a-long-name".into(), "1".into()],
                vec!["b".into(), "22".into()],
            ],
            true,
        );
        assert_eq!(
            t,
            "name         messages\na-long-name  1\nb            22\n"
        );
    }

    #[test]
    fn unknown_columns_are_rejected() {
        let items = vec![json!({"name": "q"})];
        assert!(check_columns(&items, &["name".into()]).is_ok());
        assert!(check_columns(&items, &["message_stats.publish".into()]).is_ok());
        let e = check_columns(&items, &["nmae".into()]).unwrap_err();
        assert_eq!(e.code, 64);
        assert!(check_columns(&[], &["nmae".into()]).is_ok());
    }
}
