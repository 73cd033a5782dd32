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

/// Every table of the production example (and every entry of its arrays of tables) refuses
/// a key it does not know, naming the key's path: no section silently ignores a typo.
#[test]
fn every_table_of_the_example_refuses_an_unknown_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bridgehead.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let example: toml::Table = text.parse().unwrap();
    // Every table's path, with the table itself.
    fn tables(table: &toml::Table, path: String, out: &mut Vec<String>) {
        out.push(path.clone());
        for (key, value) in table {
            let prefix = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match value {
                toml::Value::Table(t) => tables(t, prefix, out),
                toml::Value::Array(items) => {
                    for (n, item) in items.iter().enumerate() {
                        if let toml::Value::Table(t) = item {
                            tables(t, format!("{prefix}[{n}]"), out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut paths = Vec::new();
    tables(&example, String::new(), &mut paths);
    assert!(paths.len() >= 10, "{paths:?}");
    for path in paths {
        let mut injected = example.clone();
        let mut table = &mut injected;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            table = match part.split_once('[') {
                Some((key, index)) => {
                    let n: usize = index.trim_end_matches(']').parse().unwrap();
                    table[key].as_array_mut().unwrap()[n]
                        .as_table_mut()
                        .unwrap()
                }
                None => table[part].as_table_mut().unwrap(),
            };
        }
        table.insert("no_such_key".into(), toml::Value::Boolean(true));
        let expected = if path.is_empty() {
            "no_such_key".to_owned()
        } else {
            format!("{path}.no_such_key")
        };
        match parse(&toml::to_string(&injected).unwrap()) {
            Err(ConfigError::Parse { key, .. }) => assert_eq!(key, expected),
            other => panic!("{expected}: {other:?}"),
        }
    }
}

/// Counts, sizes and timeouts that must be at least 1 are `NonZero` types: a 0 fails the
/// parse with the key's path, whichever section it is in.
#[test]
fn zero_is_refused_where_at_least_one_is_needed() {
    for (section, key) in [
        ("server", "shutdown_grace_secs"),
        ("xmpp", "send_queue_len"),
        ("xmpp", "sm_request_after_secs"),
        ("http", "max_body_bytes"),
        ("xsi", "event_bus_capacity"),
        ("xsi_events", "max_delivery_attempts"),
        ("limits", "max_xml_depth"),
        ("quotas", "max_roster_items"),
        ("calls", "ringing_timeout_secs"),
    ] {
        match parse(&format!("[{section}]\n{key} = 0\n")).unwrap_err() {
            ConfigError::Parse {
                key: path, message, ..
            } => {
                assert_eq!(path, format!("{section}.{key}"));
                assert!(message.starts_with("must be at least 1"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn the_postgres_backend_needs_a_url_and_only_it_takes_one() {
    let problems = |text: &str| -> Vec<String> {
        match parse(text).unwrap().validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => problems
                .into_iter()
                .filter(|p| p.key.starts_with("store."))
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        problems("[store]\nbackend = \"postgres\"\n").len(),
        1,
        "no url"
    );
    assert!(
        problems("[store]\nbackend = \"postgres\"\nurl = \"postgres://u:p@db:5432/bh\"\n")
            .is_empty()
    );
    assert!(problems("[store]\nurl = \"postgres://u:p@db/bh\"\n")[0].contains("only used"));
    assert!(problems("[store]\nca = \"/etc/ca.pem\"\n")[0].starts_with("store.ca: is only used"));
    assert!(problems(
        "[store]\nbackend = \"postgres\"\nurl = \"postgres://u:p@db/bh?sslmode=require\"\nca = \"/etc/ca.pem\"\n"
    )
    .is_empty());
    let secret = format!(
        "{:?}",
        parse("[store]\nbackend = \"postgres\"\nurl = \"postgres://u:hunter2@db/bh\"\n").unwrap()
    );
    assert!(!secret.contains("hunter2"), "the url is a secret");
}
