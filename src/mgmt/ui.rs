//! The web management UI: static files embedded in the binary (`ui/` at the
//! crate root, through `rust-embed`), served at `/` and under `/ui/`.
//!
//! Owns: nothing but file lookup. The pages are a single-page app that
//! logs in with the same users and calls the same `/api` routes (and thus
//! the same authorisation gate) as any other client; the files themselves
//! hold no data and are public, as RabbitMQ's management UI's are. No
//! Node build step: the files are written by hand, the one library
//! (uPlot, for the rate charts) is vendored under `ui/vendor/` with its
//! licence.

use super::http::Response;

#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Assets;

/// `GET /` (the app's page) or `GET /ui/<path>`: the embedded file with
/// its content type, or None when there is no such file (the caller
/// answers 404).
pub fn asset(path: &str) -> Option<Response> {
    let name = match path {
        "/" | "/index.html" => "index.html",
        p => p.strip_prefix("/ui/")?,
    };
    let file = Assets::get(name)?;
    let ctype = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    };
    Some(Response {
        status: 200,
        content_type: ctype,
        body: file.data.into_owned(),
        // The page always asks for the current app; assets may be cached
        // briefly (a new broker version ships new files).
        headers: vec![(
            "Cache-Control",
            if name == "index.html" {
                "no-cache".to_string()
            } else {
                "max-age=300".to_string()
            },
        )],
    })
}
