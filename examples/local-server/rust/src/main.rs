//! Fetch the main session's TIP and call identity_whoami over the local identity server.
//! Usage: cargo run -- [SOCKET]  (default: $IDENTITY_SOCKET or ~/.openclaw/plugins/identity/identity.sock)
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// One request per connection (`Connection: close`) keeps the HTTP handling minimal.
fn call(socket: &str, method: &str, path: &str, body: Option<&str>) -> std::io::Result<bool> {
    let mut stream = UnixStream::connect(socket)?;
    let payload = body.unwrap_or("");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if body.is_some() {
        head += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", payload.len());
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).unwrap_or("?").to_string();
    let text = response.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string();
    println!("{method} {path} {status} {text}");
    Ok(status == "200")
}

fn main() -> ExitCode {
    let socket = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("IDENTITY_SOCKET").ok())
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.openclaw/plugins/identity/identity.sock")
        });
    let token = call(&socket, "GET", "/token", None);
    let whoami = call(&socket, "POST", "/tool/identity_whoami", Some(r#"{"params": {}, "session": ""}"#));
    match (token, whoami) {
        (Ok(true), Ok(true)) => ExitCode::SUCCESS,
        (a, b) => {
            for err in [a.err(), b.err()].into_iter().flatten() {
                eprintln!("{err}");
            }
            ExitCode::FAILURE
        }
    }
}
