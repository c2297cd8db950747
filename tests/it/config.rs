//! `.env.example` and the README list every setting the binary reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

fn variables_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() > 9 && w.starts_with("AU_RELAY_") && !w.starts_with("AU_RELAY_TEST_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn env_example_and_readme_list_every_setting() {
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let code = variables_in(&(read("src/app.rs") + &read("src/main.rs")));
    assert!(code.len() >= 10, "{code:?}");
    assert_eq!(variables_in(&read(".env.example")), code, ".env.example");
    let readme = variables_in(&read("README.md"));
    assert!(
        code.is_subset(&readme),
        "README misses {:?}",
        code.difference(&readme).collect::<Vec<_>>()
    );
}
