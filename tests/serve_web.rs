//! The candle page on the web port, in a real browser with JavaScript disabled: headless
//! Chromium driven over the DevTools protocol (its own input events and DOM commands: no script
//! runs in the page). The wall shows candles lit before, each flame drawn (a screenshot's warm
//! pixels counted), the form posts, shows its validation messages by their fields, and lights a
//! candle that the page then shows. Screenshots are kept under the test's output directory
//! (`target/tmp/serve_web/`). Chromium is required: the test fails when it is missing.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless Chromium and its page's DevTools connection.
struct Browser {
    child: Child,
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
    events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch(profile: &Path) -> Browser {
        let found = Command::new("sh").args(["-c", "command -v chromium"]).output().expect("sh");
        assert!(
            found.status.success(),
            "chromium is missing: install it (scripts/lib.sh's VIGIL_PACKAGES has it)"
        );
        let mut child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .args(["--remote-debugging-port=0", "--window-size=1100,1400", "--force-device-scale-factor=1"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.trim().parse::<u16>().ok());
                break;
            }
            line.clear();
        }
        let port = port.expect("chromium said where DevTools listens");
        // The rest of its log is drained, so that a full pipe never stalls it.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let targets: Value = serde_json::from_str(&http_get(port, "/json/list")).unwrap_or(Value::Null);
            let page = targets.as_array().and_then(|t| {
                t.iter().find(|t| t["type"] == "page").and_then(|t| t["webSocketDebuggerUrl"].as_str())
            });
            if let Some(url) = page {
                break url.to_string();
            }
            assert!(Instant::now() < deadline, "chromium has no page target");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools WebSocket");
        Browser { child, ws, next: 1, events: Vec::new() }
    }

    /// Sends a DevTools command and waits for its result (events that come first are kept).
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(tungstenite::Message::Text(msg)).unwrap();
        loop {
            let v = self.read();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn read(&mut self) -> Value {
        match self.ws.read().expect("a DevTools message") {
            tungstenite::Message::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("unexpected DevTools message {other:?}"),
        }
    }

    /// Waits for the page's load event (kept or still to come).
    fn loaded(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = self.events.iter().position(|e| e["method"] == "Page.loadEventFired") {
                self.events.drain(..=at);
                return;
            }
            assert!(Instant::now() < deadline, "the page did not load");
            let v = self.read();
            self.events.push(v);
        }
    }

    fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.loaded();
    }

    fn node(&mut self, selector: &str) -> Value {
        let root = self.call("DOM.getDocument", json!({"depth": 0}))["root"]["nodeId"].clone();
        let node =
            self.call("DOM.querySelector", json!({"nodeId": root, "selector": selector}))["nodeId"].clone();
        assert_ne!(node, 0, "no {selector} on the page");
        node
    }

    /// Sets a field's value as a reader would have typed it.
    fn fill(&mut self, selector: &str, value: &str) {
        let node = self.node(selector);
        if selector == "#pedido" {
            self.call("DOM.focus", json!({"nodeId": node}));
            self.call("Input.insertText", json!({"text": value}));
        } else {
            self.call("DOM.setAttributeValue", json!({"nodeId": node, "name": "value", "value": value}));
        }
    }

    /// Clicks the centre of an element with the mouse, and waits for the page that follows.
    fn click(&mut self, selector: &str) {
        let node = self.node(selector);
        self.call("DOM.scrollIntoViewIfNeeded", json!({"nodeId": node}));
        let quad = self.call("DOM.getContentQuads", json!({"nodeId": node}))["quads"][0].clone();
        let xs: Vec<f64> = (0..4).map(|i| quad[2 * i].as_f64().unwrap()).collect();
        let ys: Vec<f64> = (0..4).map(|i| quad[2 * i + 1].as_f64().unwrap()).collect();
        let (x, y) = (xs.iter().sum::<f64>() / 4.0, ys.iter().sum::<f64>() / 4.0);
        for kind in ["mousePressed", "mouseReleased"] {
            let e = json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1});
            self.call("Input.dispatchMouseEvent", e);
        }
        self.loaded();
    }

    fn html(&mut self) -> String {
        let root = self.call("DOM.getDocument", json!({"depth": 0}))["root"]["nodeId"].clone();
        self.call("DOM.getOuterHTML", json!({"nodeId": root}))["outerHTML"].as_str().unwrap().to_string()
    }

    /// A screenshot of the whole page, saved as `path`; its pixels and bytes per pixel.
    fn screenshot(&mut self, path: &Path) -> (Vec<u8>, usize) {
        let shot =
            self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        use base64::Engine as _;
        let png_bytes =
            base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, &png_bytes).unwrap();
        eprintln!("screenshot: {}", path.display());
        let decoder = png::Decoder::new(&png_bytes[..]);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let stride = match info.color_type {
            png::ColorType::Rgba => 4,
            png::ColorType::Rgb => 3,
            other => panic!("a screenshot in {other:?}"),
        };
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (buf, stride)
    }
}

/// GET over plain HTTP (DevTools' target list): the body, read to its `Content-Length` (the
/// server keeps the connection open).
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut length = 0usize;
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body).to_string()
}

/// Pixels of the flame's outer colour (#f6a623), give or take the edges' blending.
fn flame_pixels((pixels, stride): &(Vec<u8>, usize)) -> usize {
    pixels
        .chunks_exact(*stride)
        .filter(|p| p[0].abs_diff(246) < 12 && p[1].abs_diff(166) < 20 && p[2].abs_diff(35) < 30)
        .count()
}

fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_web");
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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

    let out = output_dir();
    let mut b = Browser::launch(&dir.join("chromium-profile"));
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
