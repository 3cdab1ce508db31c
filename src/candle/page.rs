//! The candle page (`/candles` on the web port, 9002): server-rendered HTML in Portuguese that
//! works with JavaScript disabled, written in parts so the connection streams it (the head, the
//! form and the first candles reach the browser before the page is complete).
//!
//! Each flame is one small inline SVG animated by CSS alone (the seed's "about 400 bytes, no
//! JavaScript"); `prefers-reduced-motion` stops the flicker. The form posts to `/candles`; its
//! validation messages sit next to their fields (`aria-describedby`, `aria-invalid`), and a
//! candle lit answers with a redirect to the same page (post/redirect/get).
//!
//! Invariants: every piece of text from a client is escaped for its context (`html-escape`:
//! element text or a double-quoted attribute); the functions only append to the caller's buffer
//! and allocate nothing besides it.

use html_escape::{encode_double_quoted_attribute_to_string as attr, encode_text_to_string as text};
use std::fmt::Write;

/// The page's style: a dark wall, warm flames, contrast above WCAG AA for all text, and no
/// animation for readers who ask for reduced motion.
const STYLE: &str = "\
:root{color-scheme:dark}\
body{margin:0;font:16px/1.5 system-ui,sans-serif;background:#14110f;color:#f3ede4}\
header,main,footer{max-width:72rem;margin:0 auto;padding:1rem}\
h1{font-size:1.8rem;margin:.5rem 0}a{color:#ffd48a}\
.wall{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:1rem}\
.candle{background:#221c18;border-radius:.5rem;padding:.5rem;text-align:center}\
.candle p{margin:.2rem 0;overflow-wrap:anywhere}summary{cursor:pointer;font-size:.85rem;color:#ffd48a}.who{font-weight:600}.prayer{font-style:italic;color:#e9dccb}\
time{font-size:.85rem;color:#cbbfae}\
.f{transform-origin:16px 30px;animation:flicker 1.3s ease-in-out infinite alternate}\
.i{animation-duration:.9s}\
@keyframes flicker{from{transform:scale(1,1) rotate(-2deg)}to{transform:scale(.92,1.08) rotate(2deg)}}\
@media (prefers-reduced-motion:reduce){.f{animation:none}}\
form{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:.6rem 1rem;background:#221c18;padding:1rem;border-radius:.5rem}\
label{display:block;font-weight:600}\
input,select,textarea{width:100%;box-sizing:border-box;font:inherit;padding:.35rem;background:#fffaf2;color:#14110f;border:2px solid #8a7a66;border-radius:.3rem}\
[aria-invalid=true]{border-color:#ff8a80}.erro{color:#ffb4ab;margin:.2rem 0}\
.wide{grid-column:1/-1}button{font:inherit;font-weight:700;padding:.5rem 1.2rem;background:#ffd48a;color:#14110f;border:0;border-radius:.3rem}\
.ok{background:#1f3a24;padding:.6rem;border-radius:.3rem}\
table{border-collapse:collapse}td,th{padding:.15rem .6rem;text-align:left}";

/// One candle flame and its candle: about 400 bytes, animated by the CSS above.
pub const FLAME_SVG: &str = "<svg class=\"flame\" viewBox=\"0 0 32 64\" width=\"32\" height=\"64\" \
aria-hidden=\"true\"><path class=\"f\" d=\"M16 3C10 15 8 21 11 27c2 4 8 4 10 0 3-6 1-12-5-24z\" \
fill=\"#f6a623\"/><path class=\"f i\" d=\"M16 13c-3 7-4 10-2 13 1 2 3 2 4 0 2-3 1-6-2-13z\" \
fill=\"#fff3b0\"/><rect x=\"15.5\" y=\"27\" width=\"1\" height=\"5\" fill=\"#3b3b3b\"/><rect \
x=\"11\" y=\"31\" width=\"10\" height=\"31\" rx=\"2\" fill=\"#f4efe6\"/></svg>";

/// Characters of a prayer shown on the wall; a longer one shows the rest on request.
pub const PRAYER_SHOWN_CHARS: usize = 160;

/// The form's fields: (name, label in Portuguese, input type, autocomplete).
pub const FIELDS: [(&str, &str, &str, &str); 10] = [
    ("nome", "Nome", "text", "name"),
    ("email", "E-mail", "email", "email"),
    ("nascimento", "Data de nascimento", "date", "bday"),
    ("telefone", "Telefone (DDD + número, 11 dígitos)", "tel", "tel-national"),
    ("endereco", "Endereço", "text", "street-address"),
    ("bairro", "Bairro", "text", "address-level3"),
    ("cidade", "Cidade", "text", "address-level2"),
    ("uf", "Estado (UF; vazio fora do Brasil)", "text", "address-level1"),
    ("pais", "País (código ISO 3166-1 numérico; Brasil: 76)", "text", "off"),
    ("pedido", "Pedido de oração", "textarea", "off"),
];

/// What the form shows: the values a reader typed and the message of each field found wrong
/// (indexed as [`FIELDS`]).
#[derive(Debug, Default)]
pub struct FormView<'a> {
    /// Values, as [`FIELDS`]; empty when the form is new.
    pub values: [&'a str; 10],
    /// Has WhatsApp (the checkbox).
    pub whatsapp: bool,
    /// A message per field, or `None`.
    pub errors: [Option<&'a str>; 10],
    /// A message about the whole form (the store refused it, say), or `None`.
    pub general: Option<&'a str>,
}

/// A candle on the wall.
#[derive(Clone, Copy, Debug)]
pub struct CandleView<'a> {
    /// Its id (the anchor `c-<id>`).
    pub id: u64,
    /// When it was lit, Unix seconds.
    pub lit_at: u32,
    /// The first name of who lit it.
    pub first_name: &'a str,
    /// Where: "Cidade/UF", or the country.
    pub place: &'a str,
    /// The prayer.
    pub prayer: &'a str,
}

/// Writes the page's start: the document head and style, the heading, the notice of a candle just
/// lit (`lit`: its id) and the form.
pub fn write_start(out: &mut String, lit: Option<u64>, form: &FormView<'_>) {
    out.push_str("<!doctype html><html lang=\"pt-BR\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    out.push_str("<title>Velas acesas</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body><header><h1>Acenda uma vela</h1>");
    out.push_str("<p>Cada vela fica acesa por sete dias.</p>");
    if let Some(id) = lit {
        let _ = write!(
            out,
            "<p class=\"ok\" role=\"status\">Sua vela foi acesa. <a href=\"#c-{id}\">Ver a vela</a></p>"
        );
    }
    write_form(out, form);
    out.push_str("</header><main><h2>Velas acesas</h2><ul class=\"wall\">");
}

fn write_form(out: &mut String, form: &FormView<'_>) {
    out.push_str("<form method=\"post\" action=\"/candles\" accept-charset=\"utf-8\">");
    if let Some(message) = form.general {
        out.push_str("<p class=\"erro wide\" role=\"alert\">");
        text(message, out);
        out.push_str("</p>");
    }
    for (i, (name, label, kind, autocomplete)) in FIELDS.iter().enumerate() {
        let wide = if *kind == "textarea" { " class=\"wide\"" } else { "" };
        let _ = write!(out, "<div{wide}><label for=\"{name}\">{label}</label>");
        if *kind == "textarea" {
            let _ = write!(out, "<textarea id=\"{name}\" name=\"{name}\" rows=\"3\" maxlength=\"800\"");
            write_invalid(out, form.errors[i].is_some(), name);
            out.push('>');
            text(form.values[i], out);
            out.push_str("</textarea>");
        } else {
            let _ = write!(
                out,
                "<input id=\"{name}\" name=\"{name}\" type=\"{kind}\" autocomplete=\"{autocomplete}\""
            );
            write_invalid(out, form.errors[i].is_some(), name);
            out.push_str(" value=\"");
            attr(form.values[i], out);
            out.push_str("\">");
        }
        if let Some(message) = form.errors[i] {
            let _ = write!(out, "<p class=\"erro\" id=\"e-{name}\">");
            text(message, out);
            out.push_str("</p>");
        }
        out.push_str("</div>");
    }
    let checked = if form.whatsapp { " checked" } else { "" };
    let _ = write!(
        out,
        "<div><label><input type=\"checkbox\" name=\"whatsapp\" value=\"1\" style=\"width:auto\"{checked}> Tenho WhatsApp</label></div>"
    );
    out.push_str("<div class=\"wide\"><button type=\"submit\">Acender a vela</button></div></form>");
}

/// Marks a field invalid and names its message, when it has one.
fn write_invalid(out: &mut String, invalid: bool, name: &str) {
    if invalid {
        let _ = write!(out, " aria-invalid=\"true\" aria-describedby=\"e-{name}\"");
    }
}

/// Writes one candle of the wall; `now` (Unix seconds) says how long ago it was lit.
pub fn write_candle(out: &mut String, c: &CandleView<'_>, now: u32) {
    let _ = write!(out, "<li class=\"candle\" id=\"c-{}\">", c.id);
    out.push_str(FLAME_SVG);
    out.push_str("<p class=\"who\">");
    text(c.first_name, out);
    out.push_str("</p><p>");
    text(c.place, out);
    out.push_str("</p>");
    if !c.prayer.is_empty() {
        out.push_str("<p class=\"prayer\">");
        match c.prayer.char_indices().nth(PRAYER_SHOWN_CHARS) {
            // A long prayer: its start, and the rest behind a disclosure (no script needed).
            Some((cut, _)) => {
                text(&c.prayer[..cut], out);
                out.push_str("…</p><details><summary>Ler o pedido inteiro</summary><p class=\"prayer\">");
                text(c.prayer, out);
                out.push_str("</p></details>");
            }
            None => {
                text(c.prayer, out);
                out.push_str("</p>");
            }
        }
    }
    let _ = write!(out, "<time datetime=\"{}\">", iso8601(c.lit_at));
    write_age(out, now.saturating_sub(c.lit_at));
    out.push_str("</time></li>");
}

/// Writes the end of the wall (with a note when it is empty) and the counts by state (UF, count),
/// then the end of the page.
pub fn write_end(out: &mut String, shown: usize, live: u64, by_state: &[(&str, u64)]) {
    if shown == 0 {
        out.push_str("<li>Nenhuma vela acesa ainda. Acenda a primeira.</li>");
    }
    match live {
        1 => out.push_str("</ul><p>1 vela acesa agora.</p>"),
        n => {
            let _ = write!(out, "</ul><p>{n} velas acesas agora.</p>");
        }
    }
    out.push_str("<h2>Velas por estado</h2>");
    out.push_str(
        "<table><thead><tr><th scope=\"col\">Estado</th><th scope=\"col\">Velas</th></tr></thead><tbody>",
    );
    for (uf, count) in by_state.iter().filter(|(_, n)| *n > 0) {
        out.push_str("<tr><td>");
        text(uf, out);
        let _ = write!(out, "</td><td>{count}</td></tr>");
    }
    out.push_str(
        "</tbody></table></main><footer><p><a href=\"/candles\">Atualizar</a></p></footer></body></html>",
    );
}

/// "há 3 horas", in Portuguese.
fn write_age(out: &mut String, secs: u32) {
    let (n, one, many) = match secs {
        0..=59 => return out.push_str("agora"),
        60..=3599 => (secs / 60, "minuto", "minutos"),
        3600..=86_399 => (secs / 3600, "hora", "horas"),
        _ => (secs / 86_400, "dia", "dias"),
    };
    let _ = write!(out, "há {n} {}", if n == 1 { one } else { many });
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (the civil-from-days algorithm of Howard Hinnant's
/// date library: no calendar crate needed for one format).
pub fn iso8601(secs: u32) -> String {
    let days = i64::from(secs / 86_400);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// (year, month, day) of the day `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flame_is_about_four_hundred_bytes_and_needs_no_script() {
        assert!(FLAME_SVG.len() <= 450, "{} bytes", FLAME_SVG.len());
        let mut page = String::new();
        write_start(&mut page, Some(7), &FormView::default());
        let c = CandleView { id: 7, lit_at: 1_000, first_name: "Ana", place: "Recife/PE", prayer: "Saúde" };
        write_candle(&mut page, &c, 1_000 + 7_200);
        write_end(&mut page, 1, 1, &[("PE", 1), ("SP", 0)]);
        assert!(!page.contains("<script"), "no JavaScript");
        assert!(page.contains("prefers-reduced-motion"));
        assert!(page.contains("id=\"c-7\"") && page.contains("há 2 horas") && page.contains("Saúde"));
        assert!(page.contains("<td>PE</td><td>1</td>") && !page.contains("<td>SP</td>"));
        assert!(page.contains("1970-01-01T00:16:40Z"));
        let long = "é".repeat(PRAYER_SHOWN_CHARS + 1);
        let c = CandleView { id: 8, lit_at: 0, first_name: "B", place: "", prayer: &long };
        let mut one = String::new();
        write_candle(&mut one, &c, 0);
        assert!(one.contains(&format!("{}…</p><details>", "é".repeat(PRAYER_SHOWN_CHARS))), "{one}");
    }

    #[test]
    fn client_text_is_escaped_and_errors_sit_by_their_fields() {
        let mut page = String::new();
        let mut form = FormView::default();
        form.values[0] = "<script>alert(1)</script>";
        form.values[9] = "\"></textarea><b>";
        form.errors[3] = Some("O telefone deve ter 11 dígitos");
        write_start(&mut page, None, &form);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("</textarea><b>"), "{page}");
        assert!(page.contains("aria-invalid=\"true\" aria-describedby=\"e-telefone\""));
        assert!(page.contains("<p class=\"erro\" id=\"e-telefone\">O telefone deve ter 11 dígitos</p>"));
        let c = CandleView { id: 1, lit_at: 0, first_name: "<i>", place: "&", prayer: "" };
        write_candle(&mut page, &c, 30);
        assert!(page.contains("&lt;i&gt;") && page.contains("&amp;") && page.contains("agora"));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-25_567), (1900, 1, 1));
        assert_eq!(iso8601(1_796_000_000), "2026-11-30T00:53:20Z", "date -u -d @1796000000");
    }
}
