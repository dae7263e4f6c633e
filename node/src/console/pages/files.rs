//! 图片: an alert's snapshot and a rectification's photos, as the console shows them.
//!
//! - `GET /files/{ref}?holder=SCHOOL&kind=snapshot|evidence`: the image, from this node's store or
//!   cache or fetched through the tree from the school that holds it
//!   ([`crate::api::files::fetch_file`]); the person needs [`Action::ViewSubtree`], and the
//!   holder must be in this node's subtree or above it. When the image cannot be had the answer is
//!   still an image — a small SVG saying in Chinese what happened (404: it is gone or never was;
//!   503: the school cannot be reached now, with the reason; 403, 400) — so that an `<img>` shows
//!   the reason instead of a broken icon. Content-addressed images are cached by the browser for
//!   good; the notices are not (`no-store`), so a reload tries again.
//! - [`thumb`]: a thumbnail linking to the full image; [`say`]: a step's text with its file
//!   references as links.
//! - [`read_form`] and [`check_photos`]: a `multipart/form-data` form with photos, every photo
//!   checked before any is stored.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use protocol::files::{ContentType, FILE_BYTES_MAX, FileHash, FileKind, REF_PREFIX, file_ref, parse_ref};
use protocol::people::Action;
use serde::Deserialize;
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::files::{fetch_file, image};
use crate::console::PHOTOS_MAX;
use crate::console::pages::{Ctx, reason};
use crate::runtime::files::FileError;

#[derive(Debug, Default, Deserialize)]
pub struct FileQuery {
    /// The school that holds the file (default: this node).
    pub holder: Option<String>,
    /// snapshot or evidence: only the wording of a notice.
    pub kind: Option<String>,
}

/// What a file is called on a notice.
fn called(kind: Option<&str>) -> &'static str {
    match kind {
        Some("snapshot") => "截图",
        Some("evidence") => "整改照片",
        _ => "图片",
    }
}

/// `GET /files/{ref}`: see the module's doc.
pub async fn file(
    State(s): State<AdminState>,
    ctx: Ctx,
    Path(r): Path<String>,
    Query(q): Query<FileQuery>,
) -> Response {
    let what = called(q.kind.as_deref());
    let who = ctx.principal();
    if let Err(e) = who.require(&s, Action::ViewSubtree).await {
        return notice(
            StatusCode::FORBIDDEN,
            Look::Refused,
            "无权查看",
            &format!("您的角色不能查看{what}"),
            &reason(&e),
        );
    }
    let Some(hash) = parse_ref(&r) else {
        return notice(StatusCode::BAD_REQUEST, Look::Refused, "图片地址不对", "不是文件引用（sha256:…）", "");
    };
    let holder = match q.holder.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        None => s.me,
        Some(h) => match h.parse::<NodeId>() {
            Ok(n) => n,
            Err(e) => {
                let why = format!("保存单位“{h}”不对：{e}");
                return notice(StatusCode::BAD_REQUEST, Look::Refused, "图片地址不对", "", &why);
            }
        },
    };
    if let Err(e) = who.require_related(&s, holder).await {
        return notice(
            StatusCode::FORBIDDEN,
            Look::Refused,
            "无权查看",
            &format!("这张{what}不归本单位管辖"),
            &reason(&e),
        );
    }
    match fetch_file(&s, holder, hash).await {
        Ok((meta, bytes)) => image(meta, bytes),
        Err(FileError::Missing(why)) => {
            let title = if what == "截图" {
                "截图已过保存期限或不存在".to_string()
            } else {
                format!("{what}不存在")
            };
            notice(StatusCode::NOT_FOUND, Look::Missing, &title, "", &format!("原因：{why}"))
        }
        Err(FileError::Unavailable(why)) => {
            let title = if holder.tier() == Tier::School {
                "学校节点当前无法连接"
            } else {
                "下级节点当前无法连接"
            };
            let sub = format!("{what}暂不可查看，恢复连接后刷新即可");
            notice(StatusCode::SERVICE_UNAVAILABLE, Look::Unavailable, title, &sub, &format!("原因：{why}"))
        }
    }
}

/// The colours of a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// The holder cannot be reached now (amber): it may come back.
    Unavailable,
    /// Gone or never there (grey).
    Missing,
    /// Not allowed, or a wrong address (red).
    Refused,
}

/// A notice's size: the size a thumbnail is shown at, so its words are read at 1:1.
const W: f32 = 220.0;
const H: f32 = 140.0;
const PAD: f32 = 10.0;
const FONTS: &str = "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif";

/// An image in place of a file that cannot be shown: `title` in bold, `sub` below it, `why` in
/// small print (each escaped, wrapped to the width, cut with "…" when too long), with `status`.
fn notice(status: StatusCode, look: Look, title: &str, sub: &str, why: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")], notice_svg(look, title, sub, why))
        .into_response()
}

fn notice_svg(look: Look, title: &str, sub: &str, why: &str) -> String {
    let (bg, line, mark, ink) = match look {
        Look::Unavailable => ("#fef9ee", "#f0c674", "#d68910", "#7a5200"),
        Look::Missing => ("#f4f6f9", "#c3ccd6", "#8a96a3", "#1d2733"),
        Look::Refused => ("#fdecea", "#f5b7b1", "#c0392b", "#922b21"),
    };
    let glyph = match look {
        Look::Unavailable => "!",
        Look::Missing => "?",
        Look::Refused => "×",
    };
    // (text, font size, bold, colour, line height)
    let mut lines: Vec<(String, f32, bool, &str, f32)> = Vec::new();
    for l in wrap(title, 13.5, W - 2.0 * PAD) {
        lines.push((l, 13.5, true, ink, 18.0));
    }
    for l in wrap(sub, 11.5, W - 2.0 * PAD) {
        lines.push((l, 11.5, false, ink, 15.0));
    }
    let small_from = lines.len();
    for l in wrap(why, 10.0, W - 2.0 * PAD) {
        lines.push((l, 10.0, false, "#5f6b7a", 13.0));
    }
    // What fits below the mark (26 high, 8 below it); the small print is cut first.
    let (mark_h, room) = (34.0, H - 12.0 - 34.0);
    while lines.iter().map(|l| l.4).sum::<f32>() > room && lines.len() > 1 {
        lines.pop();
        let small = lines.len() > small_from;
        if let Some(last) = lines.last_mut().filter(|_| small) {
            // The mark takes the place of the line's last character, so the line keeps its width.
            let mut cut: String = last.0.trim_end_matches('…').to_string();
            cut.pop();
            last.0 = format!("{cut}…");
        }
    }
    // The mark and the lines together, in the middle.
    let used: f32 = lines.iter().map(|l| l.4).sum();
    let top = ((H - mark_h - used) / 2.0).max(6.0);
    let cy = top + 13.0;
    let mut y = top + mark_h;
    let mut text = String::new();
    for (l, size, bold, colour, height) in &lines {
        y += height;
        let weight = if *bold { " font-weight=\"700\"" } else { "" };
        text.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{size}\"{weight} fill=\"{colour}\" text-anchor=\"middle\">{}</text>",
            W / 2.0,
            y - height * 0.28,
            escape(l)
        ));
    }
    let full = [title, sub, why].iter().filter(|t| !t.is_empty()).copied().collect::<Vec<_>>().join("。");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{label}\" font-family=\"{FONTS}\"><title>{label}</title>\
         <rect x=\"0.5\" y=\"0.5\" width=\"{rw}\" height=\"{rh}\" rx=\"5\" fill=\"{bg}\" stroke=\"{line}\" stroke-dasharray=\"4 3\"/>\
         <circle cx=\"{cx}\" cy=\"{cy}\" r=\"13\" fill=\"none\" stroke=\"{mark}\" stroke-width=\"2.2\"/>\
         <text x=\"{cx}\" y=\"{gy}\" font-size=\"17\" font-weight=\"700\" fill=\"{mark}\" text-anchor=\"middle\">{glyph}</text>\
         {text}</svg>",
        label = escape(&full),
        rw = W - 1.0,
        rh = H - 1.0,
        cx = W / 2.0,
        gy = cy + 6.0,
    )
}

/// Escapes text for SVG (XML): markup characters as entities, control characters as spaces (XML
/// has no place for them).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// About how wide `c` is at font size 1 (CJK and full-width forms a whole em, the rest about half).
fn em(c: char) -> f32 {
    if c as u32 >= 0x2E80 { 1.0 } else { 0.58 }
}

/// `s` in lines no wider than `width` at `size` (at most 200 characters of it): broken between
/// CJK characters or at spaces, a run of Latin letters and digits (`130102-S0001`) kept whole
/// unless it is longer than a line.
fn wrap(s: &str, size: f32, width: f32) -> Vec<String> {
    let s: String = s.chars().take(200).collect();
    let mut tokens: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let word = c.is_ascii() && c != ' ';
        let prev_word = s[..i].chars().next_back().is_some_and(|p| p.is_ascii() && p != ' ');
        if i > start && !(word && prev_word) {
            tokens.push(&s[start..i]);
            start = i;
        }
    }
    tokens.push(&s[start..]);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut w = 0.0;
    let mut push = |line: &mut String, w: &mut f32| {
        let done = std::mem::take(line);
        if !done.trim().is_empty() {
            lines.push(done.trim_end().to_string());
        }
        *w = 0.0;
    };
    for tok in tokens.into_iter().filter(|t| !t.is_empty()) {
        let tw: f32 = tok.chars().map(|c| em(c) * size).sum();
        if w + tw > width && !line.is_empty() {
            push(&mut line, &mut w);
            if tok == " " {
                continue;
            }
        }
        if tw <= width {
            line.push_str(tok);
            w += tw;
            continue;
        }
        for c in tok.chars() {
            let cw = em(c) * size;
            if w + cw > width && !line.is_empty() {
                push(&mut line, &mut w);
            }
            line.push(c);
            w += cw;
        }
    }
    push(&mut line, &mut w);
    lines
}

/// Where the console shows a file held at `holder`.
pub fn href(hash: &FileHash, holder: NodeId, kind: FileKind) -> String {
    format!("/files/{}?holder={holder}&kind={}", file_ref(hash), kind.as_str())
}

/// A thumbnail of a file held at `holder` that opens the full image (in a new tab).
pub fn thumb(hash: &FileHash, holder: NodeId, kind: FileKind, alt: &str) -> Markup {
    let url = href(hash, holder, kind);
    html! {
        a.thumb href=(url) target="_blank" rel="noopener" title="点击查看原图" {
            img src=(url) alt=(alt) loading="lazy" decoding="async";
        }
    }
}

/// Where the file references (`sha256:` and 64 hex digits) stand in `text`: `(start, end, hash)`.
fn ref_spans(text: &str) -> Vec<(usize, usize, FileHash)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(REF_PREFIX).map(|i| from + i) {
        let end = at + REF_PREFIX.len() + 64;
        match text.get(at..end).and_then(parse_ref) {
            Some(hash) => {
                out.push((at, end, hash));
                from = end;
            }
            None => from = at + REF_PREFIX.len(),
        }
    }
    out
}

/// The file references in `text`, in order (what [`say`] links as 照片 1, 照片 2, …).
pub fn refs_in(text: &str) -> Vec<FileHash> {
    ref_spans(text).into_iter().map(|(_, _, hash)| hash).collect()
}

/// A step's text with the file references in it (`sha256:` and 64 hex digits) as links to the
/// images (照片 1, 照片 2, …); the rest as text.
pub fn say(text: &str, holder: NodeId, kind: FileKind) -> Markup {
    enum Seg<'a> {
        Text(&'a str),
        Photo(FileHash, usize),
    }
    let mut segs = Vec::new();
    let mut from = 0;
    for (n, (at, end, hash)) in ref_spans(text).into_iter().enumerate() {
        segs.push(Seg::Text(&text[from..at]));
        segs.push(Seg::Photo(hash, n + 1));
        from = end;
    }
    segs.push(Seg::Text(&text[from..]));
    html! {
        @for (i, seg) in segs.iter().enumerate() {
            @match seg {
                // ", " between two photos says nothing.
                Seg::Text(", ") if [i.wrapping_sub(1), i + 1].iter().all(|j| matches!(segs.get(*j), Some(Seg::Photo(..)))) => { " " },
                Seg::Text(t) => { (t) },
                Seg::Photo(hash, n) => {
                    a.fileref href=(href(hash, holder, kind)) target="_blank" rel="noopener" title="点击查看照片" { "照片 " (n) }
                },
            }
        }
    }
}

/// A photo as it came in a form.
#[derive(Debug)]
pub struct Photo {
    /// The file's name on the person's device (cleaned, shortened), for messages.
    pub name: String,
    /// The form field it came in: `photo`, or a spot check's `snapshot-staff-attire`.
    pub field: String,
    pub bytes: Bytes,
}

/// A `multipart/form-data` form: its text fields (the first of each name) and its photos (the
/// parts named `photo`, or `snapshot-…` in a spot check's form, that carry a file).
#[derive(Debug, Default)]
pub struct UploadForm {
    pub fields: std::collections::BTreeMap<String, String>,
    pub photos: Vec<Photo>,
}

impl UploadForm {
    pub fn text(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }
}

/// Most parts of a form with photos (its fields, and its file inputs, chosen or not).
const PARTS_MAX: usize = 64;
/// Largest text field of a form with photos.
const TEXT_BYTES_MAX: usize = 16 * 1024;

/// Reads a form with photos (the body is already in memory, within the upload's limit). A file
/// input left empty sends a part with no name and no bytes: it is no photo.
pub async fn read_form(mut form: Multipart) -> Result<UploadForm, String> {
    let broken =
        |e: axum::extract::multipart::MultipartError| format!("表单内容不完整，请重新提交（{}）", e.body_text());
    let mut out = UploadForm::default();
    let mut parts = 0;
    while let Some(field) = form.next_field().await.map_err(broken)? {
        parts += 1;
        if parts > PARTS_MAX {
            return Err(format!("表单的项目过多（超过 {PARTS_MAX} 项）"));
        }
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(clean_name);
        let bytes = field.bytes().await.map_err(broken)?;
        match file_name {
            Some(file_name) if name == "photo" || name.starts_with("snapshot-") => {
                if !(file_name.is_empty() && bytes.is_empty()) {
                    out.photos.push(Photo { name: file_name, field: name, bytes });
                }
            }
            Some(_) => {}
            None => {
                if bytes.len() > TEXT_BYTES_MAX {
                    return Err(format!("“{name}”一项的内容过长"));
                }
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| format!("“{name}”一项不是文字"))?;
                out.fields.entry(name).or_insert(text);
            }
        }
    }
    Ok(out)
}

/// A file name from a device as a message may name it: no control characters, at most 40 chars.
fn clean_name(name: &str) -> String {
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = name.chars().filter(|c| !c.is_control()).take(40).collect();
    if name.chars().count() > 40 { format!("{clean}…") } else { clean }
}

/// Checks every photo before any is stored: at most [`PHOTOS_MAX`], each a JPEG or PNG (by its
/// bytes) of at most [`FILE_BYTES_MAX`]. The reason names each photo that is refused.
pub fn check_photos(photos: &[Photo]) -> Result<(), String> {
    let mut why = Vec::new();
    if photos.len() > PHOTOS_MAX {
        why.push(format!("最多 {PHOTOS_MAX} 张照片，这次选了 {} 张", photos.len()));
    }
    for (i, p) in photos.iter().enumerate() {
        let name = if p.name.is_empty() { format!("第 {} 张照片", i + 1) } else { format!("“{}”", p.name) };
        if p.bytes.is_empty() {
            why.push(format!("{name}是空文件"));
        } else if p.bytes.len() > FILE_BYTES_MAX {
            why.push(format!(
                "{name}有 {:.1} MiB，超过每张 {} MiB 的上限",
                p.bytes.len() as f64 / f64::from(1u32 << 20),
                FILE_BYTES_MAX >> 20
            ));
        } else if ContentType::sniff(&p.bytes).is_none() {
            why.push(format!("{name}不是 JPEG 或 PNG 图片"));
        }
    }
    if why.is_empty() { Ok(()) } else { Err(why.join("；")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_escaped_wrapped_and_fits() {
        let svg = notice_svg(Look::Unavailable, "学校节点当前无法连接", "截图暂不可查看", "<script>&\"'\u{7}</script>");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;&amp;&quot;&#39; &lt;/script&gt;"), "{svg}");
        let long = "很长的原因".repeat(30);
        let svg = notice_svg(Look::Missing, "截图已过保存期限或不存在", "保存它的学校已没有这个文件", &long);
        assert!(svg.contains('…'), "a long reason is cut: {svg}");
        let last_y = svg
            .match_indices(" y=\"")
            .filter_map(|(at, _)| svg[at + 4..].split('"').next()?.parse::<f32>().ok())
            .fold(0.0, f32::max);
        assert!(last_y < H, "every line inside the image: {last_y}");
        let why = "原因：130102-S0001 当前联系不上：130102 没有通往它的可用连接";
        let lines = wrap(why, 10.0, W - 2.0 * PAD);
        assert_eq!(lines.concat().replace(' ', ""), why.replace(' ', ""), "{lines:?}");
        for pair in lines.windows(2) {
            let (end, start) = (pair[0].chars().next_back().unwrap(), pair[1].chars().next().unwrap());
            assert!(!(end.is_ascii_alphanumeric() && start.is_ascii_alphanumeric()), "a code broken: {lines:?}");
        }
        for line in wrap(&long, 10.0, W - 2.0 * PAD) {
            assert!(line.chars().map(em).sum::<f32>() * 10.0 <= W - 2.0 * PAD, "{line}");
        }
    }

    #[test]
    fn references_in_a_step_become_links_and_the_rest_stays_text() {
        let h: FileHash = [7; 32];
        let school: NodeId = "130102-S0001".parse().unwrap();
        let text = format!("已灭鼠\n佐证材料: 记录表, {}, {}, sha256:nothex", file_ref(&h), file_ref(&[8; 32]));
        let out = say(&text, school, FileKind::Evidence).into_string();
        assert!(out.contains("照片 1") && out.contains("照片 2"), "{out}");
        assert!(out.contains(&format!("/files/{}?holder=130102-S0001&amp;kind=evidence", file_ref(&h))), "{out}");
        assert!(out.contains("佐证材料: 记录表, ") && out.contains("sha256:nothex"), "{out}");
        assert_eq!(say("<b>", school, FileKind::Evidence).into_string(), "&lt;b&gt;");
    }

    #[test]
    fn photos_are_checked_all_before_any_is_stored() {
        let png = Bytes::from_static(b"\x89PNG\r\n\x1a\n0000");
        let photo = |name: &str, bytes: Bytes| Photo { name: name.into(), field: "photo".into(), bytes };
        assert!(check_photos(&[photo("a.png", png.clone())]).is_ok());
        let why = check_photos(&[
            photo("a.png", png.clone()),
            photo("notes.txt", Bytes::from_static(b"hello")),
            photo("", Bytes::new()),
            photo("big.jpg", Bytes::from(vec![0xFF; FILE_BYTES_MAX + 1])),
        ])
        .unwrap_err();
        assert!(why.contains("“notes.txt”不是 JPEG 或 PNG 图片"), "{why}");
        assert!(why.contains("第 3 张照片是空文件"), "{why}");
        assert!(why.contains("“big.jpg”有 4.0 MiB，超过每张 4 MiB 的上限"), "{why}");
        let many: Vec<Photo> = (0..PHOTOS_MAX + 1).map(|i| photo(&format!("{i}.png"), png.clone())).collect();
        assert!(check_photos(&many).unwrap_err().contains("这次选了 5 张"));
        assert_eq!(clean_name("C:\\photos\\a\u{1}b.jpg"), "ab.jpg");
    }
}
