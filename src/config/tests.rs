use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(Path::new("test.toml"), text)
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let err = parse("[server]\ndomian = \"example.com\"\n").unwrap_err();
    match err {
        ConfigError::Parse { key, message, .. } => {
            assert_eq!(key, "server.domian");
            assert!(message.contains("unknown field"), "{message}");
            assert!(message.contains("line 2"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_key_in_a_component_names_its_index() {
    let err = parse("[[components]]\nname = \"b.example.com\"\nsecret = \"s\"\nmax_conns = 2\n")
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { key, .. } if key == "components[0].max_conns"),
        "{err}"
    );
}

#[test]
fn validation_reports_every_problem_at_once() {
    let mut config = parse(
        "[server]\ndomain = \"bad domain\"\n[tls]\ncert_file = \"/nonexistent.pem\"\n\
         [store]\nscram_iterations = 100\n\
         [[components]]\nname = \"b.example.com\"\n\
         [[components]]\nname = \"b.example.com\"\nsecret = \"x\"\non_conflict = \"balance\"\n",
    )
    .unwrap();
    let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
        panic!("expected Invalid");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for expected in [
        "server.domain",
        "tls.key_file",
        "tls.cert_file",
        "store.scram_iterations",
        "components[0].secret",
        "components[1].name",
        "components[1].max_connections",
    ] {
        assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
    }
}

#[test]
fn secret_file_is_read_during_validation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cret\n").unwrap();
    let mut config = parse(&format!(
        "[[components]]\nname = \"bridge.example.com\"\nsecret_file = \"{}\"\n",
        file.display()
    ))
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.components[0].secret.as_ref().unwrap().expose(),
        "s3cret"
    );
    assert_eq!(
        format!("{:?}", config.components[0].secret),
        "Some(Secret(***))"
    );
}
