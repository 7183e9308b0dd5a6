//! A start-up failure is one line that names the setting to change, and a non-zero exit.

use std::process::Command;

use infra::testkit::TestDb;

#[tokio::test]
async fn a_second_projector_on_a_taken_address_says_which_setting_in_one_line() {
    let db = TestDb::new().await.expect("test database");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg("run")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("TALLY_PROJECTOR_ADDR", &addr)
        .env("RUST_LOG", "off")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the projector");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("projector: cannot listen on") && lines[0].contains("TALLY_PROJECTOR_ADDR"),
        "{stderr}"
    );
}
