//! The console's static files, embedded at build time: the product fetches nothing at run time.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// `GET /assets/{file}`: an embedded file, cached for a day.
pub async fn asset(Path(file): Path<String>) -> Response {
    match Assets::get(&file) {
        Some(f) => {
            let mime = match file.rsplit('.').next() {
                Some("css") => "text/css; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("txt") => "text/plain; charset=utf-8",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "max-age=86400")], f.data.into_owned())
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "没有这个文件").into_response(),
    }
}
