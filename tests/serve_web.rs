//! The candle page on the web port, in a real browser with JavaScript disabled: headless
//! Chromium driven over the DevTools protocol (its own input events and DOM commands: no script
//! runs in the page). The wall shows candles lit before, each flame drawn (a screenshot's warm
//! pixels counted), the form posts, shows its validation messages by their fields, and lights a
//! candle that the page then shows. Screenshots are kept under the test's output directory
//! (`target/tmp/serve_web/`). Chromium is required: the test fails when it is missing.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::*;
use serde_json::json;
use std::process::Command;

/// Pixels of the flame's outer colour (#f6a623), give or take the edges' blending.
fn flame_pixels((pixels, stride): &(Vec<u8>, usize)) -> usize {
    pixels
        .chunks_exact(*stride)
        .filter(|p| p[0].abs_diff(246) < 12 && p[1].abs_diff(166) < 20 && p[2].abs_diff(35) < 30)
        .count()
}

/// Posts a form to the web port with curl (candles lit before the browser comes).
fn post_form(web: u16, fields: &[(&str, &str)]) -> String {
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code} %{redirect_url}".into(),
    ];
    for (k, v) in fields {
        args.push("--data-urlencode".into());
        args.push(format!("{k}={v}"));
    }
    args.push(format!("http://127.0.0.1:{web}/candles"));
    let out = Command::new("curl").args(&args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_candle_page_works_in_chromium_without_javascript() {
    let dir = disk_temp_dir("serve-web");
    let port = free_udp_port();
    let web = free_tcp_port();
    let config = format!(
        "{}\n[tcp]\nweb_listen = [\"127.0.0.1:{web}\"]\n",
        kv_node_config(port, "vigil-data", 100_000)
    );
    let _server = Server::start(&dir, &config);
    let prayer_long = "Senhor, ".repeat(100);
    for (name, city, uf, prayer) in [
        ("Maria Eduarda Gonçalves de Albuquerque Cavalcanti", "Recife", "PE", prayer_long.as_str()),
        ("José da Silva", "São Paulo", "SP", "Pela saúde da família"),
        ("Ana Luíza", "Salvador", "BA", "Obrigada"),
    ] {
        let got = post_form(
            web,
            &[("nome", name), ("nascimento", "1980-05-01"), ("cidade", city), ("uf", uf), ("pedido", prayer)],
        );
        assert!(got.starts_with("303 "), "lit: {got}");
    }

    let out = browser::output_dir("serve_web");
    let mut b = browser::Browser::launch(&dir.join("chromium-profile"));
    b.call("Emulation.setScriptExecutionDisabled", json!({"value": true}));
    b.call("Page.enable", json!({}));
    let page = format!("http://127.0.0.1:{web}/candles");
    b.goto(&page);
    let html = b.html();
    assert_eq!(html.matches("class=\"flame\"").count(), 3, "three candles on the wall");
    assert!(html.contains("Recife/PE") && html.contains("Maria") && html.contains("Pela saúde da família"));
    assert!(html.contains("3 velas acesas agora"));
    assert!(html.contains("Ler o pedido inteiro"), "the long prayer is behind a disclosure");
    let wall = b.screenshot(&out.join("candles.png"));
    assert!(flame_pixels(&wall) > 3 * 40, "the flames are drawn: {} flame pixels", flame_pixels(&wall));

    // The form, with mistakes: the same page (422) with each message by its field.
    b.fill("#nome", "Ana");
    b.fill("#nascimento", "2090-01-01");
    b.fill("#telefone", "1234");
    b.fill("#cidade", "Recife");
    b.fill("#uf", "PE");
    b.click("button[type=submit]");
    let html = b.html();
    assert!(html.contains("id=\"e-nascimento\">A data de nascimento está no futuro."), "{html}");
    assert!(html.contains("id=\"e-telefone\">O telefone deve ter 11 dígitos"), "{html}");
    assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"e-telefone\""));
    assert!(html.contains("value=\"1234\""), "the values typed are kept");
    b.screenshot(&out.join("form-errors.png"));

    // Corrected: lit, and the page after the redirect says so and shows it.
    b.fill("#nascimento", "1990-01-01");
    b.fill("#telefone", "81987654321");
    b.fill("#pedido", "Paz para todos");
    b.click("button[type=submit]");
    let html = b.html();
    assert!(html.contains("Sua vela foi acesa"), "{html}");
    assert!(html.contains("Paz para todos"));
    assert!(html.contains("4 velas acesas agora"));
    b.screenshot(&out.join("lit.png"));
}
